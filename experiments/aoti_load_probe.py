"""Why an AOTInductor package dies when a fresh process loads it: the load tried in variants, one process each.

Builds a small package (a Linear + GELU model, dynamic batch) on the device, then loads and runs it
in fresh ``python3`` processes that differ only in what they do before the load: nothing, CUDA
initialised through torch, a CUDA tensor made, numpy or onnxruntime imported, libcuda loaded
globally, and the same load under ``gdb`` (a native backtrace) and ``LD_DEBUG=libs`` (which
library was being loaded last). Prints one line per variant: its exit code and the telling lines.

    python3 experiments/aoti_load_probe.py [--device gpu] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

LOAD = """
import faulthandler, sys
faulthandler.enable()
{before}
import torch
from torch._inductor import aoti_load_package
runner = aoti_load_package(sys.argv[1])
x = torch.randn(3, 64, device=sys.argv[2])
print("LOADED-AND-RAN", tuple(runner(x).shape), flush=True)
"""

VARIANTS = {
    "bare": "",
    "torch.cuda.init() first": "import torch; torch.cuda.init()",
    "a CUDA tensor first": "import torch; torch.zeros(1, device='cuda')",
    "torch.cuda.current_device() first": "import torch; torch.cuda.current_device()",
    "numpy first": "import numpy",
    "onnxruntime first": "import onnxruntime",
    "libcuda RTLD_GLOBAL first": "import ctypes, os; ctypes.CDLL('libcuda.so.1', mode=os.RTLD_GLOBAL)",
    "import torch._inductor first": "import torch._inductor.codecache",
}


def build(folder: Path, device: str) -> Path:
    import torch
    from torch._inductor import aoti_compile_and_package

    dev = "cuda" if device == "gpu" else "cpu"
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.GELU(), torch.nn.Linear(128, 8)).to(dev).eval()
    x = torch.randn(4, 64, device=dev)
    batch = torch.export.Dim.AUTO(min=1)
    program = torch.export.export(model, (x,), dynamic_shapes=({0: batch},))
    return Path(aoti_compile_and_package(program, package_path=str(folder / "probe.pt2")))


def tail(text: str, n: int = 6) -> list[str]:
    keep = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return keep[-n:]


def run(code: str, package: Path, dev: str, env_extra: dict[str, str] | None = None,
        prefix: list[str] | None = None) -> dict[str, object]:
    import os

    env = {**os.environ, **(env_extra or {})}
    cmd = [*(prefix or []), sys.executable, "-c", code, str(package), dev]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    except subprocess.TimeoutExpired:
        return {"rc": "timeout"}
    return {"rc": proc.returncode, "ok": "LOADED-AND-RAN" in proc.stdout,
            "stdout": tail(proc.stdout, 3), "stderr": tail(proc.stderr, 8)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="gpu")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="aoti-probe-"))
    package = build(folder, args.device)
    dev = "cuda" if args.device == "gpu" else "cpu"
    results: dict[str, object] = {}
    for name, before in VARIANTS.items():
        results[name] = run(LOAD.format(before=before), package, dev)
        print(name, json.dumps(results[name]), flush=True)
    results["LD_DEBUG=libs, bare"] = run(LOAD.format(before=""), package, dev, {"LD_DEBUG": "libs"})
    print("LD_DEBUG=libs, bare", json.dumps(results["LD_DEBUG=libs, bare"]), flush=True)
    gdb = shutil.which("gdb")
    if gdb:
        results["gdb, bare"] = run(LOAD.format(before=""), package, dev,
                                   prefix=[gdb, "-batch", "-ex", "run", "-ex", "bt 25", "--args"])
        print("gdb, bare", json.dumps(results["gdb, bare"]), flush=True)
    else:
        print("gdb: not installed", flush=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "aoti_load_probe.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
