"""Side by side on one device, in one process: eager, the common peer defaults, and a tuned config.

    python experiments/bench_demo.py --device gpu --best-config tune-output/demo/best/best_config.json \
        --out experiments/results

Peers: eager; torch.compile with its defaults (Inductor, default mode, automatic dynamic shapes);
torch.compile static (dynamic=False); TorchScript (trace + freeze). Each is built through the
project's own backends and timed with DESIGN.md's protocol (warm-up excluded, CUDA events on the
GPU, median per sample, summed over the test data), in rounds that alternate the peers so that
drift on a shared machine hits all alike. Prints a table of ratios to eager and writes it, with
the raw figures, to ``<out>/<date>-<device>-demo[-<tag>].{md,json}``.

``--tvm`` adds TVM configs (:data:`TVM_CONFIGS`: TVM's default pipeline, DLight without GEMV,
fused or not, CUDA graphs, cuBLAS, MetaSchedule), ``--batch 8`` keeps the batch-8 samples only,
and ``--cache-dir`` keeps MetaSchedule's tuning database between runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys
from pathlib import Path
from typing import Any

from tuner.core.devices import device_name, resolve_device
from tuner.core.records import Candidate, MeasureConfig
from tuner.core.workload import Workload
from tuner.export.sidebyside import run_side_by_side
from tuner.workloads.loading import load_workload

PEERS: dict[str, Candidate] = {
    "eager": Candidate("eager"),
    "torch.compile default": Candidate("inductor", "mark_dynamic", "fp32", {"inductor/mode": "default"}),
    "torch.compile static": Candidate("inductor", "static", "fp32", {"inductor/mode": "default"}),
    "torchscript trace+freeze": Candidate("torchscript", "dynamic", "fp32",
                                          {"torchscript/method": "trace", "torchscript/freeze": True}),
}

#: The DLight rules of TVM's default CUDA pipeline without GEMV (GEMV crashes on this decoder).
NO_GEMV = "Matmul,Reduction,GeneralReduction,Fallback"
TVM_CONFIGS: dict[str, Candidate] = {
    "tvm default pipeline": Candidate("tvm", "static", "fp32", {}),
    "tvm DLight no-GEMV, fused": Candidate("tvm", "static", "fp32", {"tvm/dlight": NO_GEMV}),
    "tvm DLight no-GEMV, unfused": Candidate("tvm", "static", "fp32", {"tvm/dlight": NO_GEMV,
                                                                       "tvm/fuse_ops": False}),
    "tvm Fallback only, fused": Candidate("tvm", "static", "fp32", {"tvm/dlight": "Fallback"}),
    "tvm no-GEMV, fused, CUDA graphs": Candidate("tvm", "static", "fp32", {"tvm/dlight": NO_GEMV,
                                                                           "tvm/cuda_graph": True}),
    "tvm no-GEMV, fused, CUDA graphs, dynamic": Candidate("tvm", "dynamic", "fp32", {"tvm/dlight": NO_GEMV,
                                                                                     "tvm/cuda_graph": True}),
    "tvm no-GEMV, fused, cuBLAS": Candidate("tvm", "static", "fp32", {"tvm/dlight": NO_GEMV, "tvm/cublas": True}),
    "tvm no-GEMV, fused, cuBLAS, CUDA graphs": Candidate("tvm", "static", "fp32", {
        "tvm/dlight": NO_GEMV, "tvm/cublas": True, "tvm/cuda_graph": True}),
}


def only_batch(workload: Workload, batch: int) -> Workload:
    """The workload restricted to its samples of batch size ``batch``."""
    keep = [i for i, s in enumerate(workload.samples) if s[0].shape[0] == batch]
    if not keep:
        raise SystemExit(f"no test sample has batch size {batch}")
    return dataclasses.replace(workload, samples=tuple(workload.samples[i] for i in keep),
                               reference=tuple(workload.reference[i] for i in keep))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--best-config", type=Path, help="best_config.json written by tune")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("experiments/results"))
    ap.add_argument("--command", default=" ".join(sys.argv), help="the command to record with the figures")
    ap.add_argument("--tvm", action="store_true", help="add the TVM configs")
    ap.add_argument("--batch", type=int, help="keep only the samples of this batch size")
    ap.add_argument("--cache-dir", type=Path, help="where TVM keeps its tuning database")
    ap.add_argument("--tag", default="", help="suffix of the result files' names")
    ap.add_argument("--metaschedule", help="also a TVM config tuned with this budget (e.g. 16@top2)")
    args = ap.parse_args()
    device = resolve_device(args.device)
    workload = load_workload(None, None, device)
    if args.batch:
        workload = only_batch(workload, args.batch)
    entries = dict(PEERS)
    if args.tvm:
        entries.update(TVM_CONFIGS)
    if args.metaschedule:
        entries[f"tvm no-GEMV, fused, CUDA graphs, MetaSchedule {args.metaschedule}"] = Candidate(
            "tvm", "static", "fp32", {"tvm/dlight": NO_GEMV, "tvm/cuda_graph": True,
                                      "tvm/metaschedule": args.metaschedule})
    if args.best_config:
        cfg = json.loads(args.best_config.read_text())
        entries["tuned (best_config.json)"] = Candidate.from_dict(cfg)
    config = MeasureConfig(warmup=5, repeats=30)
    results = run_side_by_side(workload, entries, config, rounds=args.rounds, cache_dir=args.cache_dir,
                               say=lambda line: print(line, flush=True))
    failed = {r.name: str(r.error) for r in results if not r.ok}
    ok = {r.name: r for r in results if r.ok}
    base = ok["eager"].total_ms or float("nan")
    rows: list[dict[str, Any]] = []
    for r in ok.values():
        best = float(r.total_ms or 0.0)
        rows.append({"name": r.name, "candidate": r.candidate, "total_ms": best,
                     "per_sample_ms": best / len(workload.samples), "rounds_ms": [round(v, 4) for v in r.rounds_ms],
                     "spread": (max(r.rounds_ms) - best) / best, "speedup_vs_eager": base / best,
                     "compile_s": r.compile_s, "max_abs_err": r.max_abs_err})
    dev = device_name(device)
    today = datetime.date.today().isoformat()
    lines = [f"# Demo decoder, side by side ({today}, {dev})", "",
             f"Command: `{args.command}`", "",
             f"Test data: {len(workload.samples)} samples, batches "
             f"{[s[0].shape[0] for s in workload.samples]}; {config.repeats} timed calls per sample after "
             f"{config.warmup} warm-up; best of {args.rounds} alternating rounds.", "",
             "| config | total over test data (ms) | per sample (ms) | vs eager | compile (s) | round spread | "
             "max abs err |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['name']} | {row['total_ms']:.3f} | {row['per_sample_ms']:.3f} | "
                     f"{row['speedup_vs_eager']:.2f}x | {row['compile_s']:.1f} | {row['spread'] * 100:.1f}% | "
                     f"{row['max_abs_err']:.2e} |")
    for name, reason in failed.items():
        lines.append(f"| {name} | {reason[:200]} | | | | | |")
    for row in rows:
        lines.append(f"\n- {row['name']}: `{row['candidate']}`")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{today}-{'gpu' if device == 'gpu' else 'cpu'}-demo" + (f"-{args.tag}" if args.tag else "")
    (args.out / f"{stem}.md").write_text(text)
    (args.out / f"{stem}.json").write_text(json.dumps({"date": today, "device": dev, "command": args.command,
                                                       "rows": rows, "failed": failed}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
