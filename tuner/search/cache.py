"""Results cached by candidate: identical candidates are measured once per study.

The study's storage is the cache: every finished trial carries its candidate's key and outcome in
its user attributes, so a resumed study (or another worker on the same storage) finds them too.
An in-process dict spares the storage round trip for what this process has seen.
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial

from tuner.core.records import INTERRUPTED, Outcome
from tuner.search.keys import FINISHED, KEY_ATTR, OUTCOME_ATTR

#: Failures that say nothing of the candidate, so they are not its cached answer: a Ctrl-C, and a
#: SIGKILL from outside the tuner that was not an out-of-memory kill (an identical candidate
#: proposed later is measured again). Nor do they steer the sampler (:mod:`tuner.search.loop`:
#: their trials end FAIL, which TPE ignores, where other failures end PRUNED).
NOT_CACHED = frozenset({INTERRUPTED, "killed"})


class OutcomeCache:
    """Outcomes by candidate key, backed by the study's finished trials."""

    def __init__(self, study: optuna.Study) -> None:
        self._study = study
        self._memory: dict[str, Outcome] = {}

    def get(self, key: str, trials: list[FrozenTrial] | None = None) -> Outcome | None:
        """The outcome of an earlier evaluation of the candidate with this key, if any.

        Failures that say nothing of the candidate (:data:`NOT_CACHED`: interrupted, killed from
        outside) are not results and are never returned.

        Args:
            key: ``Candidate.key()``.
            trials: A snapshot of the study's trials to search (saves a storage read); None
                reads them.

        Returns:
            The cached outcome, or None.
        """
        if key in self._memory:
            return self._memory[key]
        if trials is None:
            trials = self._study.get_trials(deepcopy=False)
        for trial in trials:
            if trial.state not in FINISHED:
                continue
            if trial.user_attrs.get(KEY_ATTR) == key and isinstance(trial.user_attrs.get(OUTCOME_ATTR), dict):
                outcome = Outcome.from_dict(trial.user_attrs[OUTCOME_ATTR])
                if outcome.failure_kind not in NOT_CACHED:
                    self._memory[key] = outcome
                    return outcome
        return None

    def put(self, key: str, outcome: Outcome) -> None:
        """Remember an outcome (the storage copy is written with the trial)."""
        if outcome.failure_kind not in NOT_CACHED:
            self._memory[key] = outcome

    def distinct(self, trials: list[FrozenTrial] | None = None) -> int:
        """How many distinct candidates the study has evaluated (finished trials' keys).

        Args:
            trials: A snapshot of the study's trials (None: read them).
        """
        if trials is None:
            trials = self._study.get_trials(deepcopy=False)
        keys = {t.user_attrs.get(KEY_ATTR) for t in trials if t.state in FINISHED}
        keys.discard(None)
        return len(keys | set(self._memory))
