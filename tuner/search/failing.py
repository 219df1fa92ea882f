"""Parameter values on which every candidate so far has failed.

After TPE repeats a candidate, the study queues one nobody has measured yet (``tuner.search.study``). Chosen
uniformly, that pick lands in regions where every candidate fails as often as anywhere else (a
``tvm`` shape mode whose import always fails, TorchScript's ``script`` on a model it cannot script).
The sampler learns to leave such regions (failed trials end PRUNED); this module lets the unseen
pick leave them too: a value is *failing* when at least :data:`MIN_TRIALS` distinct candidates were
measured with it and every one of them failed. Distinct, because TPE repeats a candidate often (each
repeat is a trial of its own, with the cached outcome): three repeats of one failing candidate say
nothing of the others that share its values. Failures that say nothing of the candidate
(:data:`tuner.search.cache.NOT_CACHED`: interrupted, killed from outside) and trials without an outcome
are left out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from optuna.trial import FrozenTrial

from tuner.search.cache import NOT_CACHED
from tuner.search.claims import is_failure
from tuner.search.keys import FAILURE_KIND_ATTR, FINISHED, OUTCOME_ATTR

#: Distinct candidates a value needs, all failed, before it counts as failing. Two: on an H100 at
#: o2, every GPT-2 candidate with Inductor (a Dynamo error of torch 2.11) and every graphed
#: TorchScript trace failed, and at three each those two classes took 7 of the study's 31 trials
#: (experiments/results/2026-12-06-h100-levels-run4.md), where issue 18 allows 10 %.
MIN_TRIALS = 2


def params_key(params: dict[str, Any]) -> str:
    """One candidate's params as a string, the same for equal params (what tells candidates apart)."""
    return json.dumps(params, sort_keys=True, default=str)


def _value_keys(params: dict[str, Any]) -> dict[tuple[str, str], str]:
    """Each of a candidate's values as its key in :func:`failing_values`, with its ``name=value``.

    A value that several backends' candidates share (a ``torch/`` switch such as
    ``torch/cuda_graph``) is keyed by the candidate's backend too: on GPT-2, TorchScript traces
    never captured in a CUDA graph while eager did, and the value alone would never have counted
    as failing (5 of 15 trials of an H100 run at o2 failed that way, 3 of 15 at o1, 2026-12-06).
    """
    backend = str(params.get("backend", ""))
    keys = {}
    for name, value in params.items():
        shared = backend and name != "backend" and not name.startswith(f"{backend}/")
        scoped = f"{backend}:{name}" if shared else name
        keys[scoped, json.dumps(value, sort_keys=True, default=str)] = f"{name}={value}"
    return keys


def _candidates(trials: Iterable[FrozenTrial],
                telling: Sequence[tuple[dict[str, Any], bool]] = ()) -> dict[str, tuple[dict[str, Any], bool]]:
    """Each distinct candidate's params and whether it failed, from the finished trials that tell and ``telling``.

    A candidate that failed in one trial and ran in another (a flaky build, say) counts as running.
    """
    told = [(t.params, is_failure(t)) for t in trials
            if t.state in FINISHED and isinstance(t.user_attrs.get(OUTCOME_ATTR), dict)
            and t.user_attrs[OUTCOME_ATTR].get(FAILURE_KIND_ATTR) not in NOT_CACHED]
    out: dict[str, tuple[dict[str, Any], bool]] = {}
    for params, failed in [*told, *telling]:
        key = params_key(params)
        if key in out:
            failed = failed and out[key][1]
        out[key] = (params, failed)
    return out


def failing_values(trials: Iterable[FrozenTrial],
                   telling: Sequence[tuple[dict[str, Any], bool]] = ()) -> set[tuple[str, str]]:
    """The ``(param name, value)`` pairs every distinct candidate with them failed on (at least :data:`MIN_TRIALS`).

    A name that several backends share is prefixed with the backend (``torchscript:torch/cuda_graph``).

    Args:
        trials: The study's trials.
        telling: ``(params, failed)`` of trials whose outcome is known but not yet told to the
            study (a trial is finished in the storage only after its objective returns): without
            them the failure that makes a value failing would count only from the next failure
            on (on an H100, GPT-2's third graphed TorchScript failure went uncounted, and a fourth
            candidate with it was measured, experiments/results/2026-12-06-h100-levels-run4.md).

    Returns:
        The pairs, values JSON-encoded.
    """
    seen: dict[tuple[str, str], list[int]] = {}
    for params, failed in _candidates(trials, telling).values():
        for key in _value_keys(params):
            counts = seen.setdefault(key, [0, 0])
            counts[0] += 1
            counts[1] += failed
    return {key for key, (n, bad) in seen.items() if n >= MIN_TRIALS and bad == n}


def failing_in(params: dict[str, Any], failing: set[tuple[str, str]]) -> list[str]:
    """The ``name=value`` of each of ``params``' values that is failing (:func:`failing_values`)."""
    return [shown for key, shown in _value_keys(params).items() if key in failing]


def avoid_failing(candidates: Sequence[dict[str, Any]], trials: Iterable[FrozenTrial]) -> Sequence[dict[str, Any]]:
    """The candidates' params that have no failing value, or all of them when none is left.

    Args:
        candidates: Params of unseen candidates.
        trials: The study's trials.

    Returns:
        The subset to pick from.
    """
    failing = failing_values(trials)
    if not failing:
        return candidates
    kept = [p for p in candidates if not failing_in(p, failing)]
    return kept or candidates


__all__ = ["MIN_TRIALS", "avoid_failing", "failing_in", "failing_values", "params_key"]
