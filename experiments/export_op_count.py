"""Count the aten ops a model runs as the eager candidate and as its exported artifact.

On an H100 GPT-2's graphed eager artifact (a ``torch.export`` program) ran at 91 % of the graphed
eager candidate (experiments/results/2026-12-06-h100-levels-run5.md). Inside a CUDA graph every op
that launches a kernel costs the same few microseconds, so extra ops in the exported program are
a likely reason. This runs both over the workload's test data on the CPU and prints the ops whose
counts differ.

    PYTHONPATH=. python experiments/export_op_count.py [workload] [size] [precision]
"""

from __future__ import annotations

import collections
import importlib
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from backends.eager import EagerBackend
from tuner.core.records import Candidate
from tuner.workloads.loading import make_workload


class OpCount(TorchDispatchMode):
    """Counts every aten op dispatched while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.counts[str(func)] += 1
        return func(*args, **(kwargs or {}))


def counts(fn: Any, samples: list[tuple[torch.Tensor, ...]]) -> collections.Counter[str]:
    """The ops ``fn`` runs over the samples, under ``no_grad`` as the tuner measures."""
    with torch.no_grad(), OpCount() as mode:
        for sample in samples:
            fn(*sample)
    return mode.counts


def main(name: str = "hf_gpt2", size: str = "small", precision: str = "bf16") -> None:
    """Print both totals and the ops whose counts differ, largest difference first."""
    mod = importlib.import_module(f"experiments.workloads.{name}")
    workload = make_workload(mod.make_model(size), mod.make_samples(size), "cpu", name=name)
    candidate = Candidate("eager", precision=precision)
    backend = EagerBackend()
    built = backend.compile(workload, candidate)
    folder = Path(tempfile.mkdtemp())
    meta = backend.export(built, workload, candidate, folder)
    artifact = EagerBackend.load(folder, meta, "cpu")
    model_ops, artifact_ops = counts(built.fn, workload.samples), counts(artifact, workload.samples)
    print(f"{name} {size} {precision} on the CPU, torch {torch.__version__}; artifact format {meta['format']}")
    print(f"candidate: {sum(model_ops.values())} ops; artifact: {sum(artifact_ops.values())} ops")
    differ = {op for op in model_ops.keys() | artifact_ops.keys() if model_ops[op] != artifact_ops[op]}
    for op in sorted(differ, key=lambda o: -abs(artifact_ops[o] - model_ops[o])):
        print(f"  {op}: artifact {artifact_ops[op]}, candidate {model_ops[op]}")


if __name__ == "__main__":
    main(*sys.argv[1:])
