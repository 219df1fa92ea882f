"""Several user attributes of a running trial in one transaction: what Optuna's one-by-one writes give."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from tuner.storage import open_storage
from tuner.trial_attrs import BatchRDBStorage, set_user_attrs

ATTRS = {"worker": {"host": "h", "pid": 1}, "candidate_key": "k1", "cached": False, "outcome": None}


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_attributes_written_together_read_back_as_written_one_by_one(tmp_path: Path, kind: str) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}" if kind == "sqlite" else f"journal:///{tmp_path / 's.log'}"
    storage = open_storage(url)
    assert isinstance(storage, BatchRDBStorage) == (kind == "sqlite")
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    trial.set_user_attr("candidate_key", "old")  # an upsert overwrites it
    set_user_attrs(trial, ATTRS)
    assert trial.user_attrs == ATTRS  # the trial's own view
    again = optuna.load_study(study_name="s", storage=open_storage(url))
    assert again.trials[0].user_attrs == ATTRS  # another process's view, from the storage
    study.tell(trial, 1.0)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        set_user_attrs(trial, {"late": 1})
    assert "late" not in optuna.load_study(study_name="s", storage=open_storage(url)).trials[0].user_attrs
