"""Why does reduce-overhead not beat eager on the demo decoder on the GPU? A focused look.

    TORCH_LOGS=perf_hints python experiments/gpu_diag.py

Times eager and Inductor reduce-overhead (static and dynamic) on batch 8 only, with a long warm-up,
prints cudagraph skip hints (via TORCH_LOGS), and the same through CUDA-graph capture by hand.
"""

from __future__ import annotations

import torch

from backends import get_backend
from tuner.core.records import Candidate, MeasureConfig
from tuner.workloads.demo import make_demo
from tuner.workloads.loading import make_workload


def main() -> None:
    model, data = make_demo()
    b8 = [s for s in data if s[0].shape[0] == 8][:1] * 4
    w = make_workload(model, b8, "gpu", name="diag")
    cfg = MeasureConfig(warmup=20, repeats=100, gpu_warmup_s=1.0)
    for cand in (Candidate("eager"), Candidate("inductor", "static", "fp32", {"inductor/mode": "reduce-overhead"}),
                 Candidate("inductor", "static", "fp32", {"inductor/mode": "default"}),
                 Candidate("inductor", "dynamic", "fp32", {"inductor/mode": "reduce-overhead"})):
        be = get_backend(cand.backend)
        r = be.build(w, cand)
        if r.built is None:
            print(cand.describe(), "build failed", r.error_msg)
            continue
        ms = [be.measure(r.built, w, cfg).total_s / len(b8) * 1e3 for _ in range(3)]
        print(f"{cand.describe():70s} per call ms: {', '.join(f'{m:.3f}' for m in ms)}", flush=True)
    # By hand: one CUDA graph of eager at batch 8.
    x = w.samples[0]
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.no_grad(), torch.cuda.stream(s):
        for _ in range(3):
            model(*x)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(g):
        model(*x)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for _ in range(50):
        g.replay()
    times = []
    for _ in range(100):
        start.record()
        g.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    print(f"eager captured in one CUDA graph by hand: median {times[50]:.3f} ms per call")


if __name__ == "__main__":
    main()
