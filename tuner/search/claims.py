"""Many processes on one study: who takes the last slots of the budget, who measures a candidate.

A trial is *admitted* under the study's claim lock (:mod:`tuner.search.study_lock`): holding it, the trial
reads the study once and writes its verdict (:data:`CLAIM_ATTR`) before the next trial may read.
Admissions are therefore serial, and each one sees every earlier admission:

* Budget: a trial counts when it finished with an outcome (not interrupted, not a dead process's
  trial that was retried). A trial is admitted only if the counted trials plus the admitted
  running ones leave a slot; otherwise it is a surplus trial that runs nothing and is not counted.
  So N processes that each ask for ``--trials 200`` stop at 200 counted trials, not 200 + N - 1.
* Dedupe: a trial whose candidate an admitted running trial is measuring waits for that trial and
  takes its outcome (a cache hit) instead of measuring it again. If the measuring trial dies or is
  interrupted, its claim lapses (it is no longer running, or it finished without an outcome) and
  the first waiter to take the lock again measures instead.

Ordering claims by trial number, without a lock, would not be enough: queued trials get their
numbers when they are queued, not when a worker takes them, so a lower-numbered trial could read
before a higher-numbered one wrote, and both would measure.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Literal

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuner.core.records import INTERRUPTED, Outcome
from tuner.search.cache import OutcomeCache
from tuner.search.keys import CLAIM_ATTR, FAILURE_KIND_ATTR, FINISHED, KEY_ATTR, OUTCOME_ATTR, SURPLUS_ATTR
from tuner.search.storage import retried_numbers
from tuner.search.trial_attrs import set_user_attrs

#: Seconds between looks at a candidate another trial is measuring.
CLAIM_POLL_S = 0.2

Verdict = Literal["surplus", "cached", "wait", "measure"]


@dataclasses.dataclass(frozen=True)
class Admission:
    """What a trial does, decided under the claim lock.

    Attributes:
        verdict: ``surplus`` (the budget is taken: run nothing), ``cached`` (an earlier trial's
            outcome is the answer), ``wait`` (another trial is measuring this candidate now) or
            ``measure``.
        outcome: The cached outcome (``cached`` only).
        holder: The number of the trial measuring the candidate (``wait`` only).
        last_slot: True when this trial took the budget's last free slot: once it ends, the study
            is done (the running ones will end too), so its process stops asking for trials.
    """

    verdict: Verdict
    outcome: Outcome | None = None
    holder: int | None = None
    last_slot: bool = False


def is_counted(trial: FrozenTrial, retried: set[int]) -> bool:
    """Whether a trial takes a slot of the study's budget of trials."""
    if trial.state not in FINISHED or trial.number in retried:
        return False
    outcome = trial.user_attrs.get(OUTCOME_ATTR)
    return isinstance(outcome, dict) and outcome.get(FAILURE_KIND_ATTR) != INTERRUPTED


def is_failure(trial: FrozenTrial) -> bool:
    """Whether a finished trial's candidate failed (its recorded outcome has a failure kind).

    Read from the outcome, not the trial's state: a failed candidate's trial ends PRUNED so that
    the sampler steers away from it (see :func:`tuner.search.loop._verdict`).
    """
    outcome = trial.user_attrs.get(OUTCOME_ATTR)
    return isinstance(outcome, dict) and outcome.get(FAILURE_KIND_ATTR) is not None


def counted_trials(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that count (see :func:`is_counted`), in number order."""
    retried = retried_numbers(trials)
    return [t for t in trials if is_counted(t, retried)]


def counted_count(study: optuna.Study) -> int:
    """How many trials of the study count."""
    return len(counted_trials(study.get_trials(deepcopy=False)))


def admitted_running(trials: list[FrozenTrial], number: int) -> list[FrozenTrial]:
    """The running trials other than ``number`` that were admitted (they will take a slot each)."""
    return [t for t in trials if t.state == TrialState.RUNNING and t.number != number
            and t.user_attrs.get(CLAIM_ATTR) in ("cached", "wait", "measure")]


def measuring_holder(trials: list[FrozenTrial], key: str, number: int) -> FrozenTrial | None:
    """The running trial other than ``number`` that is measuring the candidate ``key``, if any."""
    return next((t for t in admitted_running(trials, number)
                 if t.user_attrs.get(CLAIM_ATTR) == "measure" and t.user_attrs.get(KEY_ATTR) == key), None)


def admit(trials: list[FrozenTrial], number: int, key: str, budget: int, cache: OutcomeCache) -> Admission:
    """Decide what trial ``number`` does, from a snapshot read under the claim lock.

    Args:
        trials: The study's trials, read while holding the lock.
        number: The trial being admitted.
        key: Its candidate's key.
        budget: The study's budget of counted trials.
        cache: The outcome cache.

    Returns:
        The admission (the caller writes its verdict before releasing the lock).
    """
    retried = retried_numbers(trials)
    taken = sum(1 for t in trials if is_counted(t, retried)) + len(admitted_running(trials, number))
    if taken >= budget:
        return Admission("surplus")
    last_slot = taken + 1 >= budget
    outcome = cache.get(key, trials)
    if outcome is not None:
        return Admission("cached", outcome=outcome, last_slot=last_slot)
    holder = measuring_holder(trials, key, number)
    if holder is not None:
        return Admission("wait", holder=holder.number, last_slot=last_slot)
    return Admission("measure", last_slot=last_slot)


def admit_trial(study: optuna.Study, trial: optuna.Trial, key: str, budget: int, cache: OutcomeCache,
                lock: Callable[[], AbstractContextManager[object]]) -> tuple[Admission, list[FrozenTrial]]:
    """Admit a trial under the claim lock and write its verdict (see :func:`admit`).

    Args:
        study: The study.
        trial: The trial (its candidate key is already written).
        key: Its candidate's key.
        budget: The study's budget of counted trials.
        cache: The outcome cache.
        lock: The study's claim lock.

    Returns:
        The admission and the snapshot it was decided on.
    """
    with lock():
        trials = study.get_trials(deepcopy=False)
        admission = admit(trials, trial.number, key, budget, cache)
        verdict: dict[str, object] = {CLAIM_ATTR: admission.verdict}
        if admission.verdict == "surplus":
            verdict[SURPLUS_ATTR] = True
        set_user_attrs(trial, verdict)
    return admission, trials


def wait_for_holder(study: optuna.Study, trial: optuna.Trial, key: str, cache: OutcomeCache,
                    lock: Callable[[], AbstractContextManager[object]],
                    should_stop: Callable[[], bool]) -> Outcome | None:
    """Wait while another trial measures the same candidate, then take its outcome.

    Args:
        study: The study.
        trial: The waiting trial (admitted with verdict ``wait``).
        key: Its candidate's key.
        cache: The outcome cache (the holder's outcome arrives through it).
        lock: The study's claim lock.
        should_stop: Polled while waiting; True gives up (returns None).

    Returns:
        The outcome the holder measured, or None when this trial must measure itself (the holder
        died or was interrupted: this trial then holds the claim) or should stop.
    """
    while not should_stop():
        time.sleep(CLAIM_POLL_S)
        trials = study.get_trials(deepcopy=False)
        if measuring_holder(trials, key, trial.number) is not None:
            continue
        outcome = cache.get(key, trials)
        if outcome is not None:
            return outcome
        # The holder ended without an outcome: take its claim, unless another waiter took it first.
        with lock():
            trials = study.get_trials(deepcopy=False)
            outcome = cache.get(key, trials)
            if outcome is not None:
                return outcome
            if measuring_holder(trials, key, trial.number) is None:
                trial.set_user_attr(CLAIM_ATTR, "measure")
                return None
    return None


__all__ = ["Admission", "admit", "admit_trial", "admitted_running", "counted_count",
           "counted_trials", "is_counted", "is_failure", "measuring_holder", "wait_for_holder"]
