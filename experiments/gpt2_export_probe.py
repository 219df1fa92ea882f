"""Why GPT-2's eager artifact fell back to a trace on the GPU: export it per precision, reload it, replay it.

    PYTHONPATH=. python experiments/gpt2_export_probe.py [--size full] [--precisions fp32,fp16]

On an H100 (torch 2.11, transformers 5.17, 2026-12-06) the eager artifact of GPT-2 fell back to
``torch.jit.trace`` in fp32 and fp16, and the trace did not capture in a CUDA graph. On this
project's CPU box the fp16/bf16 failure reproduced (the half-precision wrapper's cast of the
empty past cache, fixed in ``backends._export_cover``) but fp32 exported. This prints, per
precision, the artifact's format and ``export_error`` as the eager backend writes them, whether
the reloaded artifact runs the test data from CUDA graphs (the full error where it does not), and
any ``aten::to`` of the fallback trace (a per-call host-to-device copy is what a capture refuses).
Needs torch, transformers and a GPU only.
"""

from __future__ import annotations

import argparse
import tempfile
import traceback
from pathlib import Path

import torch

from backends import get_backend
from backends.eager import EagerBackend
from experiments.workloads import hf_gpt2
from tuner.core.records import Candidate
from tuner.runtime.cuda_graphs import GraphedCall
from tuner.workloads.loading import make_workload


def probe(size: str, precision: str, device: str) -> None:
    """Export GPT-2 in ``precision`` with the eager backend, reload it and replay it from CUDA graphs."""
    model, samples = hf_gpt2.make_full() if size == "full" else hf_gpt2.make_tiny()
    workload = make_workload(model, samples, device, name="gpt2")
    candidate = Candidate("eager", precision=precision)
    built = get_backend("eager").build(workload, candidate).built
    assert built is not None
    folder = Path(tempfile.mkdtemp())
    meta = EagerBackend().export(built, workload, candidate, folder)
    print(f"== {size} {precision}: format {meta['format']}; export_error: {meta.get('export_error')}", flush=True)
    if meta["format"] == "torchscript":
        graph = torch.jit.load(str(folder / "model.ts")).inlined_graph  # type: ignore[no-untyped-call]
        for node in graph.findAllNodes("aten::to"):
            print("   trace node:", str(node).strip()[:200])
    loaded = EagerBackend.load(folder, meta, device)
    graphed = GraphedCall(loaded)
    for sample in workload.samples:
        shapes = [tuple(t.shape) for t in sample]
        try:
            with torch.no_grad():
                graphed(*sample)
            print("   captured and replayed", shapes, flush=True)
        except Exception as e:  # noqa: BLE001 - printed whole: this is what the probe is for
            print("   capture FAILED", shapes, "".join(traceback.format_exception(e))[-3000:], flush=True)


def main() -> None:
    """Probe each precision asked for."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=("full", "tiny"), default="full")
    ap.add_argument("--precisions", default="fp32,fp16")
    ap.add_argument("--device", default="gpu" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    for precision in args.precisions.split(","):
        try:
            probe(args.size, precision, args.device)
        except Exception:  # noqa: BLE001 - the next precision still runs
            traceback.print_exc()


if __name__ == "__main__":
    main()
