"""The outcome cache: a candidate's failures are its answer, except those that say nothing of it."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState

from tuner.core.records import Candidate, Outcome
from tuner.search.cache import OutcomeCache
from tuner.search.keys import KEY_ATTR, OUTCOME_ATTR
from tuner.search.storage import open_storage


def test_a_candidate_killed_from_outside_or_interrupted_is_measured_again_a_segfault_is_not(tmp_path: Path) -> None:
    study = optuna.create_study(study_name="c", storage=open_storage(f"sqlite:///{tmp_path / 's.db'}"))
    cand = Candidate("eager")
    kinds = {"k-killed": "killed", "k-interrupted": "interrupted", "k-segfault": "segfault"}
    for key, kind in kinds.items():
        trial = study.ask()
        trial.set_user_attr(KEY_ATTR, key)
        trial.set_user_attr(OUTCOME_ATTR, Outcome(candidate=cand, failure_kind=kind, failure_reason=kind).to_dict())
        study.tell(trial, state=TrialState.FAIL)
    cache = OutcomeCache(optuna.load_study(study_name="c", storage=open_storage(f"sqlite:///{tmp_path / 's.db'}")))
    assert cache.get("k-killed") is None
    assert cache.get("k-interrupted") is None
    hit = cache.get("k-segfault")
    assert hit is not None and hit.failure_kind == "segfault"
    # Nor does this process remember one it measured itself.
    cache.put("k-new", Outcome(candidate=cand, failure_kind="killed", failure_reason="killed"))
    assert cache.get("k-new", trials=[]) is None
