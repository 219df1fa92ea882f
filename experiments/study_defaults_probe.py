"""A new study's default candidates for one workload, each built, checked and timed side by side.

    PYTHONPATH=. python experiments/study_defaults_probe.py [--workload hf_gpt2] [--size full] [--level o2]

The defaults are what every study measures first (:func:`tuner.search.study.default_params`): on
an H100 at o2 with torch 2.11, GPT-2's Inductor and graphed TorchScript defaults failed (run 6,
`experiments/results/2026-12-06-h100-levels-run6.md`), which a whole tune run showed only after
minutes. This builds exactly those candidates in one process, with the study's accuracy rule,
and prints one line per candidate: its side-by-side time or its error's first line.
"""

from __future__ import annotations

import argparse
import tempfile
from importlib import import_module
from pathlib import Path

import optuna
import torch

from search_space import build_candidate
from tuner.core.settings import TuneSettings
from tuner.export.sidebyside import run_side_by_side
from tuner.search.study import default_params, open_study
from tuner.workloads.loading import make_workload


def main() -> None:
    """Build, check and time the defaults of the workload asked for."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="hf_gpt2")
    ap.add_argument("--size", choices=("full", "tiny"), default="full")
    ap.add_argument("--level", default="o2")
    ap.add_argument("--device", default="gpu" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--backends", default="eager,torchscript,inductor")
    ap.add_argument("--compile-limit", type=float, default=120.0)
    args = ap.parse_args()
    module = import_module(f"experiments.workloads.{args.workload}")
    model, samples = module.make_full() if args.size == "full" else module.make_tiny()
    workload = make_workload(model, samples, args.device, name=args.workload)
    print(f"torch {torch.__version__}, {args.device}, {args.workload} {args.size}, {args.level}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        settings = TuneSettings(study_name="defaults", output_dir=Path(tmp), level=args.level,
                                backends=tuple(args.backends.split(",")))
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        _, ctx, _ = open_study(settings, workload, args.device)
        candidates = [build_candidate(optuna.trial.FixedTrial(p), ctx) for p in default_params(ctx)]
        entries = {c.describe(): c for c in candidates}
        results = run_side_by_side(workload, entries, settings.measure_config(), rounds=1, rule=settings.rule,
                                   cache_dir=Path(tmp) / "cache", compile_limit_s=args.compile_limit)
    for r in results:
        figure = f"{r.total_ms:.3f} ms" if r.ok and r.total_ms else f"FAILED {str(r.error).splitlines()[0][:200]}"
        print(f"{r.name}: {figure}", flush=True)


if __name__ == "__main__":
    main()
