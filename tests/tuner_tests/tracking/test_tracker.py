"""tuner.tracking.tracker against a real MLflow sqlite store and real Optuna studies (no mocks)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import mlflow
import optuna
import pytest
from mlflow import MlflowClient
from mlflow.entities import Run

from tuner.core.errors import UserError
from tuner.core.records import Candidate, Outcome
from tuner.tracking.tracker import MAX_REASON_CHARS, Tracker
from tuner.tracking.uri import check_tracking_uri

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    # One database for the module: a fresh sqlite store costs ~1.5 s of table creation, and every
    # test uses its own study name (= experiment), so the tests do not see each other's runs.
    root = tmp_path_factory.mktemp("mlflow")
    yield f"sqlite:///{root / 'db' / 'mlflow.db'}", root / "mlruns"


def ok_outcome(value_s: float, backend: str = "inductor") -> Outcome:
    options = {} if backend == "eager" else {f"{backend}/x": 1}
    return Outcome(
        candidate=Candidate(backend=backend, shape_mode="static", options=options),
        value_s=value_s,
        median_ms=value_s * 1e3 / 4,
        p90_ms=value_s * 1e3 / 3,
        compile_s=0.5,
        max_abs_err=1e-6,
        max_rel_err=2e-6,
    )


def runs_of(client: MlflowClient, tracker: Tracker) -> tuple[list[Run], list[Run]]:
    runs = client.search_runs([tracker.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("tuner.role") == "study"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def by_trial(children: list[Run]) -> dict[int, Run]:
    return {int(r.data.tags["trial_number"]): r for r in children}


def test_study_logs_parent_and_children(store: tuple[str, Path]) -> None:
    uri, art = store
    tracker = Tracker(uri, "study-basic", art)
    parent_id = tracker.start({"trials": 3, "backends": ["eager", "inductor"]}, {"tuner.version": "0.1"})
    tracker.log_trial(0, ok_outcome(0.010, "eager"), {"backend": "eager"}, baseline_s=0.010, cached=False,
                      state="COMPLETE")
    tracker.log_trial(1, ok_outcome(0.005), {"backend": "inductor", "inductor/x": 1}, baseline_s=0.010, cached=True,
                      state="COMPLETE")
    tracker.log_trial(2, ok_outcome(0.008), {"backend": "inductor", "inductor/x": 2}, baseline_s=0.010, cached=False,
                      state="COMPLETE")

    client = MlflowClient(uri)
    parents, children = runs_of(client, tracker)
    assert [p.info.run_id for p in parents] == [parent_id]
    parent = parents[0]
    assert parent.data.params == {"trials": "3", "backends": '["eager", "inductor"]'}
    assert parent.data.tags["tuner.study"] == "study-basic"
    assert parent.data.tags["tuner.version"] == "0.1"
    assert parent.info.status == "RUNNING"
    assert len(children) == 3
    assert all(c.data.tags["mlflow.parentRunId"] == parent_id for c in children)

    child = by_trial(children)[1]
    assert child.info.run_name == "trial-0001"
    assert child.info.status == "FINISHED"
    assert child.data.params == {"backend": "inductor", "inductor/x": "1"}
    metrics = child.data.metrics
    assert metrics["objective_ms"] == pytest.approx(5.0)
    assert metrics["median_latency_ms"] == pytest.approx(1.25)
    assert metrics["p90_latency_ms"] == pytest.approx(5.0 / 3)
    assert metrics["speedup_vs_eager"] == pytest.approx(2.0)
    assert metrics["compile_s"] == pytest.approx(0.5)
    assert metrics["max_abs_err"] == pytest.approx(1e-6)
    assert metrics["max_rel_err"] == pytest.approx(2e-6)
    tags = child.data.tags
    assert (tags["backend"], tags["shape_mode"], tags["precision"]) == ("inductor", "static", "fp32")
    assert (tags["status"], tags["cached"], tags["trial_number"]) == ("COMPLETE", "true", "1")
    assert tags["candidate_key"] == ok_outcome(0.005).candidate.key()
    assert "failure_reason" not in tags and "failure_kind" not in tags
    assert by_trial(children)[0].data.tags["cached"] == "false"

    # The running best: a point at each improving trial only (trial 2 at 8 ms is no improvement).
    history = client.get_metric_history(parent_id, "best_objective_ms")
    assert sorted((m.step, round(m.value, 6)) for m in history) == [(0, 10.0), (1, 5.0)]
    assert tracker.best_objective_ms == pytest.approx(5.0)
    # Nothing leaked into the fluent API's process-global state.
    assert mlflow.active_run() is None
    tracker.close_failed("KILLED", "test over")
    assert client.get_run(parent_id).info.status == "KILLED"


def test_failed_outcome_logs_reason_and_no_latency(store: tuple[str, Path]) -> None:
    uri, art = store
    tracker = Tracker(uri, "study-fail", art)
    tracker.start({}, {})
    reason = "RuntimeError: x" + "y" * 9000
    failed = Outcome(candidate=Candidate(backend="tvm_relax"), failure_kind="build", failure_reason=reason)
    tracker.log_trial(0, failed, {"backend": "tvm_relax", "tvm_relax/odd key:@!": 3}, baseline_s=0.01,
                      cached=False, state="FAIL")

    _, children = runs_of(MlflowClient(uri), tracker)
    (child,) = children
    assert child.info.status == "FAILED"
    assert child.data.tags["status"] == "FAIL"
    assert child.data.tags["failure_kind"] == "build"
    assert child.data.tags["failure_reason"] == reason[:MAX_REASON_CHARS]
    assert child.data.metrics == {}
    # A param key with characters MLflow refuses is cleaned instead of failing the trial's logging.
    assert child.data.params == {"backend": "tvm_relax", "tvm_relax/odd key___": "3"}
    assert tracker.best_objective_ms is None


def test_resume_reuses_parent_and_skips_logged_trials(store: tuple[str, Path]) -> None:
    uri, art = store
    first = Tracker(uri, "study-resume", art)
    parent_id = first.start({"trials": 2, "level": "o1"}, {})
    first.log_trial(0, ok_outcome(0.004), {"backend": "inductor"}, baseline_s=None, cached=False, state="COMPLETE")
    first.log_trial(1, ok_outcome(0.009), {"backend": "inductor"}, baseline_s=None, cached=False, state="PRUNED")
    first.close_failed("KILLED")

    # A second tracker (a resumed study, here in the same process) continues the same parent run.
    second = Tracker(uri, "study-resume", art)
    assert second.experiment_id == first.experiment_id
    assert second.start({"trials": 4, "level": "o1"}, {}) == parent_id
    client = MlflowClient(uri)
    parent = client.get_run(parent_id)
    assert parent.info.status == "RUNNING"
    # MLflow refuses to change a logged param: the new value is kept as a tag instead.
    assert parent.data.params["trials"] == "2"
    assert parent.data.tags["param_changed.trials"] == "4"
    # The running best is seeded from the parent's metric history.
    assert second.best_objective_ms == pytest.approx(4.0)

    second.log_trial(1, ok_outcome(0.009), {"backend": "inductor"}, baseline_s=None, cached=False, state="PRUNED")
    second.log_trial(2, ok_outcome(0.006), {"backend": "inductor"}, baseline_s=None, cached=False, state="COMPLETE")
    second.log_trial(3, ok_outcome(0.003), {"backend": "inductor"}, baseline_s=None, cached=False, state="COMPLETE")
    parents, children = runs_of(client, second)
    assert len(parents) == 1
    assert sorted(int(c.data.tags["trial_number"]) for c in children) == [0, 1, 2, 3]
    assert by_trial(children)[1].data.tags["status"] == "PRUNED"
    history = client.get_metric_history(parent_id, "best_objective_ms")
    assert sorted((m.step, round(m.value, 6)) for m in history) == [(0, 4.0), (3, 3.0)]


def test_finish_stores_report_config_plots_and_best_dir(
    store: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri, art = store
    # Artifacts must go to the given artifact dir, never into ./mlruns of the cwd.
    monkeypatch.chdir(tmp_path)
    study = optuna.create_study(study_name="study-finish")
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0) ** 2 + t.suggest_int("y", 0, 3), n_trials=6)
    best_dir = tmp_path / "best"
    (best_dir / "model").mkdir(parents=True)
    (best_dir / "model" / "weights.bin").write_bytes(b"\0" * 64)

    tracker = Tracker(uri, study.study_name, art)
    parent_id = tracker.start({}, {})
    for trial in study.trials:
        tracker.log_trial(trial.number, ok_outcome(float(trial.values[0]) + 0.001), trial.params, baseline_s=None,
                          cached=False, state="COMPLETE")
    report = {"status": "ok", "speedup": 1.75, "out": tmp_path}  # a Path: written with str()
    tracker.finish(report=report, best_config={"backend": "eager"}, study=study, best_dir=best_dir)

    client = MlflowClient(uri)
    top = {a.path for a in client.list_artifacts(parent_id)}
    assert {"report.json", "best_config.json", "plots", "best"} <= top
    assert {a.path for a in client.list_artifacts(parent_id, "plots")} == {
        "plots/optimization_history.html",
        "plots/param_importances.html",
    }
    assert [a.path for a in client.list_artifacts(parent_id, "best/model")] == ["best/model/weights.bin"]
    stored = json.loads(Path(client.download_artifacts(parent_id, "report.json", str(tmp_path))).read_text())
    assert stored == {"status": "ok", "speedup": 1.75, "out": str(tmp_path)}

    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["speedup"] == pytest.approx(1.75)
    assert parent.info.artifact_uri.startswith(art.resolve().as_uri())
    assert not (tmp_path / "mlruns").exists()


def test_finish_explains_missing_importances(store: tuple[str, Path]) -> None:
    uri, art = store
    study = optuna.create_study(study_name="study-one-trial")
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=1)
    tracker = Tracker(uri, study.study_name, art)
    parent_id = tracker.start({}, {})
    tracker.finish(report=None, best_config=None, study=study, best_dir=None, status="KILLED")

    client = MlflowClient(uri)
    plots = {a.path for a in client.list_artifacts(parent_id, "plots")}
    assert plots == {"plots/optimization_history.html", "plots/param_importances.txt"}
    text = Path(client.download_artifacts(parent_id, "plots/param_importances.txt", str(art.parent))).read_text()
    assert "at least 2" in text
    assert client.get_run(parent_id).info.status == "KILLED"


def test_check_tracking_uri_rejects_unusable_uris(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown scheme"):
        check_tracking_uri("foo://x")
    with pytest.raises(UserError, match="file store"):
        check_tracking_uri(str(tmp_path / "mlruns"))
    with pytest.raises(UserError, match="in-memory"):
        check_tracking_uri("sqlite://")

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # The port is closed now: nothing answers there.
    with pytest.raises(UserError, match="does not answer") as info:
        check_tracking_uri(f"http://127.0.0.1:{port}", timeout_s=2.0)
    assert "\n" not in info.value.one_line()


def test_check_tracking_uri_accepts_sqlite_in_new_dir_and_creates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "a" / "b" / "mlflow.db"
    check_tracking_uri(f"sqlite:///{db}")
    assert not (tmp_path / "a").exists()  # checked, not made: a later check may still refuse the run
    Tracker(f"sqlite:///{db}", "made-here", tmp_path / "mlruns")
    assert db.is_file()  # the tracker makes the folder when it opens the store

    not_db = tmp_path / "notes.db"
    not_db.write_text("hello")
    with pytest.raises(UserError, match="not an sqlite database"):
        check_tracking_uri(f"sqlite:///{not_db}")
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(UserError, match="is not a folder"):
        check_tracking_uri(f"sqlite:///{tmp_path / 'file' / 'mlflow.db'}")


def test_log_trial_before_start_and_bad_state(store: tuple[str, Path]) -> None:
    uri, art = store
    tracker = Tracker(uri, "study-misuse", art)
    with pytest.raises(RuntimeError, match="start"):
        tracker.log_trial(0, ok_outcome(0.01), {}, baseline_s=None, cached=False, state="COMPLETE")
    tracker.start({}, {})
    with pytest.raises(ValueError, match="state"):
        tracker.log_trial(0, ok_outcome(0.01), {}, baseline_s=None, cached=False, state="RUNNING")
