"""What the study driver tells whoever watches it: the :class:`Progress` protocol, and a silent one.

The CLI shows it with rich (:class:`tuner.api.progress.RichProgress`); the Python API stays silent
unless asked (``verbose=True``).
"""

from __future__ import annotations

from typing import Protocol

from tuner.core.records import Outcome


class Progress(Protocol):
    """What the study driver tells whoever watches it."""

    def start(self, total: int, done: int, description: str) -> None:
        """The study starts with ``done`` of ``total`` trials already finished (a resumed study)."""

    def phase(self, text: str) -> None:
        """A step outside the trial loop (baseline, final measurement, export)."""

    def candidate(self, number: int, description: str) -> None:
        """Trial ``number`` starts evaluating a candidate (not called for cached candidates)."""

    def trial(self, number: int, outcome: Outcome, state: str, cached: bool, best_ms: float | None,
              failures: int) -> None:
        """Trial ``number`` finished."""

    def stop(self) -> None:
        """The trial loop is over."""

    def message(self, text: str) -> None:
        """A line for the user (warnings, where results went)."""


class NullProgress:
    """Says nothing."""

    def start(self, total: int, done: int, description: str) -> None:  # noqa: D102
        pass

    def phase(self, text: str) -> None:  # noqa: D102
        pass

    def candidate(self, number: int, description: str) -> None:  # noqa: D102
        pass

    def trial(self, number: int, outcome: Outcome, state: str, cached: bool,  # noqa: D102
              best_ms: float | None, failures: int) -> None:
        pass

    def stop(self) -> None:  # noqa: D102
        pass

    def message(self, text: str) -> None:  # noqa: D102
        pass


__all__ = ["NullProgress", "Progress"]
