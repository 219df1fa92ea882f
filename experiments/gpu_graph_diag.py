"""CUDA-graph replay (``torch/cuda_graph``) against plain calls and TVM, side by side on the GPU.

    python experiments/gpu_graph_diag.py [--workloads demo,mlp] [--rounds 5]

For each workload: eager, eager replayed from CUDA graphs, TorchScript (trace, NNC fuser) plain
and replayed, and TVM's default pipeline, built and timed in alternating rounds in one process
(:func:`tuner.export.sidebyside.run_side_by_side`, the bench's protocol). Prints each row's fastest
round and its ratio to eager. A diagnostic, not the benchmark: ``experiments/bench.py`` is that.
"""

from __future__ import annotations

import argparse

from experiments.workloads import registry
from tuner.core.records import Candidate, MeasureConfig
from tuner.export.sidebyside import run_side_by_side
from tuner.runtime.switches import CUDA_GRAPH

TS = {"torchscript/method": "trace", "torchscript/fuser": "fuser1"}
ENTRIES = {
    "eager": Candidate("eager"),
    "eager + CUDA graph": Candidate("eager", options={CUDA_GRAPH: True}),
    "TorchScript trace fuser1": Candidate("torchscript", options=TS),
    "TorchScript trace fuser1 + CUDA graph": Candidate("torchscript", options={**TS, CUDA_GRAPH: True}),
    "TVM default pipeline": Candidate("tvm"),
}


def main() -> None:
    """Run the comparison and print it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="demo,mlp")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--with-compile", action="store_true",
                        help="also build torch.compile's default (does eager slow down in a process that used it?)")
    parser.add_argument("--device", default="gpu", help="cpu only checks the script: graphs need the GPU")
    args = parser.parse_args()
    for name in registry.parse_names(args.workloads):
        workload = registry.load(name, "full", args.device, None)
        entries = dict(ENTRIES)
        if args.with_compile:
            entries["torch.compile default"] = Candidate("inductor", options={"inductor/mode": "default"})
        results = run_side_by_side(workload, entries, MeasureConfig(), rounds=args.rounds,
                                   say=lambda text: print(f"  {text}", flush=True))
        eager = next((r.total_ms for r in results if r.name == "eager" and r.ok), None)
        print(f"== {name}: fastest of {args.rounds} rounds, total over {len(workload.samples)} samples")
        for r in results:
            if not r.ok:
                print(f"{r.name:40s} -  ({r.error})")
                continue
            assert r.total_ms is not None
            ratio = f"{eager / r.total_ms:.2f}x eager" if eager else ""
            rounds = " / ".join(f"{x:.3f}" for x in r.rounds_ms)
            print(f"{r.name:40s} {r.total_ms:8.3f} ms  {ratio:12s} rounds {rounds}  compile {r.compile_s:.1f} s")


if __name__ == "__main__":
    main()
