"""kill -9 of tune mid-study, then the same command again: the study continues, nothing lost or doubled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import psutil
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

import tuner.search.storage as storage_mod
from tuner.search.claims import counted_trials
from tuner.search.keys import WORKER_ATTR
from tuner.search.storage import fail_dead_trials, open_storage, retried_numbers
from tuner.search.study import load_study

ROOT = Path(__file__).resolve().parents[3]


def tune_cmd(out: Path, trials: int) -> list[str]:
    return [sys.executable, "-m", "tuner.api.cli", "--model", "tests.helpers:make_tiny", "--backends", "test_cheap",
            "--trials", str(trials), "--output-dir", str(out), "--study-name", "r", "--repeats", "3",
            "--device", "cpu"]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def study_trials(out: Path) -> list[optuna.trial.FrozenTrial]:
    try:
        return load_study("r", f"sqlite:///{out / 'study.db'}").get_trials()
    except Exception:  # noqa: BLE001 - not created yet
        return []


def kill_mid_trial(out: Path, trials: int, after: int) -> tuple[set[int], list[int]]:
    """Start tune, SIGKILL it while a trial runs once ``after`` trials count; return what was running."""
    log = open(out / f"tune-{after}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(tune_cmd(out, trials), env=env(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    workers: list[int] = []
    while time.monotonic() < deadline and proc.poll() is None:
        ts = study_trials(out)
        if len(counted_trials(ts)) >= after and any(t.state == TrialState.RUNNING for t in ts):
            workers = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
            # A trial can be RUNNING in the database while tune has no worker child yet (one is
            # started, or replaced, around a trial's start): kill only once one exists, so that
            # the check below has a worker to look for (a CI run of 50060ae once found none).
            if workers:
                os.kill(proc.pid, signal.SIGKILL)
                break
        time.sleep(0.05)
    proc.wait()
    log.close()
    assert proc.returncode == -signal.SIGKILL, (out / f"tune-{after}.log").read_text()[-3000:]
    return {t.number for t in study_trials(out) if t.state == TrialState.RUNNING}, workers


def test_kill_9_mid_study_then_the_same_command_continues_it(tmp_path):
    killed_running: set[int] = set()
    for after in (2, 5):
        running, workers = kill_mid_trial(tmp_path, 10, after)
        killed_running |= running
        # The worker process dies with the study process (PR_SET_PDEATHSIG), holding nothing.
        time.sleep(1.0)
        assert workers and not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
                                   for p in workers)
    assert killed_running, "no kill landed while a trial was running"
    done = subprocess.run(tune_cmd(tmp_path, 10), env=env(), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

    trials = study_trials(tmp_path)
    counted = counted_trials(trials)
    assert len(counted) == 10
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    # Every trial left running by a kill was failed and queued again (Optuna's retry history).
    assert killed_running <= retried_numbers(trials)
    assert not killed_running & {t.number for t in counted}
    # MLflow: one parent run, continued; one live child per counted trial.
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("r").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = [int(r.data.tags["trial_number"]) for r in runs
                if "mlflow.parentRunId" in r.data.tags and r.data.tags.get("status") != "RETRIED"]
    assert sorted(children) == sorted(t.number for t in counted)
    # The artifact: written once, by the run that finished, with no half-written folder beside it.
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["best"]
    assert (tmp_path / "r" / "best" / "report.json").is_file()


def test_a_dead_processs_running_trial_is_failed_and_queued_again_at_once(tmp_path):
    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path / 's.db'}"), study_name="d")
    dead_pid = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_pid.wait()
    me = storage_mod.identity()
    dead = study.ask({"x": optuna.distributions.CategoricalDistribution([1, 2, 3])})
    dead.set_user_attr(WORKER_ATTR, {**me, "pid": dead_pid.pid})
    alive = study.ask({"x": optuna.distributions.CategoricalDistribution([1, 2, 3])})
    alive.set_user_attr(WORKER_ATTR, me)
    remote = study.ask({"x": optuna.distributions.CategoricalDistribution([1, 2, 3])})
    remote.set_user_attr(WORKER_ATTR, {**me, "host": "another-machine"})
    assert fail_dead_trials(study) == [dead.number]
    assert fail_dead_trials(study) == []  # once only
    trials = study.get_trials()
    assert trials[dead.number].state == TrialState.FAIL
    assert trials[alive.number].state == TrialState.RUNNING and trials[remote.number].state == TrialState.RUNNING
    retry = [t for t in trials if t.state == TrialState.WAITING]
    assert len(retry) == 1 and retry[0].params == trials[dead.number].params
    assert retry[0].system_attrs["retry_history"] == [dead.number]


def test_another_machines_silent_trial_is_failed_by_the_heartbeat_and_retried(tmp_path, monkeypatch):
    monkeypatch.setattr(storage_mod, "HEARTBEAT_INTERVAL_S", 1)
    monkeypatch.setattr(storage_mod, "GRACE_PERIOD_S", 1)
    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path / 's.db'}"), study_name="h")
    trial = study.ask({"x": optuna.distributions.CategoricalDistribution([1, 2])})
    trial.set_user_attr(WORKER_ATTR, {"host": "another-machine", "pid": 1, "started": 0.0})
    study._storage.record_heartbeat(trial._trial_id)
    time.sleep(2.5)
    optuna.storages.fail_stale_trials(study)  # what every trial start does (Optuna's optimize)
    trials = study.get_trials()
    assert trials[0].state == TrialState.FAIL
    assert [t.system_attrs.get("retry_history") for t in trials if t.state == TrialState.WAITING] == [[0]]
