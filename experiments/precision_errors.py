"""How far each 16-bit way of running a model lands from its fp32 outputs, by every accuracy measure.

For each workload (its test data, on the device): the fp32 reference (TF32 off), then the plain
eager model in TF32, cast to fp16 and bf16, under autocast fp16 and bf16, and each 16-bit one with
the worst modules kept in fp32 (:mod:`tuner.runtime.fallback`). Each row gives, over all samples
and outputs, the worst relative L2 error, the lowest cosine, the lowest top-1 agreement of the
first output, the largest elementwise error and the share of the o2 elementwise tolerance used
(|d| / (0.05 + 0.05 |ref|)). These are the figures the o2 default accuracy rule is chosen from
(``tuner/core/defaults.py``): a rule that fails the plain eager model in the precision it runs
would fail what users deploy.

    python experiments/precision_errors.py --device gpu --size full --out errors.json
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

from tuner.core.outputs import flatten_outputs
from tuner.runtime.errors import cosine, rel_l2, tolerance_used, top1_agreement
from tuner.runtime.fallback import local_errors
from tuner.runtime.precision import apply_precision, tf32
from tuner.workloads.loading import load_workload

WORKLOADS = ("demo", "hf_bert", "hf_gpt2", "hf_vit", "resnet50")
VARIANTS = (("tf32", 0.0), ("fp16", 0.0), ("bf16", 0.0), ("amp-fp16", 0.0), ("amp-bf16", 0.0),
            ("fp16", 0.05), ("bf16", 0.05), ("amp-fp16", 0.05), ("amp-bf16", 0.05))


def _measures(outputs: list[tuple[torch.Tensor, ...]], reference: Any) -> dict[str, float]:
    pairs = [(o.detach().cpu(), r) for outs, refs in zip(outputs, reference, strict=True)
             for o, r in zip(outs, refs, strict=True) if r.is_floating_point()]
    firsts = [(outs[0].detach().cpu(), refs[0]) for outs, refs in zip(outputs, reference, strict=True)]
    return {"rel_l2": max(rel_l2(o, r) for o, r in pairs),
            "cosine": min(cosine(o, r) for o, r in pairs),
            "top1": min(top1_agreement(o, r) for o, r in firsts),
            "max_abs": max(float((o.double() - r.double()).abs().max()) for o, r in pairs),
            "o2_elementwise_used": max(tolerance_used(o, r, 0.05, 0.05) for o, r in pairs)}


def _run(model: Any, samples: Any, precision: str) -> list[tuple[torch.Tensor, ...]]:
    with torch.no_grad(), tf32(precision == "tf32"):
        return [flatten_outputs(model(*s)) for s in samples]


def measure_workload(name: str, size: str, device: str) -> dict[str, Any]:
    """Every variant's measures, and the five worst modules by local error per 16-bit precision."""
    factory = "make_full" if size == "full" else "make_tiny"
    w = load_workload(None if name == "demo" else f"experiments.workloads.{name}:{factory}", None, device)
    rows: dict[str, Any] = {}
    rankings: dict[str, list[tuple[str, float]]] = {}
    for precision, share in VARIANTS:
        kept: tuple[str, ...] = ()
        if share:
            if precision not in rankings:
                errors = local_errors(w.model, w.samples, precision)
                rankings[precision] = sorted(errors.items(), key=lambda kv: -kv[1])
            kept = tuple(n for n, _ in rankings[precision][:max(1, round(share * len(rankings[precision])))])
        model = apply_precision(w.model, precision, kept)
        t0 = time.perf_counter()
        rows[f"{precision}+fb{share:g}" if share else precision] = {
            **_measures(_run(model, w.samples, precision), w.reference), "kept": len(kept),
            "seconds": round(time.perf_counter() - t0, 3)}
    return {"rows": rows, "worst_modules": {p: r[:5] for p, r in rankings.items()}}


def main() -> None:
    """Measure each workload and print and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="gpu")
    parser.add_argument("--size", default="full", choices=("full", "tiny"))
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    result = {"device": torch.cuda.get_device_name() if args.device == "gpu" else "cpu",
              "torch": torch.__version__, "size": args.size, "workloads": {}}
    for name in args.workloads.split(","):
        result["workloads"][name] = measure_workload(name, args.size, args.device)
        for variant, row in result["workloads"][name]["rows"].items():
            print(f"{name:9} {variant:14} rel_l2 {row['rel_l2']:.2e}  cos {row['cosine']:.6f}  top1 {row['top1']:.3f}  "
                  f"max_abs {row['max_abs']:.3g}  o2-elementwise used {row['o2_elementwise_used']:.2f}  "
                  f"kept {row['kept']}", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
