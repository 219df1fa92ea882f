"""The time a run may take (``--timeout``, ``Config.time_budget_s``), and how it was spent.

The budget covers the whole run: loading the model, the search, the finalists measured again,
the export and its check in a fresh process. The trial loop stops early enough for what comes
after it (:meth:`Budget.search_deadline`), and the report shows the split (:meth:`Budget.split`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Iterator

#: The share of the budget by which a run may end past it to ship a candidate whose export and
#: check were expected to end just before it. Estimates are rough, and without this margin a
#: 45 s run on the CPU box shipped plain eager rather than a TorchScript artifact 2.7 times as
#: fast whose export and check took 5.5 s, because 7 s were left and 10 s were expected.
OVERRUN_SHARE = 0.1


@dataclasses.dataclass
class Budget:
    """A run's clock.

    Attributes:
        total_s: Seconds the whole run may take; None for no limit.
        started: When the run started (``time.monotonic()``).
        spent: Seconds per phase so far (``load``, ``search``, ``finalists``, ``export``, ``verify``).
        final_reserve_s: Seconds the phases after the search are expected to take, as the search
            estimates them from its candidates' compile times.
    """

    total_s: float | None = None
    started: float = dataclasses.field(default_factory=time.monotonic)
    spent: dict[str, float] = dataclasses.field(default_factory=dict)
    final_reserve_s: float = 0.0

    @property
    def deadline(self) -> float | None:
        """When the run must end (monotonic), None for never."""
        return None if self.total_s is None else self.started + self.total_s

    def remaining(self) -> float:
        """Seconds left (``inf`` without a limit; negative past the deadline)."""
        return math.inf if self.deadline is None else self.deadline - time.monotonic()

    def export_room(self) -> float:
        """Seconds an export and its check may still take: what is left and :data:`OVERRUN_SHARE` (inf: no limit)."""
        return math.inf if self.total_s is None else self.remaining() + OVERRUN_SHARE * self.total_s

    def search_deadline(self) -> float | None:
        """When the search must stop for the later phases to fit (monotonic), None for never."""
        return None if self.deadline is None else self.deadline - self.final_reserve_s

    def search_over(self) -> bool:
        """Whether the search must stop now (no new trial may start)."""
        end = self.search_deadline()
        return end is not None and time.monotonic() >= end

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Count the body's seconds towards phase ``name``."""
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.spent[name] = self.spent.get(name, 0.0) + time.monotonic() - t0

    def split(self) -> dict[str, float | None]:
        """The report's ``timing``: the budget, the seconds of each phase and the total so far.

        With a budget, ``reserved_s`` is what the search left for the phases after it, to hold
        against what they took.
        """
        reserved = {"reserved_s": round(self.final_reserve_s, 2)} if self.total_s is not None else {}
        return {"budget_s": self.total_s, **reserved, **{k: round(v, 2) for k, v in self.spent.items()},
                "total_s": round(time.monotonic() - self.started, 2)}


__all__ = ["Budget"]
