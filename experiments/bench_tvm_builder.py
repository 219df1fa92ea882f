"""MetaSchedule builders side by side: TVM's default ``LocalBuilder`` against the tuner's warm pool.

Builds the same batches of candidate schedules (the design spaces of the demo decoder's costliest
fused kernels) with both builders, in one process, and prints seconds per schedule: the first
batch (which pays for starting the pool) and the later ones (what every further MetaSchedule
round pays).

    python experiments/bench_tvm_builder.py [--device cpu|gpu] [--batches 3] [--top-k 4]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    parser.add_argument("--batches", type=int, default=3, help="batches built by each builder")
    parser.add_argument("--top-k", type=int, default=4, help="kernels whose design spaces are built")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--warm-first", action="store_true",
                        help="measure the tuner's builder first (when a time limit may cut the run short)")
    args = parser.parse_args()

    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.builder import BuilderInput, LocalBuilder

    from backends._tvm_import import import_model
    from backends._tvm_pipeline import PipelineOptions, prepare, target_for
    from backends._tvm_tuning import BUILDER_TIMEOUT_S, _intrinsics_importer, make_warm_builder, select_tasks
    from tuner.workloads.demo import make_demo
    from tuner.workloads.loading import make_workload

    model, data = make_demo()
    workload = make_workload(model, data, args.device)
    target = target_for(args.device)
    mod = prepare(import_model("torch.export", workload.model, workload.samples[0], False, None),
                  PipelineOptions(), target)
    tasks = select_tasks([(t, 1) for t in ms.relax_integration.extract_tasks(mod, target)], args.top_k)
    _intrinsics_importer()()
    inputs = []
    for task in tasks:
        ctx = ms.TuneContext(mod=task.dispatched[0], target=target, space_generator="post-order-apply",
                             search_strategy="replay-trace", task_name=task.task_name)
        inputs += [BuilderInput(sch.mod, target) for sch in ctx.generate_design_space()]
    print(f"{len(tasks)} kernels, {len(inputs)} schedules per batch, device {args.device}", flush=True)

    figures: dict[str, list[float]] = {}
    builders = {"LocalBuilder (TVM default)": LocalBuilder(timeout_sec=BUILDER_TIMEOUT_S),
                "WarmBuilder (tuner)": make_warm_builder()}
    order = list(builders)[::-1] if args.warm_first else list(builders)
    for name in order:
        builder = builders[name]
        per_schedule = []
        for _ in range(args.batches):
            t0 = time.perf_counter()
            results = builder.build(inputs)
            seconds = time.perf_counter() - t0
            errors = [r.error_msg for r in results if r.error_msg]
            per_schedule.append(seconds / len(inputs))
            print(f"  {name}: {seconds:6.1f} s for {len(inputs)} schedules"
                  f" ({seconds / len(inputs):.2f} s each, {len(errors)} failed)", flush=True)
        figures[name] = per_schedule
        if args.json:
            args.json.write_text(json.dumps({"device": args.device, "schedules_per_batch": len(inputs),
                                             "seconds_per_schedule": figures}, indent=2))
    base, warm = (figures[n] for n in builders)
    later_base = sum(base[1:]) / max(1, len(base) - 1)
    later_warm = sum(warm[1:]) / max(1, len(warm) - 1)
    print(f"first batch:  {base[0]:.2f} vs {warm[0]:.2f} s per schedule ({base[0] / warm[0]:.1f}x)")
    if len(base) > 1:
        print(f"later batches: {later_base:.2f} vs {later_warm:.2f} s per schedule ({later_base / later_warm:.1f}x)")


if __name__ == "__main__":
    main()
