"""Does TorchScript trace + freeze + optimize_for_inference capture in a CUDA graph, in a fresh process?

    PYTHONPATH=. python experiments/gpu_capture_repro.py

In runs 5 and 6 (2026-11-30, H200) five such graph candidates failed to capture inside warm tune
workers ("operation failed due to a previous error during capture") while others of the same kind
completed. This builds that candidate by hand from the demo decoder, for fuser none and fuser1, with
3 and 10 warm-up calls, two fresh processes each, and calls it over the demo's test data three
times. Needs torch and a GPU only (no TVM, Optuna or MLflow). On 2026-11-30: 8 of 8 "ok".
"""

from __future__ import annotations

import subprocess
import sys

CODE = r'''
import sys, torch
from tuner.workloads.demo import make_demo
from tuner.runtime.cuda_graphs import GraphedCall
warm = int(sys.argv[1]); fuser = sys.argv[2]
model, data = make_demo()
model = model.cuda().eval()
data = [tuple(t.cuda() for t in s) for s in data]
with torch.no_grad():
    m = torch.jit.trace(model, data[0], check_trace=False, strict=False)
    m = torch.jit.optimize_for_inference(torch.jit.freeze(m.eval()))
    if fuser == "fuser1":
        torch._C._jit_set_texpr_fuser_enabled(True)
    g = GraphedCall(m, warmup=warm)
    try:
        for rep in range(3):
            for s in data:
                g(*s)
        torch.cuda.synchronize()
        print("ok", warm, fuser)
    except Exception as e:
        print("FAIL", warm, fuser, str(e)[:300])
'''


def main() -> None:
    """Run every variant in its own process and print each result."""
    for warm in (3, 10):
        for fuser in ("none", "fuser1"):
            for _ in range(2):
                r = subprocess.run([sys.executable, "-c", CODE, str(warm), fuser], capture_output=True, text=True,
                                   timeout=60)
                print((r.stdout.strip() or r.stderr.strip()[-300:]), flush=True)


if __name__ == "__main__":
    main()
