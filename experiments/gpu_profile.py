"""Where a candidate's time goes on the GPU: per sample, kernel time against the call's time.

    python experiments/gpu_profile.py --workloads hf_gpt2 [--size full] [--device gpu]

For each workload and each entry (the o2 peers a user types and the tuner's graphed candidates),
built through the project's backends: per sample, the median call time by CUDA events (what the
tuner's objective sums), the host's time to issue the call (no sync), the kernels' summed time and
their count per call from ``torch.profiler``, and the busiest kernels. When the kernels' sum is far
below the call's time, the gap is the host (Python, guards, copies into a graph's buffers) or idle
time; when it is close, the kernels themselves (GEMM efficiency, memory traffic) are the cost. A
diagnostic for issue 19's "what separates the winner from the floor", not the benchmark.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.profiler import DeviceType

from backends import get_backend
from experiments.workloads import registry
from tuner.core.records import Candidate
from tuner.runtime.models import PAD_LINEAR
from tuner.runtime.switches import CUDA_GRAPH

_TS = {"torchscript/method": "trace", "torchscript/freeze": True}
ENTRIES: dict[str, Candidate] = {
    "eager .half()": Candidate("eager", precision="fp16"),
    "eager .half() + CUDA graph": Candidate("eager", precision="fp16", options={CUDA_GRAPH: True}),
    "TorchScript .half() trace+freeze + CUDA graph": Candidate("torchscript", precision="fp16",
                                                               options={**_TS, CUDA_GRAPH: True}),
    "torch.compile reduce-overhead .half()": Candidate("inductor", "mark_dynamic", "fp16",
                                                       {"inductor/mode": "reduce-overhead"}),
    "torch.compile reduce-overhead .half() static": Candidate("inductor", "static", "fp16",
                                                              {"inductor/mode": "reduce-overhead"}),
    "eager .half() + CUDA graph + padded": Candidate("eager", precision="fp16",
                                                    options={CUDA_GRAPH: True, PAD_LINEAR: True}),
    "torch.compile reduce-overhead .half() + padded": Candidate("inductor", "mark_dynamic", "fp16",
                                                               {"inductor/mode": "reduce-overhead", PAD_LINEAR: True}),
    # The study's graphed Inductor default (search.study.GRAPHED_DEFAULTS) on a model without convolutions.
    "torch.compile default .half() + CUDA graph + padded": Candidate("inductor", "mark_dynamic", "fp16",
                                                                    {"inductor/mode": "default", CUDA_GRAPH: True,
                                                                     PAD_LINEAR: True}),
}
def _median_s(call: Callable[[], Any], repeats: int, *, sync: bool, gpu: bool) -> float:
    """Median seconds of ``call``: by CUDA events when ``gpu`` and ``sync``, else host time."""
    times = []
    for _ in range(repeats):
        if gpu and sync:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
            start.record()
            call()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
            if gpu:
                torch.cuda.synchronize()
    return float(statistics.median(times))


def _kernels(call: Callable[[], Any], calls: int, gpu: bool) -> tuple[float, float, list[tuple[str, float]]]:
    """Kernel microseconds and kernel count per call, and the five busiest kernels (us per call)."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if gpu:
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(calls):
            call()
        if gpu:
            torch.cuda.synchronize()
    kernels = [e for e in prof.events() if e.device_type == DeviceType.CUDA]
    by_name: dict[str, float] = collections.defaultdict(float)
    for e in kernels:
        by_name[e.name[:70]] += e.time_range.elapsed_us() / calls
    total = sum(by_name.values())
    return total, len(kernels) / calls, sorted(by_name.items(), key=lambda kv: -kv[1])[:5]


def profile_entry(name: str, candidate: Candidate, workload: Any, repeats: int) -> None:
    """Build one entry and print its figures per sample."""
    gpu = workload.device == "gpu"
    res = get_backend(candidate.backend).build(workload, candidate)
    if res.built is None:
        print(f"{name}: build failed: {res.error_msg}", flush=True)
        return
    fn = res.built.fn
    print(f"== {name}: {candidate.describe()} (built in {res.built.build_s:.1f} s)", flush=True)
    try:
        with torch.no_grad():
            for i, sample in enumerate(workload.samples):
                def call(s: tuple[Any, ...] = sample) -> Any:
                    return fn(*s)
                for _ in range(5):
                    call()
                timed = _median_s(call, repeats, sync=True, gpu=gpu)
                host = _median_s(call, repeats, sync=False, gpu=gpu)
                kern_us, count, top = _kernels(call, 5, gpu)
                print(f"  sample {i} {workload.shape_key(i)}: call {timed * 1e3:.3f} ms, host issue "
                      f"{host * 1e3:.3f} ms, kernels {kern_us / 1e3:.3f} ms in {count:.0f} launches", flush=True)
                for kname, us in top:
                    print(f"      {us / 1e3:8.3f} ms  {kname}", flush=True)
    except Exception as e:  # noqa: BLE001 - one entry's failure is a line, the others still run
        print(f"  run failed: {type(e).__name__}: {str(e)[:300]}", flush=True)


def gemm_tflops(n: int = 8192) -> float:
    """Achieved fp16 TFLOP/s of one n x n x n matmul: whether the GPU itself runs at its rated speed."""
    a = torch.randn(n, n, device="cuda", dtype=torch.float16)
    b = torch.randn(n, n, device="cuda", dtype=torch.float16)
    seconds = _median_s(lambda: a @ b, 20, sync=True, gpu=True)
    return 2 * n**3 / seconds / 1e12


def main() -> None:
    """Profile each entry on each workload and print it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="hf_gpt2")
    parser.add_argument("--size", default="full")
    parser.add_argument("--device", default="gpu", help="cpu only checks the script (the graphed entries fail there)")
    parser.add_argument("--entries", default=",".join(ENTRIES), help="comma list of entry names")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    if args.device == "gpu":
        print(f"{torch.cuda.get_device_name()}: fp16 GEMM 8192^3 at {gemm_tflops():.0f} TFLOP/s", flush=True)
    for wname in registry.parse_names(args.workloads):
        workload = registry.load(wname, args.size, args.device, None)
        print(f"#### {wname} ({args.size}) on {args.device}", flush=True)
        for name in args.entries.split(","):
            profile_entry(name, ENTRIES[name], workload, args.repeats)


if __name__ == "__main__":
    main()
