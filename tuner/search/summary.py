"""The search summary of the report: trials by state, failures by reason, distinct candidates."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import TrialState

from tuner.search.claims import counted_trials, is_failure
from tuner.search.keys import (
    CACHED_ATTR,
    CANDIDATE_ATTR,
    FAILURE_KIND_ATTR,
    FAILURE_REASON_ATTR,
    FINISHED,
    KEY_ATTR,
    OUTCOME_ATTR,
    REFUSED_ATTR,
    SPACE_SIZE_ATTR,
)
from tuner.search.study import space_of


def summary(study: optuna.Study) -> dict[str, Any]:
    """Counts of the study's trials by state and of failures by reason, for the report.

    Args:
        study: A study created by this tool.

    Returns:
        ``trials``, ``complete``, ``failed``, ``pruned``, ``distinct_candidates``, ``space_size``,
        ``failures_by_reason``, ``failures`` (each measured failure with its reason),
        ``not_counted``, what was left out of the space before the first trial
        (``refused_backends``, ``excluded_options``), and ``trial_time`` (:func:`trial_time`).
    """
    every = study.get_trials(deepcopy=False)
    trials = counted_trials(every)
    by_kind: dict[str, int] = {}
    failures = []
    for t in trials:
        if is_failure(t):
            kind = str(t.user_attrs.get(FAILURE_KIND_ATTR, "unknown"))
            by_kind[kind] = by_kind.get(kind, 0) + 1
            if not t.user_attrs.get(CACHED_ATTR):
                failures.append({"trial": t.number, "candidate": t.user_attrs.get(CANDIDATE_ATTR), "kind": kind,
                                 "reason": t.user_attrs.get(FAILURE_REASON_ATTR, "")})
    keys = {t.user_attrs.get(KEY_ATTR) for t in trials if t.state in FINISHED} - {None}
    return {
        "trials": len([t for t in trials if t.state in FINISHED]),
        "complete": len([t for t in trials if t.state == TrialState.COMPLETE]),
        "failed": len([t for t in trials if is_failure(t)]),
        "pruned": len([t for t in trials if t.state == TrialState.PRUNED and not is_failure(t)]),
        "distinct_candidates": len(keys),
        "space_size": study.user_attrs.get(SPACE_SIZE_ATTR),
        "failures_by_reason": by_kind,
        "failures": failures,
        # Not counted: trials of processes that died (queued again), interrupted ones, and those
        # that found the budget taken by other workers.
        "not_counted": len([t for t in every if t.state in FINISHED]) - len(trials),
        # Left out of the space before the first trial: they cannot build for this model.
        "refused_backends": study.user_attrs.get(REFUSED_ATTR, {}),
        "excluded_options": {key: list(values) for key, values in space_of(study).excluded},
        "trial_time": trial_time(trials),
    }


def trial_time(trials: list[optuna.trial.FrozenTrial]) -> dict[str, float]:
    """Seconds the measured trials took in the study, and of those, their evaluations' own.

    The rest is each trial's share of a worker's start, of the wait for the device's timing lock
    and of the storage: on an H100 host tuning two studies at once, GPT-2's trials took 2-3x their
    compile time (experiments/results/2026-12-07-h100-levels-run9.md), which this tells apart.

    Args:
        trials: The counted trials.

    Returns:
        ``trials_s`` (start to end, summed) and ``evaluations_s`` (the outcomes' ``eval_s``), over
        the finished trials that evaluated their candidate (not a cached answer).
    """
    total = evaluating = 0.0
    for t in trials:
        outcome = t.user_attrs.get(OUTCOME_ATTR)
        if t.state not in FINISHED or t.user_attrs.get(CACHED_ATTR) or not isinstance(outcome, dict):
            continue
        if t.datetime_start is not None and t.datetime_complete is not None:
            total += (t.datetime_complete - t.datetime_start).total_seconds()
        evaluating += float(outcome.get("eval_s") or 0.0)
    return {"trials_s": round(total, 2), "evaluations_s": round(evaluating, 2)}


__all__ = ["summary", "trial_time"]
