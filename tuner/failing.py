"""Parameter values on which every candidate so far has failed.

After TPE repeats a candidate, the study queues one nobody has measured yet (``tuner.study``). Chosen
uniformly, that pick lands in regions where every candidate fails as often as anywhere else (a
``tvm`` shape mode whose import always fails, TorchScript's ``script`` on a model it cannot script).
The sampler learns to leave such regions (failed trials end PRUNED); this module lets the unseen
pick leave them too: a value is *failing* when at least :data:`MIN_TRIALS` finished trials had it
and every one of them failed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from optuna.trial import FrozenTrial

from tuner.claims import FINISHED, is_failure

#: Finished trials a value needs, all failed, before it counts as failing.
MIN_TRIALS = 3


def _value_key(name: str, value: Any) -> tuple[str, str]:
    return name, json.dumps(value, sort_keys=True, default=str)


def failing_values(trials: Iterable[FrozenTrial]) -> set[tuple[str, str]]:
    """The ``(param name, value)`` pairs every finished trial with them failed on (at least :data:`MIN_TRIALS`).

    Args:
        trials: The study's trials.

    Returns:
        The pairs, values JSON-encoded.
    """
    seen: dict[tuple[str, str], list[int]] = {}
    for t in trials:
        if t.state not in FINISHED:
            continue
        failed = is_failure(t)
        for name, value in t.params.items():
            counts = seen.setdefault(_value_key(name, value), [0, 0])
            counts[0] += 1
            counts[1] += failed
    return {key for key, (n, bad) in seen.items() if n >= MIN_TRIALS and bad == n}


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
    kept = [p for p in candidates if not any(_value_key(n, v) in failing for n, v in p.items())]
    return kept or candidates


__all__ = ["MIN_TRIALS", "avoid_failing", "failing_values"]
