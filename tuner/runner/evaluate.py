"""One candidate, start to finish.

Build, short measurement (for the pruner), full measurement, correctness check. Pure with
respect to the study: it returns an :class:`Outcome`, never raises for a candidate's own failure,
and knows nothing of Optuna or MLflow (so a worker process can run it as it is).
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from backends import get_backend
from tuner.core.accuracy import AccuracyRule
from tuner.core.records import Candidate, Correctness, MeasureConfig, Measurement, Outcome
from tuner.core.workload import Workload
from tuner.runtime.correctness import check_outputs

#: Called with the short first measurement's objective (seconds); True means "prune".
PruneHook = Callable[[float], bool]


def _p90(values: tuple[float, ...]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def summarize(candidate: Candidate, m: Measurement, build_s: float, tuning_s: float | None = None,
              **extra: object) -> Outcome:
    """An Outcome from a successful measurement (latency figures in ms).

    Args:
        candidate: The candidate measured.
        m: Its measurement (``m.ok`` must hold).
        build_s: Seconds the build took.
        tuning_s: Of those, seconds spent tuning schedules (None: the backend does not tune).
        **extra: More Outcome fields (errors, pruned).

    Returns:
        The outcome.
    """
    lat = m.latencies_s or ()
    return Outcome(
        candidate=candidate,
        value_s=m.total_s,
        compile_s=build_s + m.warmup_s,
        tuning_s=tuning_s,
        median_ms=statistics.median(lat) * 1e3,
        p90_ms=_p90(lat) * 1e3,
        **extra,  # type: ignore[arg-type]
    )


def _wrong(candidate: Candidate, verdict: Correctness, m: Measurement, build_s: float,
           tuning_s: float | None, first_calls_s: float | None = None) -> Outcome:
    """The ``wrong`` outcome of a measurement whose outputs missed the reference."""
    return Outcome(candidate=candidate, failure_kind="wrong", failure_reason=f"wrong results: {verdict.detail}",
                   compile_s=build_s + m.warmup_s, tuning_s=tuning_s, max_abs_err=verdict.max_abs_err,
                   max_rel_err=verdict.max_rel_err, accuracy_score=verdict.score, first_calls_s=first_calls_s)


def evaluate(
    candidate: Candidate,
    workload: Workload,
    rule: AccuracyRule,
    config: MeasureConfig,
    prune: PruneHook | None = None,
    cache_dir: Path | None = None,
) -> Outcome:
    """Build, measure and check one candidate.

    Args:
        candidate: What to evaluate.
        workload: Model, test data, reference outputs and device.
        rule: The study's accuracy rule.
        config: Warm-up and repeats.
        prune: Judges the short first measurement; None skips it.
        cache_dir: Where the backend keeps what later candidates reuse (see ``Backend.cache_dir``).

    Returns:
        The outcome: a latency, or a failure kind and reason (``build``, ``run``, ``wrong``), with
        its ``eval_s``.
    """
    t0 = time.perf_counter()
    outcome = _steps(candidate, workload, rule, config, prune, cache_dir)
    return dataclasses.replace(outcome, eval_s=time.perf_counter() - t0)


def _steps(candidate: Candidate, workload: Workload, rule: AccuracyRule, config: MeasureConfig,
           prune: PruneHook | None, cache_dir: Path | None) -> Outcome:
    """:func:`evaluate`'s steps: build, the pruner's short measurement, the full one, the check."""
    backend = get_backend(candidate.backend, cache_dir=cache_dir)
    result = backend.build(workload, candidate)
    if result.built is None:
        return Outcome(candidate=candidate, failure_kind="build", failure_reason=result.error_msg)
    built = result.built
    if prune is not None:
        quick = backend.measure(built, workload, config, quick=True)
        if quick.latencies_s is None:
            return Outcome(candidate=candidate, failure_kind="run", failure_reason=quick.error_msg,
                           compile_s=built.build_s, tuning_s=built.tuning_s)
        # Checked before the pruner hears the latency: a wrong candidate's figure must not rank
        # it (TPE orders pruned trials by their reported value), nor its full measurement run.
        if quick.outputs is not None:
            verdict = check_outputs(quick.outputs, workload.reference, rule)
            if not verdict.ok:
                return _wrong(candidate, verdict, quick, built.build_s, built.tuning_s)
        if prune(quick.total_s):
            # compile_s counts this measurement's first calls here: no full one follows.
            return summarize(candidate, quick, built.build_s, built.tuning_s, pruned=True,
                             accuracy_score=None if quick.outputs is None else verdict.score)
    first_calls_s = quick.warmup_s if prune is not None else None
    m = backend.measure(built, workload, config)
    if m.latencies_s is None or m.outputs is None:
        return Outcome(candidate=candidate, failure_kind="run", failure_reason=m.error_msg or "no outputs",
                       compile_s=built.build_s, first_calls_s=first_calls_s)
    verdict = check_outputs(m.outputs, workload.reference, rule)
    if not verdict.ok:
        return _wrong(candidate, verdict, m, built.build_s, built.tuning_s, first_calls_s)
    return summarize(candidate, m, built.build_s, built.tuning_s, max_abs_err=verdict.max_abs_err,
                     max_rel_err=verdict.max_rel_err, accuracy_score=verdict.score, first_calls_s=first_calls_s)
