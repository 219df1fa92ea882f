"""The storage round trips of a tune trial: none beyond what its work needs."""

from __future__ import annotations

import functools
import gc
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from optuna.storages import RDBStorage
from optuna.trial import TrialState

import tuner
from tests.helpers import TinyNet, tiny_model, tiny_samples
from tuner.search.study import load_study

#: Optuna's storage methods that each cost a round trip to a database server.
COUNTED = ("get_trial", "set_trial_intermediate_value", "set_trial_user_attr", "set_trial_state_values")


def count_calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count the calls of :data:`COUNTED` on every RDB storage from now on."""
    calls: Counter[str] = Counter()
    for name in COUNTED:
        original = getattr(RDBStorage, name)

        @functools.wraps(original)
        def counted(self: Any, *args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
            calls[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(RDBStorage, name, counted)
    return calls


def test_a_trial_reads_itself_back_only_where_optuna_must_and_writes_its_step_with_its_outcome(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_calls(monkeypatch)
    tuner.tune(tiny_model(), tiny_samples(), trials=10, device="cpu", backends=("test_cheap",), output_dir=tmp_path,
               study_name="r", track=False)
    monkeypatch.undo()
    trials = load_study("r", f"sqlite:///{tmp_path / 'study.db'}").get_trials()
    told = len([t for t in trials if t.state.is_finished()])
    assert told >= 10
    # Optuna reads a trial when it starts (Trial()) and when it is told; a callback would be a third.
    assert calls["get_trial"] <= 2 * told
    # The step-0 value the pruner compares is stored in the outcome's transaction, not one of its own...
    assert calls["set_trial_intermediate_value"] == 0
    # ...and is there for the pruners of later trials.
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert complete and all(0 in t.intermediate_values for t in complete)


class Unpicklable(TinyNet):
    """A model that cannot reach a worker process (a lambda cannot be pickled): its candidates run in-process."""

    def __init__(self) -> None:
        super().__init__()
        self.hook: Callable[[Any], Any] = lambda t: t


def count_collections(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count full garbage collections (``gc.collect()``, as Optuna's ``gc_after_trial`` runs them)."""
    calls: list[int] = []
    original = gc.collect

    def counted(*args: Any) -> int:
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(gc, "collect", counted)
    return calls


def test_the_study_process_collects_garbage_after_each_trial_only_where_it_evaluates_candidates(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    collections = count_collections(monkeypatch)
    tuner.tune(tiny_model(), tiny_samples(), trials=6, device="cpu", backends=("test_cheap",),
               output_dir=tmp_path / "isolated", study_name="g", track=False)
    assert len(collections) < 6  # candidates ran in worker processes: nothing of theirs to free here
    collections.clear()
    result = tuner.tune(Unpicklable().eval(), tiny_samples(), trials=3, device="cpu", backends=("test_cheap",),
                        output_dir=tmp_path / "here", study_name="g", track=False)
    assert result.report["search"]["workers"]["isolated"] is False
    told = [t for t in load_study("g", f"sqlite:///{tmp_path / 'here' / 'study.db'}").trials if t.state.is_finished()]
    assert told and len(collections) >= len(told)  # candidates ran in this process: collected after each trial
