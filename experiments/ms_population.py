"""MetaSchedule's evolutionary population at the tuner's small budgets: time spent against schedules found.

TVM's evolutionary search keeps a population of 512 schedules by default, sized for budgets of
thousands of measured schedules, and every round samples, mutates and scores all of it with its
cost model. The tuner asks for 16 or 64 per kernel. This tunes the same kernels (the costliest
``--top-k`` of a workload's first sample, the DLight-free static module the ``tvm`` backend
tunes) at one budget with each population, each in a fresh database, and prints the tuning
seconds and the best measured time of each kernel (what the compiled model will run).

    python experiments/ms_population.py --workload experiments.workloads.hf_vit:make_tiny \
        --budget 16 --top-k 2 --populations 512,128,64 --seeds 0,1 [--device cpu|gpu]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from importlib import import_module
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="experiments.workloads.hf_vit:make_tiny", help="module:factory")
    parser.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    parser.add_argument("--budget", type=int, default=16, help="measured schedules per kernel")
    parser.add_argument("--top-k", type=int, default=2, help="kernels tuned")
    parser.add_argument("--populations", default="512,128,64", help="comma list")
    parser.add_argument("--seeds", default="0,1", help="comma list: one search per seed and population")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()

    from tvm.s_tir import meta_schedule as ms

    from backends._tvm_import import import_model
    from backends._tvm_pipeline import PipelineOptions, prepare, target_for
    from backends._tvm_tuning import TuningRequest, TuningStore, run_times_s, select_tasks, tune_modules
    from tuner.workloads.loading import make_workload

    module, factory = args.workload.split(":")
    model, data = getattr(import_module(module), factory)()
    workload = make_workload(model, data, args.device)
    target = target_for(args.device)
    mod = prepare(import_model("torch.export", workload.model, workload.samples[0], False, None),
                  PipelineOptions(), target)
    tasks = select_tasks([(t, 1) for t in ms.relax_integration.extract_tasks(mod, target)], args.top_k)
    print(f"{args.workload} on {args.device}: kernels {[t.task_name for t in tasks]}, budget {args.budget}",
          flush=True)
    rows = []
    for population in (int(p) for p in args.populations.split(",")):
        for seed in (int(s) for s in args.seeds.split(",")):
            with tempfile.TemporaryDirectory() as tmp:
                store = TuningStore(Path(tmp))
                t0 = time.perf_counter()
                report = tune_modules([(mod, 1)], target, store, TuningRequest(args.budget, args.top_k),
                                      population=population, seed=seed)
                seconds = time.perf_counter() - t0
                best = {t.task_name: round(min(run_times_s(store.database, t), default=math.nan) * 1e6, 2)
                        for t in tasks}
            rows.append({"population": population, "seed": seed, "seconds": round(seconds, 1),
                         "builds": report.builds, "best_us": best})
            print(f"population {population:4d} seed {seed}: {seconds:6.1f} s, {report.builds} builds, "
                  f"best us {best}", flush=True)
            if args.json:
                args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
