"""Studies and artifacts written before the rooms moved still load, and old studies continue.

``tests/data/pre_rooms`` was written by the tuner of commit 982992d (before ``tuner/`` became
rooms): ``tune --model tests.helpers:make_tiny --backends eager,torchscript --trials 3`` (study
``old``, its ``best/`` artifact kept) and ``tune --backends eager --trials 1`` on the built-in
demo (study ``demo``), both ``--device cpu --no-mlflow``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import torch

import tuner
from tests.helpers import tiny_model, tiny_samples

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "tests" / "data" / "pre_rooms"


def _copy(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(DATA, out)
    return out


def test_an_old_studys_best_config_and_artifact_load(tmp_path: Path) -> None:
    out = _copy(tmp_path)
    emitted = json.loads((out / "old" / "best" / "best_config.json").read_text())
    cfg = tuner.best_config("old", storage=f"sqlite:///{out / 'study.db'}")
    assert cfg["trial"] == emitted["trial"] and cfg["options"] == emitted["options"]
    fn = tuner.load_optimized(out / "old" / "best")
    model = tiny_model()
    with torch.no_grad():
        for sample in tiny_samples():
            torch.testing.assert_close(fn(*sample), model(*sample), rtol=1e-4, atol=1e-4)


def _tune(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "tuner.api.cli", "--device", "cpu", "--no-mlflow", "--output-dir",
                           str(out), *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)


def test_old_studies_continue_rather_than_being_refused(tmp_path: Path) -> None:
    out = _copy(tmp_path)
    proc = _tune(out, "--model", "tests.helpers:make_tiny", "--backends", "eager,torchscript", "--trials", "4",
                 "--study-name", "old")
    assert proc.returncode == 0, proc.stderr
    assert "continuing study 'old' (3 trials so far)" in proc.stderr + proc.stdout
    # The built-in demo moved (tuner.demo -> tuner.workloads.demo); its study keeps its fingerprint.
    proc = _tune(out, "--backends", "eager", "--trials", "1", "--study-name", "demo", "--repeats", "2")
    assert proc.returncode == 0, proc.stderr
    assert "continuing study 'demo'" in proc.stderr + proc.stdout
