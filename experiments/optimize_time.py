"""Wall time of ``tuner.optimize()`` with no config (``Config()``), as the seed's examples call it.

    python experiments/optimize_time.py [pt] [module] [tf] [--keep DIR]

Each case runs one of the seed's examples (experiments/seed_examples/) in a fresh Python process
in a fresh folder, the way a user runs it, and prints the wall time from process start to exit
(imports, search, final measurement, export and the artifact check included), the stopping reason
and trial counts of the search, and what was returned. The target: within 5 minutes on the 2-core
CPU machine.

- ``pt``: the PyTorch example (the demo WAP decoder as decoder.pt, one batch-8 sample, as the seed).
- ``module``: the demo decoder as an ``nn.Module`` with its 8 test batches (sizes 8, 4 and 1), so
  that inductor and tvm, which cannot take a ScriptModule, are searched too: the costlier case.
- ``tf``: the first TensorFlow example on the seed-like ASR graph (experiments/workloads/tf_asr.py
  writes frozen.pb and test_bc4.npy).

Without a CUDA GPU the examples' ``.cuda()`` calls are dropped (device_type='gpu' then falls back
to the CPU, as the report says).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "experiments" / "seed_examples"

# Appended to the example: one JSON line with what the timing needs from the report.
PROBE = """
import json as _json
print("OPTIMIZE-TIME " + _json.dumps({"search": {k: report["search"].get(k) for k in
      ("trials", "complete", "failed", "pruned", "stopped_by", "wall_s")}, "returned": report["optimize"]["returned"],
      "fastest": report["optimize"]["fastest"], "optimizations": report["optimizations"],
      "warnings": report["warnings"], "kind": type(optimized_model).__name__}, default=str))
"""


def prepare_pt(folder: Path) -> Path:
    from tuner.workloads.demo import make_demo

    model, _ = make_demo()
    torch.jit.save(torch.jit.script(model), str(folder / "decoder.pt"))
    return EXAMPLES / "pt_decoder.py"


MODULE_EXAMPLE = """
import tuner
from tuner.workloads.demo import make_demo

model, test_data = make_demo()
optimized_model, opt_spec, report = tuner.optimize(model, 'o1', device_type='gpu', config=tuner.Config(),
                                                   test_data=test_data)
"""


def prepare_module(folder: Path) -> Path:
    path = folder / "module_example.py"
    path.write_text(MODULE_EXAMPLE)
    return path


def prepare_tf(folder: Path) -> Path:
    subprocess.run([sys.executable, str(ROOT / "experiments" / "workloads" / "tf_asr.py"), str(folder)], check=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    return EXAMPLES / "tf_dynamic.py"


def run_case(name: str, folder: Path) -> dict[str, object]:
    script = {"pt": prepare_pt, "module": prepare_module, "tf": prepare_tf}[name](folder)
    text = script.read_text()
    if not torch.cuda.is_available():
        text = text.replace(".cuda()", "")
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", text + PROBE], cwd=folder, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - t0
    # Other processes on the machine slow every figure: say how busy it was.
    load = {"load_avg_1min_before": round(load_before, 2), "load_avg_1min_after": round(os.getloadavg()[0], 2)}
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("OPTIMIZE-TIME ")), None)
    if proc.returncode != 0 or line is None:
        return {"case": name, "wall_s": round(wall, 1), **load, "error": proc.stderr.strip().splitlines()[-5:]}
    return {"case": name, "wall_s": round(wall, 1), **load, **json.loads(line.removeprefix("OPTIMIZE-TIME "))}


def main(argv: list[str]) -> None:
    keep = None
    if "--keep" in argv:
        keep = Path(argv[argv.index("--keep") + 1])
        argv = [a for a in argv if a not in ("--keep", str(keep))]
    cases = [a for a in argv if a in ("pt", "module", "tf")] or ["pt", "module", "tf"]
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)"
    print(f"optimize() with Config() on {device}")
    for case in cases:
        if keep is not None:
            folder = keep / case
            folder.mkdir(parents=True, exist_ok=True)
            result = run_case(case, folder)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                result = run_case(case, Path(tmp))
        print(json.dumps(result, indent=1))
        print(f"{case}: {result['wall_s']} s wall ({'within' if result['wall_s'] <= 300 else 'OVER'} the 5-minute "
              "target)")


if __name__ == "__main__":
    main(sys.argv[1:])
