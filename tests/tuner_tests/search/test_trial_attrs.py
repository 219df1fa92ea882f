"""Several user attributes of a running trial in one transaction: what Optuna's one-by-one writes give."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from tuner.search.storage import open_storage
from tuner.search.trial_attrs import BatchRDBStorage, report_deferred, set_user_attrs

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


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_a_deferred_report_reaches_the_pruner_at_once_and_the_storage_with_the_next_attributes(
        tmp_path: Path, kind: str) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}" if kind == "sqlite" else f"journal:///{tmp_path / 's.log'}"
    pruner = optuna.pruners.PercentilePruner(50.0, n_startup_trials=1, n_warmup_steps=0)
    study = optuna.create_study(study_name="s", storage=open_storage(url), pruner=pruner)
    first = study.ask()
    first.report(1.0, 0)
    study.tell(first, 1.0)
    trial = study.ask()
    report_deferred(trial, 5.0, 0)
    report_deferred(trial, 7.0, 0)  # as Trial.report: a step's first report stands
    assert trial.should_prune()  # the pruner saw 5.0 (slower than the one complete trial)
    assert optuna.load_study(study_name="s", storage=open_storage(url)).trials[1].intermediate_values == {}
    set_user_attrs(trial, {"outcome": "slow"})
    stored = optuna.load_study(study_name="s", storage=open_storage(url)).trials[1]
    assert stored.intermediate_values == {0: 5.0} and stored.user_attrs == {"outcome": "slow"}
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    assert study.trials[1].intermediate_values == {0: 5.0}
