"""Which shared library an AOTInductor package needs loaded before it, in a fresh process.

``experiments/aoti_load_probe.py`` showed a CUDA package's load dying of SIGSEGV in a bare fresh
process, and living once ``onnxruntime`` was imported first. This finds out what that import
brings: the libraries it maps into the process (``/proc/self/maps`` before and after), what the
package's shared object links (``ldd``), and, for each library onnxruntime brings, whether
loading it alone (``RTLD_GLOBAL``) before the package is enough. Core dumps are off (``ulimit -c
0``) so that each crash costs a second, not a minute.

    python3 experiments/aoti_load_libs.py [--device gpu]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aoti_load_probe import LOAD, build  # noqa: E402

MAPS = """
import sys
def libs():
    return {{ln.split()[-1] for ln in open('/proc/self/maps') if '.so' in ln}}
{before}
a = libs()
import onnxruntime
print('\\n'.join(sorted(libs() - a)))
"""


def run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", 'ulimit -c 0; exec "$@"', "_", sys.executable, "-c", code, *args],
                          capture_output=True, text=True, timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="gpu")
    args = parser.parse_args()
    dev = "cuda" if args.device == "gpu" else "cpu"
    package = build(Path(tempfile.mkdtemp(prefix="aoti-libs-")), args.device)
    with zipfile.ZipFile(package) as z:
        so = [n for n in z.namelist() if n.endswith(".so")]
        folder = Path(tempfile.mkdtemp())
        z.extractall(folder, so)
    for name in so:
        print("== ldd", name, flush=True)
        print(subprocess.run(["ldd", str(folder / name)], capture_output=True, text=True).stdout, flush=True)
    brought = run(MAPS.format(before="import torch")).stdout.split()
    print("== onnxruntime maps (after torch):", json.dumps(brought), flush=True)
    for lib in ["libstdc++.so.6", *brought]:
        preload = f"import ctypes, os; ctypes.CDLL({lib!r}, mode=os.RTLD_GLOBAL)"
        proc = run(LOAD.format(before=preload), str(package), dev)
        print(f"preload {lib}: rc={proc.returncode} ok={'LOADED-AND-RAN' in proc.stdout}", flush=True)


if __name__ == "__main__":
    main()
