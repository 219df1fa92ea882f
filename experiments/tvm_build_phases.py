"""Where a ``tvm`` candidate's build time goes: import, pipeline, codegen and first run, per module.

Builds the demo decoder with TVM's default pipeline (static: one module per distinct test shape;
dynamic: one module) twice in one process, and prints the seconds of each phase. The second round
shows what an in-process cache of imports, or a warm worker, could save.

    python experiments/tvm_build_phases.py [--device cpu|gpu] [--rounds 2] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    import torch
    from tvm import relax

    from backends._torch_export import dynamic_shapes_spec, example_inputs, shape_key_str
    from backends._tvm_import import import_model
    from backends._tvm_pipeline import compile_prepared, prepare, target_for
    from backends.tvm import pipeline_options, tvm_device
    from tuner.core.records import Candidate
    from tuner.workloads.demo import make_demo
    from tuner.workloads.loading import make_workload

    model, data = make_demo()
    workload = make_workload(model, data, args.device)
    target = target_for(args.device)
    spec = dynamic_shapes_spec(workload)
    rows: list[dict[str, Any]] = []
    for rnd in range(args.rounds):
        for mode in ("static", "dynamic"):
            opts = pipeline_options(Candidate("tvm", shape_mode=mode), args.device)
            if mode == "static":
                examples = {shape_key_str(k): next(s for i, s in enumerate(workload.samples)
                                                   if workload.shape_key(i) == k) for k in workload.shape_counts()}
            else:
                examples = {"*": example_inputs(workload)}
            for key, sample in examples.items():
                t = [time.perf_counter()]
                mod = import_model("torch.export", workload.model, sample, key == "*", spec)
                t.append(time.perf_counter())
                prepared = prepare(mod, opts, target)
                t.append(time.perf_counter())
                ex = compile_prepared(prepared, opts, args.device, target, None)
                t.append(time.perf_counter())
                vm = relax.VirtualMachine(ex, tvm_device(args.device))
                import tvm

                vm["main"](*[tvm.runtime.from_dlpack(a.contiguous()) for a in sample])
                if args.device == "gpu":
                    torch.cuda.synchronize()
                t.append(time.perf_counter())
                row = {"round": rnd, "mode": mode, "module": key,
                       **{name: round(b - a, 3) for name, a, b in zip(("import", "prepare", "compile", "first_run"),
                                                                      t, t[1:], strict=False)}}
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"device": args.device, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
