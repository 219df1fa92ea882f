"""``--timeout`` bounds the whole run: the search leaves room for what follows it, and a trial still running is cut."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import tuner
from backends import backend_class
from tests.helpers import tiny_model, tiny_samples
from tuner.core.budget import Budget
from tuner.core.records import Candidate, Outcome
from tuner.core.settings import TuneSettings
from tuner.search.loop import RESERVE_FACTOR, VERIFY_BASE_S, _Costs, export_estimate, final_reserve, fresh_process_s
from tuner.search.study import load_study

BUDGET_S = 40.0


def test_a_trial_running_at_the_end_of_the_search_is_cut_and_the_run_ends_in_its_budget(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    # test_slow's variant 1 compiles for an hour; without the budget's cut the run would wait for it.
    t0 = time.monotonic()
    result = tuner.tune(tiny_model(), tiny_samples(), trials=20, device="cpu", backends=("eager", "test_slow"),
                        output_dir=tmp_path, study_name="b", track=False, timeout=BUDGET_S, workers=1, verbose=True)
    wall = time.monotonic() - t0
    report = result.report
    assert result.artifact_dir is not None and report["artifact"]["verified"] is True
    timing = report["timing"]
    assert timing["budget_s"] == BUDGET_S
    assert {"load", "search", "finalists", "export", "verify", "total_s"} <= set(timing)
    # The search stopped early enough for the rest: the whole run ends within the budget and a
    # margin (the fresh-process check's own start is the least predictable part).
    assert timing["search"] < BUDGET_S and wall < BUDGET_S * 1.25, (wall, timing)
    assert report["search"]["stopped_by"] in ("timeout", "exhausted")
    study = load_study("b", f"sqlite:///{tmp_path / 'study.db'}")
    cut = [t for t in study.trials if (t.user_attrs.get("outcome") or {}).get("failure_kind") == "interrupted"]
    assert [t.params.get("test_slow/variant") for t in cut] == [1], "the slow compile is cut, not waited for"
    assert "time budget" in cut[0].user_attrs["outcome"]["failure_reason"]
    # The cut trial is no failure on screen either, as in the report.
    err = capfd.readouterr().err
    assert report["search"]["failed"] == 0 and " failed 0 " in err and "stopped (interrupted)" in err


def test_the_reserve_grows_with_the_compile_times_of_the_best_candidates() -> None:
    settings = TuneSettings(study_name="r", finalists=2)
    empty = final_reserve(_Costs([], 2), settings)
    assert empty >= VERIFY_BASE_S
    quick, slow = _Costs([], 2), _Costs([], 2)
    for costs, compile_s in ((quick, (1.0, 1.0)), (slow, (30.0, 60.0))):
        for i, seconds in enumerate(compile_s):
            costs.add(Outcome(candidate=Candidate("eager"), value_s=0.001 * (i + 1), compile_s=seconds))
    assert empty <= final_reserve(quick, settings) < final_reserve(slow, settings)
    assert final_reserve(slow, settings) > 150.0  # two rebuilds and an export of the slow ones
    budget = Budget(100.0)
    budget.final_reserve_s = final_reserve(slow, settings)
    assert budget.search_deadline() is not None and budget.search_deadline() < budget.deadline  # type: ignore[operator]


def test_the_reserve_counts_a_backend_that_compiles_again_to_export() -> None:
    # Inductor compiles the model again to export it: ahead of time into an AOTInductor package on
    # the CPU; on the GPU warm, once here and once in the fresh process (its compiled format).
    settings = TuneSettings(study_name="r", finalists=1)
    reserves = {}
    for backend, device in (("eager", "cpu"), ("inductor", "cpu"), ("eager", "gpu"), ("inductor", "gpu")):
        costs = _Costs([], 1, device)
        costs.add(Outcome(candidate=Candidate(backend), value_s=0.001, compile_s=10.0))
        reserves[backend, device] = final_reserve(costs, settings)
    assert reserves["eager", "cpu"] < reserves["inductor", "cpu"]
    assert reserves["eager", "gpu"] < reserves["inductor", "gpu"]
    assert export_estimate(Candidate("inductor"), 10.0, "cpu") == 10.0 * backend_class("inductor").export_compile_ratio
    assert export_estimate(Candidate("retired"), 10.0, "cpu") == 10.0
    # Eager compiles nothing, but its torch.export programs take their time on the GPU all the same.
    assert export_estimate(Candidate("eager"), 0.0, "gpu") >= 15.0
    assert export_estimate(Candidate("eager"), 0.0, "cpu") == 0.0


def test_the_reserve_counts_a_fresh_process_as_slow_as_the_workers_started_here() -> None:
    # No worker (in-process evaluation) or quick starts: the constant; slow starts on a loaded host: their mean.
    assert fresh_process_s({"workers": 0, "isolated": False}) == VERIFY_BASE_S
    assert fresh_process_s({"starts": 2, "start_s": 6.0}) == VERIFY_BASE_S
    assert fresh_process_s({"starts": 2, "start_s": 50.0}) == 25.0
    settings = TuneSettings(study_name="r", finalists=1)
    usual, loaded = _Costs([], 1, "gpu"), _Costs([], 1, "gpu", fresh_s=25.0)
    for costs in (usual, loaded):
        costs.add(Outcome(candidate=Candidate("torchscript"), value_s=0.01, compile_s=2.0))
    assert final_reserve(loaded, settings) - final_reserve(usual, settings) == pytest.approx(
        RESERVE_FACTOR * (25.0 - VERIFY_BASE_S))
    assert final_reserve(_Costs([], 1, fresh_s=25.0), settings) == pytest.approx(RESERVE_FACTOR * 25.0)


def test_the_reserve_keeps_no_time_for_an_export_that_cannot_fit_the_budget() -> None:
    # An AOTInductor finalist whose export alone would outlast what is left is skipped at the end
    # (tuner.export.emit): the reserve holds the TorchScript finalist's export instead.
    settings = TuneSettings(study_name="r", finalists=2)
    costs = _Costs([], 2, "gpu")
    costs.add(Outcome(candidate=Candidate("inductor"), value_s=0.001, compile_s=30.0))
    costs.add(Outcome(candidate=Candidate("torchscript"), value_s=0.002, compile_s=2.0))
    unlimited = final_reserve(costs, settings)
    short = final_reserve(costs, settings, left_s=120.0)
    inductor_export = export_estimate(Candidate("inductor"), 30.0, "gpu")
    assert unlimited - short == pytest.approx(RESERVE_FACTOR * (inductor_export - 2.0))
    assert final_reserve(costs, settings, left_s=10_000.0) == unlimited
