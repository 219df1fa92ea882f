"""Why an Inductor candidate's compiled-format export (backends._compiled_artifact) fails on the GPU.

On an H100 (torch 2.11) the export of BERT-base's Inductor candidates (o1 and o2) and of ViT-B/16's
and ResNet-50's fp16 ones failed with Dynamo's "RuntimeError when making fake tensor call"
(experiments/results/2026-12-06-h100-levels-run5.md), while the CPU tests pass. This prints each
case's whole error: the exported programs compiled as written and reloaded (the format's path) and,
beside it, the same programs compiled from memory, without the save and reload.

    PYTHONPATH=. python3 experiments/compiled_export_probe.py [workload:size:precision ...]
"""

from __future__ import annotations

import importlib
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

from backends._export_cover import export_covering, load_covering
from backends.inductor import InductorBackend, compile_options, compiled
from tuner.core.records import Built, Candidate
from tuner.runtime.models import prepared_model
from tuner.workloads.loading import make_workload


def case(spec: str) -> None:
    """Export one workload's Inductor candidate both ways and print what each raised."""
    name, size, precision = spec.split(":")
    mod = importlib.import_module(f"experiments.workloads.{name}")
    device = "gpu" if torch.cuda.is_available() else "cpu"
    workload = make_workload(mod.make_model(size), mod.make_samples(size), device, name=name)
    candidate = Candidate("inductor", shape_mode="mark_dynamic", precision=precision,
                          options={"torch/cuda_graph": True})
    t0 = time.perf_counter()
    art = Path(tempfile.mkdtemp())
    try:
        meta = InductorBackend()._export_compiled(Built(fn=None, build_s=0.0, state={}), workload, candidate, art)
        print(f"{spec} reloaded: OK {meta['format']} {time.perf_counter() - t0:.0f} s", flush=True)
    except Exception as e:  # noqa: BLE001 - the probe reports every failure
        print(f"{spec} reloaded: FAILED {time.perf_counter() - t0:.0f} s", flush=True)
        print("".join(traceback.format_exception(e))[-6000:], flush=True)
    finally:
        shutil.rmtree(art, ignore_errors=True)
    t0 = time.perf_counter()
    try:
        model = prepared_model(workload, candidate, trace=True)
        programs = export_covering(model, workload)
        fns = [compiled(p.module(), "mark_dynamic", compile_options(candidate), len(workload.shape_counts()),
                        workload.varying_dims()) for p, _ in programs]
        meta = {"file": "x", "programs": [{"file": str(i), "shapes": s} for i, (_, s) in enumerate(programs)]}
        fn = load_covering(Path("."), meta, lambda f: fns[int(f.name)]) if len(fns) > 1 else fns[0]
        with torch.no_grad():
            for sample in workload.samples:
                fn(*sample)
        print(f"{spec} in memory: OK {time.perf_counter() - t0:.0f} s", flush=True)
    except Exception as e:  # noqa: BLE001
        print(f"{spec} in memory: FAILED: {''.join(traceback.format_exception_only(e))[-1500:]}", flush=True)


if __name__ == "__main__":
    print(torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu", flush=True)
    for spec in sys.argv[1:] or ["hf_bert:full:fp32", "resnet50:full:fp16"]:
        case(spec)
