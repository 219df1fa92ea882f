"""The ``tune`` command as a user runs it: a real process, exit codes and one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import tiny_samples

ROOT = Path(__file__).resolve().parents[3]


def tune(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "tuner.api.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd or ROOT, timeout=600)


def test_help_explains_every_option():
    out = tune("--help")
    assert out.returncode == 0
    for option in ("--model", "--test-data", "--trials", "--device", "--level", "--study-name", "--storage",
                   "--mlflow-uri", "--backends", "--timeout", "--output-dir", "--seed", "--static-only"):
        assert option in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trials", "0"], "--trials must be at least 1"),
        (["--trials", "-3"], "--trials must be at least 1"),
        (["--model", "missing.pt", "--test-data", "x.pt"], "model file missing.pt does not exist"),
        (["--model", "tests.helpers:make_tiny", "--backends", "nosuch"], "unknown backend 'nosuch'"),
        (["--level", "o3"], "unknown level"),
        (["--device", "tpu"], "unknown device"),
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(tmp_path, args, message):
    out = tune(*args, "--output-dir", str(tmp_path / "out"))
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert lines[-1].startswith("tune: error: ") and message in lines[-1], out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "out" / "study.db").exists()


def test_test_data_that_does_not_fit_the_model(tmp_path):
    torch.save([(torch.randn(2, 5), torch.randn(2, 16))], tmp_path / "bad.pt")
    out = tune("--model", "tests.helpers:make_tiny", "--test-data", str(tmp_path / "bad.pt"),
               "--output-dir", str(tmp_path / "out"))
    assert out.returncode == 2 and "does not fit the model" in out.stderr
    assert "Traceback" not in out.stderr


def test_tune_then_best(tmp_path):
    torch.save(tiny_samples(), tmp_path / "data.pt")
    out = tune("--model", "tests.helpers:make_tiny", "--test-data", str(tmp_path / "data.pt"), "--trials", "5",
               "--backends", "eager,torchscript", "--device", "cpu", "--study-name", "cli",
               "--output-dir", str(tmp_path / "out"), "--no-mlflow")
    assert out.returncode == 0, out.stderr
    assert "optimizations" in out.stderr and "MLflow tracking is off" in out.stderr
    assert (tmp_path / "out" / "cli" / "best" / "report.json").is_file()
    best = tune("best", "--study-name", "cli", "--output-dir", str(tmp_path / "out"))
    assert best.returncode == 0, best.stderr
    cfg = json.loads(best.stdout)
    assert cfg["backend"] in ("eager", "torchscript")
    missing = tune("best", "--study-name", "nope", "--output-dir", str(tmp_path / "out"))
    assert missing.returncode == 2 and "no study named 'nope'" in missing.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_study_and_writes_the_best_so_far(tmp_path, sig):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuner.api.cli", "--model", "tests.helpers:make_tiny", "--trials", "500",
         "--device", "cpu", "--backends", "eager,torchscript,inductor", "--study-name", "sig", "--output-dir", str(out),
         "--no-mlflow"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            time.sleep(1)
            if (out / "study.db").exists() and _finished(out) >= 3:
                break
        assert proc.poll() is None, proc.communicate()[1]
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    report = json.loads((out / "sig" / "best" / "report.json").read_text())
    assert report["search"]["stopped_by"] == "interrupted"
    assert report["search"]["trials"] >= 3
    assert "Traceback" not in stderr


def _finished(out: Path) -> int:
    import optuna
    from optuna.trial import TrialState

    try:
        study = optuna.load_study(study_name="sig", storage=f"sqlite:///{out / 'study.db'}")
    except Exception:  # noqa: BLE001 - not created yet
        return 0
    return len(study.get_trials(states=(TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)))
