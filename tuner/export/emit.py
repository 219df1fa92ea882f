"""Emit the winner: export the fastest candidate that exports and reloads, going down the study's ranking.

The finalists come first, fastest side by side first; if none of them exports (and loads and runs
correctly in a fresh process), the study's other complete candidates follow in the order of their
objective, each rebuilt first. A run ends without an artifact only when no successful candidate
exports. Two failed exports of one kind of candidate (backend and shape mode) skip the rest of that
kind: the same exporter fails the same way (an AOTInductor package that does not load, a program
torch.export cannot capture). A candidate whose export and check are expected to end past the run's
time budget and its overrun share (:func:`tuner.search.loop.export_estimate`,
:meth:`tuner.core.budget.Budget.export_room`) is skipped; past the budget only ``eager`` is still
tried, the export most likely to work. Where the artifact that checked out runs slower reloaded than
the next finalist ran side by side, that finalist's artifact is checked too and the faster ships
(:mod:`tuner.export.challenge`).
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from backends import get_backend
from tuner.core.budget import Budget
from tuner.core.errors import error_line
from tuner.core.progress import Progress
from tuner.core.records import Built
from tuner.core.settings import TuneSettings
from tuner.core.workload import Workload
from tuner.export.artifact import export_artifact
from tuner.export.challenge import challenge
from tuner.export.finalists import Pick, ranked
from tuner.export.sidebyside import Result
from tuner.export.verify import VERIFY_TIMEOUT_S, verify_in_subprocess
from tuner.search.loop import VERIFY_BASE_S, export_estimate

#: Failed exports of one kind of candidate (backend, shape mode) after which the rest of that kind is skipped.
KIND_FAILURES = 2
#: Seconds a fresh-process check may take at least, however little of the budget is left.
MIN_VERIFY_S = 60.0


def _kind(pick: Pick) -> tuple[str, str]:
    """What one exporter handles alike: the backend and the shape mode."""
    return pick.candidate.backend, pick.candidate.shape_mode


@dataclasses.dataclass(frozen=True)
class _Tried:
    """A candidate that did not ship: why, and whether it was tried at all."""

    pick: Pick
    error: str
    skipped: bool

    def entry(self) -> dict[str, Any]:
        """Its entry in the report's ``fallbacks``."""
        return {"trial": self.pick.trial, "candidate": self.pick.candidate.describe(), "error": self.error}


@dataclasses.dataclass
class Emitter:
    """Tries candidates in order until one exports; keeps what was tried and why it did not ship.

    Attributes:
        workload: The workload.
        settings: Cache folder, level, measurement.
        budget: The run's clock.
        progress: Who to tell.
        tried: Each candidate tried or skipped, and why it did not ship (the report's ``fallbacks``).
    """

    workload: Workload
    settings: TuneSettings
    budget: Budget
    progress: Progress
    tried: list[_Tried] = dataclasses.field(default_factory=list)

    def _kind_failed(self, pick: Pick) -> bool:
        return sum(1 for t in self.tried if not t.skipped and _kind(t.pick) == _kind(pick)) >= KIND_FAILURES

    def skip_reason(self, pick: Pick) -> str | None:
        """Why not to try ``pick`` at all, or None."""
        if self._kind_failed(pick):
            return (f"skipped: {KIND_FAILURES} exports of {pick.candidate.backend}[{pick.candidate.shape_mode}] "
                    "candidates failed already")
        if pick.candidate.backend == "eager":
            return None
        left = self.budget.remaining()
        if left <= 0:
            return "skipped: the run's time budget (--timeout) is spent; only eager is tried past it"
        need = self.need_s(pick)
        if need > self.budget.export_room():
            # The budget bounds the whole run: an export that cannot end within it gives way to the
            # next candidate whose export can (on an H100 at --timeout 180, AOTInductor exports of
            # BERT-base took 89 s and their checks 45 s more; such runs ended at 1.2-1.65 T).
            return (f"skipped: its export and fresh-process check are expected to take about {need:.0f} s, and "
                    f"{left:.0f} s of the run's time budget (--timeout) are left; a longer --timeout exports it")
        return None

    def need_s(self, pick: Pick) -> float:
        """Seconds ``pick``'s export and its fresh-process check are expected to take."""
        return export_estimate(pick.candidate, pick.compile_s, self.workload.device) + VERIFY_BASE_S

    def fail(self, pick: Pick, error: str, more: bool, *, skipped: bool = False, say: bool = True) -> None:
        """Note a candidate that did not ship (``skipped``: not tried, no failure of its kind; ``say``: tell)."""
        self.tried.append(_Tried(pick, error, skipped))
        if say:
            self.progress.message(f"trial {pick.trial}: {error}" + (": trying the next candidate" if more else ""))

    def fallbacks(self) -> list[dict[str, Any]]:
        """The report's ``fallbacks``."""
        return [t.entry() for t in self.tried]

    def emit(self, tmp: Path, pick: Pick, built: Built) -> dict[str, Any]:
        """Export ``pick`` into ``tmp`` and check it in a fresh process (raises when either fails)."""
        self.progress.phase(f"exporting the {pick.candidate.backend} artifact (trial {pick.trial})")
        with self.budget.phase("export"):
            export_artifact(built, self.workload, pick.candidate, tmp, self.settings.cache_dir)
        self.progress.phase("checking the artifact in a fresh process")
        config = self.settings.measure_config()
        with self.budget.phase("verify"):
            return verify_in_subprocess(tmp, self.workload, self.settings.rule, config.warmup, config.repeats,
                                        timeout_s=min(VERIFY_TIMEOUT_S, max(MIN_VERIFY_S, self.budget.remaining())))

    def rebuild(self, pick: Pick) -> Built | None:
        """Build a candidate that was not a finalist (None, noted, when it does not build now)."""
        with self.budget.phase("export"):
            result = get_backend(pick.candidate.backend, cache_dir=self.settings.cache_dir).build(
                self.workload, pick.candidate)
        if result.built is None:
            self.fail(pick, f"rebuild failed: {result.error_msg}", more=True)
        return result.built


def candidates(finalists: list[Pick], results: dict[str, Result], built: dict[str, Built],
               others: Iterator[Pick]) -> Iterator[tuple[Pick, Built | None]]:
    """The order of export: finalists that ran correctly, fastest first, then the study's other candidates.

    Yields:
        Each candidate with what was built for it (None: build it first).
    """
    seen = set()
    for p in ranked(finalists, results):
        seen.add(p.candidate.key())
        yield p, built.get(p.name)
    for p in others:
        if p.candidate.key() not in seen and p.trial not in {f.trial for f in finalists}:
            seen.add(p.candidate.key())
            yield p, None


def export_first(tmp: Path, emitter: Emitter, order: Iterator[tuple[Pick, Built | None]],
                 side_by_side_ms: Mapping[str, float] | None = None) -> tuple[Pick | None, dict[str, Any]]:
    """Export the first candidate of ``order`` that exports and checks out.

    With the finalists' side-by-side figures, the candidate after it in ``order`` may take its place
    (:func:`tuner.export.challenge.challenge`).

    Returns:
        The candidate emitted (None when none did) and the report's ``artifact`` section: its
        check, ``fallbacks`` (what did not ship and why) and ``error`` when nothing shipped.
    """
    t0 = time.perf_counter()
    artifact: dict[str, Any] = {"dir": str(emitter.settings.best_dir)}
    for pick, built in order:
        skip = emitter.skip_reason(pick)
        if skip is not None:
            # A finalist (built already) that is skipped was measured side by side, maybe faster
            # than what ships: the user is told why (on an H100, 2026-12-07, an Inductor finalist
            # 1.28x faster than the eager artifact was skipped for time and only the report said
            # so). The study's other candidates, possibly many, are only in the report.
            emitter.fail(pick, skip, more=True, skipped=True, say=built is not None)
            continue
        built = built or emitter.rebuild(pick)
        if built is None:
            continue
        try:
            artifact.update(emitter.emit(tmp, pick, built))
        except Exception as e:  # noqa: BLE001 - a failed export is reported, not a crash
            emitter.fail(pick, f"export failed: {error_line(e)}", more=True)
            _empty(tmp)
            continue
        if side_by_side_ms:
            pick, artifact = challenge(tmp, emitter, pick, artifact, next(order, None), side_by_side_ms)
        artifact.update(export_s=round(time.perf_counter() - t0, 2), files=sorted(f.name for f in tmp.iterdir()))
        if emitter.tried:
            artifact["fallbacks"] = emitter.fallbacks()
        return pick, artifact
    artifact["fallbacks"] = emitter.fallbacks()
    artifact["error"] = ("no successful candidate could be exported: " + "; ".join(
        f"trial {t.pick.trial}: {t.error}" for t in emitter.tried)) if emitter.tried else "no candidate to export"
    return None, artifact


def _empty(folder: Path) -> None:
    """Remove what a failed export left (no half-artifact: the folder keeps only the report and config)."""
    for f in folder.iterdir():
        shutil.rmtree(f) if f.is_dir() else f.unlink()


__all__ = ["Emitter", "candidates", "export_first"]
