"""Inductor with and without ``freezing`` (weights as constants), side by side: is it a search dimension?

``torch._inductor.config.freezing`` folds the weights into the graph as constants, which lets
Inductor fold BatchNorm into convolutions, concatenate linears that share an input and keep a
convolution's weight in its chosen layout instead of converting it per call. The tuner's
``inductor`` backend already passes any ``inductor/<key>`` through, so it would be one new choice;
this measures first whether it pays.

    PYTHONPATH=. python experiments/inductor_freezing.py --workloads resnet,bert,demo --size small --device cpu
"""

from __future__ import annotations

import argparse

import torch

from experiments.workloads import registry
from tuner.core.records import Candidate, MeasureConfig
from tuner.export.sidebyside import run_side_by_side


def main() -> None:
    """Print each workload's eager, Inductor and Inductor-with-freezing figures (ms), measured side by side."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", default="resnet,bert,demo")
    ap.add_argument("--size", choices=registry.SIZES, default="small")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", help="fp32, fp16, bf16, amp-fp16, ...")
    ap.add_argument("--mode", default="default", help="torch.compile mode")
    ap.add_argument("--threads", type=int, default=1, help="torch threads on the CPU")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    base = {"inductor/mode": args.mode}
    for name in args.workloads.split(","):
        workload = registry.load(name, args.size, args.device, None)
        entries = {"eager": Candidate("eager", precision=args.precision),
                   "inductor": Candidate("inductor", "static", args.precision, base),
                   "inductor freezing": Candidate("inductor", "static", args.precision,
                                                  {**base, "inductor/freezing": True})}
        for r in run_side_by_side(workload, entries, MeasureConfig(warmup=2, repeats=10), rounds=3):
            figure = f"{r.total_ms:.3f} ms" if r.total_ms is not None else f"no figure: {r.error}"
            print(f"{name:8} {r.name:18} {figure}", flush=True)


if __name__ == "__main__":
    main()
