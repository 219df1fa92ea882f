"""Does ``torch.compile`` serve GPT-2's prefill and decode step? The user's own call, and the tuner's prepared model.

    PYTHONPATH=. python experiments/gpt2_compile_probe.py [--size tiny] [--precisions fp32,bf16,amp-bf16]

On an H100 with torch 2.11 every Inductor trial of GPT-2 and both ``torch.compile`` peers failed
(experiments/results/2026-12-06-h100-levels-run4.md). This prints, on the CPU or the GPU, for each
precision: ``torch.compile(model)`` as a user calls it (the model cast to the precision, Inductor,
both test samples), and Dynamo alone (``backend="eager"``) and Inductor over the model the tuner
compiles (:func:`tuner.runtime.models.prepared_model`), and the inductor backend's own compile
(with :mod:`backends._inductor_passes`). Needs torch and transformers only.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable
from typing import Any

import torch

from backends.inductor import InductorBackend
from experiments.workloads import hf_gpt2
from tuner.core.records import Candidate
from tuner.runtime.models import prepared_model
from tuner.runtime.precision import DTYPES, floats_to
from tuner.workloads.loading import make_workload


def attempt(name: str, fn: Callable[..., Any], samples: list[tuple[torch.Tensor, ...]]) -> None:
    """Call ``fn`` on every sample; print whether all ran or the first error's first line."""
    torch._dynamo.reset()
    try:
        with torch.no_grad():
            for sample in samples:
                fn(*sample)
        print(f"{name}: ran both samples", flush=True)
    except Exception as e:  # noqa: BLE001 - the probe reports it
        print(f"{name}: FAILED {type(e).__name__}: {str(e).strip().splitlines()[0][:160]}", flush=True)


def main() -> None:
    """Probe each precision asked for."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=("full", "tiny"), default="tiny")
    ap.add_argument("--precisions", default="fp32,bf16,amp-bf16")
    ap.add_argument("--device", default="gpu" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    model, samples = hf_gpt2.make_full() if args.size == "full" else hf_gpt2.make_tiny()
    workload = make_workload(model, samples, args.device, name="gpt2")
    print(f"torch {torch.__version__}, device {args.device}, GPT-2 {args.size}", flush=True)
    for precision in args.precisions.split(","):
        if precision in ("fp32", *DTYPES):
            dtype = DTYPES.get(precision, torch.float32)
            users = copy.deepcopy(workload.model).to(dtype)
            cast = [floats_to(s, dtype) for s in workload.samples]
            attempt(f"{precision} user's torch.compile(model)", torch.compile(users), cast)
        candidate = Candidate("inductor", shape_mode="mark_dynamic", precision=precision)
        prepared = prepared_model(workload, candidate, trace=True)
        attempt(f"{precision} prepared model, Dynamo only", torch.compile(prepared, backend="eager"), workload.samples)
        attempt(f"{precision} prepared model, Inductor", torch.compile(prepared), workload.samples)
        built = InductorBackend().compile(workload, candidate)
        attempt(f"{precision} the inductor backend's compile (its graph pass)", built.fn, workload.samples)


if __name__ == "__main__":
    main()
