"""Many processes on one study: who takes the last slots of the budget, who measures a candidate.

Both are decided through the storage alone (no locks, no server of our own), by trial number:
Optuna hands out trial numbers atomically, and every trial writes its claim (its candidate key)
before it reads the others'.

* Budget: a trial counts when it finished with an outcome (not interrupted, not a dead process's
  trial that was retried). A trial starts only if the counted trials plus the *lower-numbered*
  running ones leave a slot; otherwise it is a surplus trial that runs nothing and is not counted.
  So N processes that each ask for ``--trials 200`` stop at 200 counted trials, not 200 + N - 1.
* Dedupe: a trial whose candidate a lower-numbered running trial holds waits for that trial and
  takes its outcome (a cache hit) instead of measuring it again. Of two trials with one key, the
  higher-numbered one always sees the lower one's claim: each writes before it reads, so if the
  lower one read before the higher one wrote, the higher one's read came after the lower one's
  write. If the holder dies, its claim lapses (its trial is no longer running) and the next
  lowest measures.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuner.cache import KEY_ATTR, OUTCOME_ATTR, OutcomeCache
from tuner.records import Outcome
from tuner.storage import SURPLUS_ATTR, retried_numbers

FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
#: Seconds between looks at a claim held by another trial.
CLAIM_POLL_S = 0.2


def is_counted(trial: FrozenTrial, retried: set[int]) -> bool:
    """Whether a trial takes a slot of the study's budget of trials."""
    if trial.state not in FINISHED or trial.number in retried:
        return False
    outcome = trial.user_attrs.get(OUTCOME_ATTR)
    return isinstance(outcome, dict) and outcome.get("failure_kind") != "interrupted"


def counted_trials(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that count (see :func:`is_counted`), in number order."""
    retried = retried_numbers(trials)
    return [t for t in trials if is_counted(t, retried)]


def counted_count(study: optuna.Study) -> int:
    """How many trials of the study count."""
    return len(counted_trials(study.get_trials(deepcopy=False)))


def slots_taken(trials: list[FrozenTrial], number: int) -> int:
    """Budget slots taken before trial ``number`` may start: counted trials + lower running ones."""
    retried = retried_numbers(trials)
    counted = sum(1 for t in trials if is_counted(t, retried))
    running = sum(1 for t in trials if t.state == TrialState.RUNNING and t.number < number
                  and not t.user_attrs.get(SURPLUS_ATTR))
    return counted + running


def earlier_claim(trials: list[FrozenTrial], key: str, number: int) -> FrozenTrial | None:
    """The lowest-numbered running trial below ``number`` that holds ``key``, if any."""
    holders = [t for t in trials if t.number < number and t.state == TrialState.RUNNING
               and t.user_attrs.get(KEY_ATTR) == key and not t.user_attrs.get(SURPLUS_ATTR)]
    return min(holders, key=lambda t: t.number, default=None)


def wait_for_claim(study: optuna.Study, number: int, key: str, cache: OutcomeCache,
                   should_stop: Callable[[], bool],
                   trials: list[FrozenTrial] | None = None) -> tuple[Outcome | None, int | None]:
    """Wait while a lower-numbered trial measures the same candidate, then take its outcome.

    Args:
        study: The study.
        number: This trial's number.
        key: Its candidate key (already written to the storage).
        cache: The outcome cache (the holder's outcome arrives through it).
        should_stop: Polled while waiting; True gives up (returns None).
        trials: A snapshot read after this trial's claim was written (saves the first read).

    Returns:
        ``(outcome, waited_for)``: the outcome measured by a holder (None when this trial must
        measure itself: no holder, or the holder died or was interrupted), and the number of the
        trial waited for (None when there was none).
    """
    waited_for = None
    while True:
        if trials is None:
            trials = study.get_trials(deepcopy=False)
        holder = earlier_claim(trials, key, number)
        if holder is None:
            return cache.get(key, trials), waited_for
        if should_stop():
            return None, waited_for
        waited_for = holder.number
        trials = None
        time.sleep(CLAIM_POLL_S)


__all__ = ["counted_count", "counted_trials", "earlier_claim", "is_counted", "slots_taken", "wait_for_claim"]
