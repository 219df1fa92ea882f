"""Progress of a study on a terminal: a live bar with trials done, failures and the best latency so far."""

from __future__ import annotations

import time
from typing import Any

from tuner.core.records import INTERRUPTED, Outcome


class RichProgress:
    """A rich progress bar on stderr: trials done/total, failures, best latency, current candidate.

    Args:
        console: A ``rich.console.Console`` (stderr by default).
        show_failures: Print one line per failed trial with its reason.
    """

    def __init__(self, console: Any | None = None, show_failures: bool = True) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = console or Console(stderr=True, log_path=False)
        self.show_failures = show_failures
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("failed {task.fields[failures]}"),
            TextColumn("best {task.fields[best]}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[now]}"),
            console=self.console,
            transient=False,
        )
        self._task: Any = None

    def start(self, total: int, done: int, description: str) -> None:  # noqa: D102
        self._bar.start()
        self._task = self._bar.add_task(description, total=total, completed=done, failures=0, best="-", now="")

    def _line(self, text: str) -> None:
        # A timed line that is never wrapped: off a terminal (CI, `| tee`) rich would break it at
        # 80 columns, and a failure's reason is one line to grep.
        stamp = time.strftime("%H:%M:%S")
        self.console.print(f"[{stamp}] {text}", markup=False, highlight=False, soft_wrap=True)

    def phase(self, text: str) -> None:  # noqa: D102
        self._line(text)

    def candidate(self, number: int, description: str) -> None:  # noqa: D102
        if self._task is not None:
            self._bar.update(self._task, now=f"#{number} {description}"[:70])

    def trial(self, number: int, outcome: Outcome, state: str, cached: bool,  # noqa: D102
              best_ms: float | None, failures: int) -> None:
        if self._task is None:
            return
        best = f"{best_ms:.3f} ms" if best_ms is not None else "-"
        self._bar.update(self._task, advance=1, failures=failures, best=best, now="")
        if self.show_failures and outcome.failure_kind and not cached:
            verb = "stopped" if outcome.failure_kind == INTERRUPTED else "failed"
            self._line(f"trial {number} {verb} ({outcome.failure_kind}): {outcome.candidate.describe()}: "
                       f"{outcome.failure_reason}")

    def stop(self) -> None:  # noqa: D102
        self._bar.stop()

    def message(self, text: str) -> None:  # noqa: D102
        # soft_wrap: one message stays one line (rich would break it at 80 columns off a terminal).
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)
