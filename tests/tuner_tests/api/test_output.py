"""What ``tune`` leaves in its output dir: studies side by side, and nothing when nothing won."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient

import tuner
from tuner.search.study import load_study

ROOT = Path(__file__).resolve().parents[3]


def start_tune(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "tuner.api.cli", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_two_studies_in_one_output_dir_at_once_each_get_their_own_results(tmp_path):
    out = tmp_path / "out"
    # Both start on an empty dir: they race to create study.db, mlflow.db (its migrations) and mlruns/.
    procs = {name: start_tune("--model", "tests.cli_workloads:make_tiny", "--device", "cpu", "--trials", "4",
                              "--backends", "eager,torchscript", "--study-name", name, "--output-dir", str(out))
             for name in ("first", "second")}
    results = {name: p.communicate(timeout=600) for name, p in procs.items()}
    for name, p in procs.items():
        assert p.returncode == 0, results[name][1]
        assert "Traceback" not in results[name][1]
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    for name in procs:
        best = out / name / "best"
        config = json.loads((best / "best_config.json").read_text())
        report = json.loads((best / "report.json").read_text())
        assert config["study"] == name and report["study"]["name"] == name
        assert report["artifact"]["verified"] is True
        assert tuner.load_optimized(best) is not None
        study = load_study(name, f"sqlite:///{out / 'study.db'}")
        assert len(study.trials) == 4
        experiment = client.get_experiment_by_name(name)
        runs = client.search_runs([experiment.experiment_id])
        children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
        assert len(runs) - len(children) == 1 and len(children) == 4
    # Nothing but the shared stores (with the locks that serialise their creation, and the one of
    # the trials' claims), one folder per study, and the worker processes' scratch folder, where
    # each study process has its own.
    assert {p.name for p in out.iterdir()} <= {"study.db", "mlflow.db", ".study.db.lock", ".mlflow.db.lock",
                                               ".study.db.claims.lock", "mlruns", "cache", "workers", "first",
                                               "second"}
    scratch = sorted(p.name.rsplit("-", 1)[0] for p in (out / "workers").iterdir())
    assert scratch == ["first", "second"]
    assert not [p for p in out.rglob(".*tmp-*")]


def test_a_study_with_no_successful_trial_says_so_and_writes_no_artifact(tmp_path):
    out = tmp_path / "out"
    proc = start_tune("--model", "tests.cli_workloads:make_tiny", "--device", "cpu", "--trials", "3",
                      "--backends", "test_always_fails", "--study-name", "nothing", "--output-dir", str(out))
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 1, stderr
    said = [line for line in stderr.splitlines() if "no successful trial" in line]
    assert len(said) == 1, stderr
    # The only candidate of the space fails to build; the study stops once it has seen it.
    assert "no artifact was written" in said[0] and "{'build': 1}" in said[0]
    assert "Traceback" not in stderr
    assert not (out / "nothing").exists()
    # The report says so too: it is on the study's MLflow run, with every failure's reason.
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("nothing")
    parent = next(r for r in client.search_runs([experiment.experiment_id])
                  if "mlflow.parentRunId" not in r.data.tags)
    report = json.loads(Path(client.download_artifacts(parent.info.run_id, "report.json", str(tmp_path))).read_text())
    assert report["status"] == "no successful trial" and report["artifact"] is None
    assert report["search"]["failures_by_reason"] == {"build": 1}
    assert "this compiler cannot build the model" in json.dumps(report["search"]["failures"])
