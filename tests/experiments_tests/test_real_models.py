"""Models nobody here wrote, through ``tune`` end to end on the CPU: the tiny variants of the real-model workloads.

Each is the library's own class (Hugging Face BERT, GPT-2 with its ``DynamicCache``, ViT, and
ResNet-50's architecture) built from a tiny config with random weights, nothing downloaded. A run
of ``tune --trials 12`` must write a verified artifact, and the artifact, reloaded in a fresh
process with only ``tuner.load_optimized``, must return the library's own output classes with the
model's values.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import pytest
import torch

from tuner.core.outputs import flatten_outputs

pytest.importorskip("transformers", reason="the real-model workloads need transformers: pip install -e '.[models]'")


ROOT = Path(__file__).resolve().parents[2]

#: In a fresh process: load the artifact, run it on the saved samples, compare with the reference.
RELOAD = """
import json, sys, torch, tuner
from tuner.core.outputs import flatten_outputs
fn = tuner.load_optimized(sys.argv[1])
data = torch.load(sys.argv[2], weights_only=False)
outs = [fn(*s) for s in data["samples"]]
err = max(float((a - b).abs().max()) for o, r in zip(outs, data["reference"]) for a, b in zip(flatten_outputs(o), r))
print(json.dumps({"type": type(outs[0]).__module__ + "." + type(outs[0]).__name__, "max_abs_err": err}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("workload", ["hf_bert", "hf_gpt2", "hf_vit", "resnet50"])
def test_a_tiny_real_model_is_tuned_and_its_artifact_reloads_with_the_librarys_outputs(workload: str,
                                                                                       tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Two workers: CI's two cores build two candidates at once (TVM's MetaSchedule trial alone took
    # 45 s of BERT's 95 s search with one worker on this box).
    proc = subprocess.run([sys.executable, "-m", "tuner.api.cli", "--model",
                           f"experiments.workloads.{workload}:make_tiny", "--trials", "12", "--device", "cpu",
                           "--no-mlflow", "--output-dir", str(tmp_path / "out"), "--study-name", workload,
                           "--trial-timeout", "120", "--workers", "2"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    best = tmp_path / "out" / workload / "best"
    report = json.loads((best / "report.json").read_text())
    assert report["artifact"]["verified"] is True and report["search"]["trials"] == 12
    # Backends and options that cannot build these models were left out before the first trial.
    assert report["search"]["excluded_options"] == {"torchscript/method": ["script"]}

    model, samples = import_module(f"experiments.workloads.{workload}").make_tiny()
    with torch.no_grad():
        outputs = [model(*s) for s in samples]
    torch.save({"samples": samples, "reference": [flatten_outputs(o) for o in outputs]}, tmp_path / "data.pt")
    reload = subprocess.run([sys.executable, "-c", RELOAD, str(best), str(tmp_path / "data.pt")], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=600)
    assert reload.returncode == 0, reload.stderr[-3000:]
    got = json.loads(reload.stdout.strip().splitlines()[-1])
    assert got["type"] == f"{type(outputs[0]).__module__}.{type(outputs[0]).__name__}"
    assert got["max_abs_err"] < 1e-3
