"""The finalists: the study's fastest distinct candidates, measured again side by side before one wins.

A trial's objective is one measurement, taken in a worker while the other workers compile on the
same host, and the fastest of 200 such figures is biased low: a candidate that got a lucky
measurement wins the study. On an H200 (``experiments/bench.py``, in
``experiments/results/2026-11-30-h200.md``) the demo's best trial, an Inductor ``reduce-overhead``
candidate at 1.70 ms in its trial, measured 2.53 ms side by side with the peers, slower than the
runner-up's 2.09 ms. So the tuner
rebuilds its ``k`` fastest distinct candidates, measures them with eager in alternating rounds
in one process (:func:`tuner.export.sidebyside.run_side_by_side`), and emits the fastest that runs
correctly (if its export fails, the next one).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuner.core.records import Candidate
from tuner.export.sidebyside import Result
from tuner.search.keys import OUTCOME_ATTR
from tuner.search.study import decode


@dataclasses.dataclass(frozen=True)
class Pick:
    """A complete trial chosen as a finalist.

    Attributes:
        trial: Its number.
        candidate: Its candidate, decoded from its params as tuning decoded it.
        objective_s: Its objective as the study measured it (seconds over the test data).
        compile_s: Its compile seconds in the trial (0 where the trial kept no outcome).
    """

    trial: int
    candidate: Candidate
    objective_s: float
    compile_s: float = 0.0

    @property
    def name(self) -> str:
        """Its row in the side-by-side measurement."""
        return f"trial {self.trial}"


def distinct_picks(study: optuna.Study, trials: list[FrozenTrial] | None = None) -> Iterator[Pick]:
    """The study's complete trials, fastest objective first, one per distinct candidate.

    Identical candidates (a cached repeat has the same key and objective) count once, by their
    first trial. Lazy: each trial is decoded only when it is reached.

    Args:
        study: A study created by this tool.
        trials: The trials to choose from (e.g. the first 50 counted); None: all of the study's.

    Yields:
        Picks, fastest objective first (ties: lower trial number first).
    """
    pool = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if trials is None else trials
    done = sorted((t for t in pool if t.state == TrialState.COMPLETE and t.value is not None),
                  key=lambda t: (float(t.value or 0.0), t.number))
    if not done:
        return
    seen: set[str] = set()
    for t in done:
        cand = decode(study, t)
        if cand.key() in seen:
            continue
        seen.add(cand.key())
        outcome = t.user_attrs.get(OUTCOME_ATTR) or {}
        yield Pick(t.number, cand, float(t.value or 0.0), float(outcome.get("compile_s") or 0.0))


def top_picks(study: optuna.Study, k: int, trials: list[FrozenTrial] | None = None) -> list[Pick]:
    """The ``k`` fastest distinct candidates among the study's complete trials (:func:`distinct_picks`).

    Returns:
        Up to ``k`` picks, fastest objective first; empty when no trial completed.
    """
    return list(itertools.islice(distinct_picks(study, trials), k))


def fastest(picks: list[Pick], results: dict[str, Result]) -> Pick:
    """The pick that ran fastest side by side; the study's best when none ran correctly."""
    order = ranked(picks, results)
    return order[0] if order else picks[0]


def ranked(picks: list[Pick], results: dict[str, Result]) -> list[Pick]:
    """The picks that ran correctly side by side, fastest first (ties: the study's order)."""
    ok = [p for p in picks if p.name in results and results[p.name].ok]
    return sorted(ok, key=lambda p: (float(results[p.name].total_ms or 0.0), picks.index(p)))


def record(picks: list[Pick], results: dict[str, Result], chosen: Pick | None) -> list[dict[str, Any]]:
    """The report's ``finalists``: each pick's objective and side-by-side figure, or why it has none."""
    out = []
    for p in picks:
        r = results.get(p.name)
        out.append({"trial": p.trial, "candidate": p.candidate.describe(), "objective_ms": p.objective_s * 1e3,
                    "side_by_side_ms": r.total_ms if r else None,
                    "rounds_ms": list(r.rounds_ms) if r else [], "error": r.error if r else "not measured",
                    "chosen": chosen is not None and p.trial == chosen.trial})
    return out


def fastest_per_backend(picks: list[Pick], results: dict[str, Result]) -> dict[str, float]:
    """Each backend's fastest side-by-side figure (s, whole test data) among the picks that ran correctly."""
    out: dict[str, float] = {}
    for p in ranked(picks, results):
        out.setdefault(p.candidate.backend, float(results[p.name].total_ms or 0.0) / 1e3)
    return out


__all__ = ["Pick", "distinct_picks", "fastest", "fastest_per_backend", "ranked", "record", "top_picks"]
