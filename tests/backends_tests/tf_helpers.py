"""Shared by the TF backend tests: the seed-like ASR workload and fresh-process checks of artifacts."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

from experiments.workloads import tf_asr
from tuner.core.workload import Workload
from tuner.workloads.loading import make_workload

#: Two memory lengths, the first repeated: two distinct shapes, three samples.
ASR_TIMES: tuple[int, ...] = (12, 20, 12)


@functools.cache
def asr_workload() -> Workload:
    """The seed-like decoder (functional while loop) with three batch-4 samples."""
    return make_workload(tf_asr.build_graph_def(), tf_asr.make_samples(ASR_TIMES), "cpu", name="tf_asr",
                         inputs=list(tf_asr.INPUTS), outputs=list(tf_asr.OUTPUTS))


def write_manifest(directory: Path, backend: str, candidate: dict[str, object], meta: dict[str, object]) -> None:
    (directory / "artifact.json").write_text(json.dumps({"backend": backend, "device": "cpu", "candidate": candidate,
                                                         "meta": meta}))


#: Run in a fresh process: load the artifact with plain TF through load_optimized, run every sample,
#: and print the outputs' digest and the XLA launches the session really executed.
_PROBE = r"""
import json, sys, torch
from tuner.export.artifact import load_optimized
from tuner.runtime.tf_session import SessionRunner, xla_ops
fn = load_optimized(sys.argv[1], "cpu")
data = torch.load(sys.argv[2], weights_only=True)
outs = [[t.tolist() for t in fn(*s)] for s in data]
launches = xla_ops(fn.run_traced(*data[0])) if isinstance(fn, SessionRunner) else None
print("PROBE " + json.dumps({"outputs": outs, "xla_launches": launches}))
"""


def run_fresh(directory: Path, workload: Workload, tmp: Path) -> tuple[dict[str, object], str]:
    """Load and run the artifact in a fresh Python process with TF's info logs on.

    Returns:
        ``({"outputs": [...], "xla_launches": [...] | None}, stderr)``.
    """
    import torch

    data = tmp / "samples.pt"
    torch.save([tuple(s) for s in workload.samples], data)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "TF_CPP_MIN_LOG_LEVEL": "0"}
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(directory), str(data)], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("PROBE "))
    return json.loads(line[len("PROBE "):]), proc.stderr


#: What TF logs (at info level) the first time XLA compiles a cluster in a process.
XLA_COMPILED = "Compiled cluster using XLA"
