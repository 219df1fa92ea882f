"""Check a written artifact the way a user will use it: loaded in a fresh process.

``finalize`` exports the winner, then runs ``python -m tuner.export.verify`` on it, which loads the
artifact with :func:`tuner.load_optimized`, runs it on the test data, checks the outputs against
the reference and times it. A fresh process proves that the artifact stands on its own (no state
of the tuning process leaks into it), and a loader that crashes (seen: AOTInductor's package
loader segfaulting on torch 2.11 on an H100) takes down only that process: the crash becomes the
artifact's failure reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from tuner.core.accuracy import AccuracyRule
from tuner.core.workload import Workload

#: Marks the result line among whatever the frameworks print.
RESULT_PREFIX = "TUNER-VERIFY "
#: Seconds a check may take at most (one that hangs must end).
VERIFY_TIMEOUT_S = 900.0


def verify_in_subprocess(directory: Path, workload: Workload, rule: AccuracyRule, warmup: int, repeats: int,
                         timeout_s: float = VERIFY_TIMEOUT_S) -> dict[str, Any]:
    """Load and check an artifact in a fresh Python process.

    Args:
        directory: The artifact folder (with ``artifact.json``).
        workload: Test data and reference outputs.
        rule: The study's accuracy rule.
        warmup: Untimed calls per sample.
        repeats: Timed calls per sample.
        timeout_s: Longest the check may take.

    Returns:
        ``{"verified": True, "reloaded_total_ms": ..., "reloaded_max_abs_err": ..., "reloaded_score": ...}``.

    Raises:
        RuntimeError: When the artifact does not load, crashes, hangs or gives wrong results.
    """
    with tempfile.TemporaryDirectory(prefix="tuner-verify-") as tmp:
        data = Path(tmp) / "data.pt"
        torch.save({"samples": [tuple(t.cpu() for t in s) for s in workload.samples],
                    "reference": list(workload.reference)}, data)
        cmd = [sys.executable, "-m", "tuner.export.verify", str(directory), workload.device, str(data), rule.spec,
               str(warmup), str(repeats)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"loading and running the artifact took over {timeout_s:.0f} s") from None
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        if proc.returncode < 0:
            why = f"the process loading it died of signal {-proc.returncode}"
        else:
            tail = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
            why = tail[-1] if tail else f"exit code {proc.returncode}"
        raise RuntimeError(f"the artifact does not load and run in a fresh process: {why}")
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT_PREFIX):])
    if not result.get("verified"):
        raise RuntimeError(f"the reloaded artifact gives wrong results: {result.get('detail')}")
    return result


def main(argv: list[str]) -> int:
    """Entry point of ``python -m tuner.export.verify DIR DEVICE DATA RULE WARMUP REPEATS``."""
    import warnings

    from tuner.core.accuracy import parse_accuracy
    from tuner.core.records import MeasureConfig
    from tuner.export.artifact import load_optimized
    from tuner.runtime.correctness import check_outputs
    from tuner.runtime.measure import measure

    warnings.simplefilter("ignore")
    directory, device, data_path, rule, warmup, repeats = argv
    data = torch.load(data_path, weights_only=True)
    fn = load_optimized(directory, device)
    dev = torch.device("cuda" if device == "gpu" else "cpu")
    samples = tuple(tuple(t.to(dev) for t in s) for s in data["samples"])
    # The reference travels with the data: the original model is not needed (nor loaded) here.
    w = Workload(name="verify", framework="torch", model=fn, samples=samples,
           reference=tuple(tuple(r) for r in data["reference"]), device=device, source=directory, fingerprint="")
    m = measure(fn, w, MeasureConfig(warmup=int(warmup), repeats=int(repeats)))
    if not m.ok or m.outputs is None:
        print(RESULT_PREFIX + json.dumps({"verified": False, "detail": f"does not run: {m.error_msg}"}))
        return 0
    verdict = check_outputs(m.outputs, w.reference, parse_accuracy(rule))
    print(RESULT_PREFIX + json.dumps({"verified": verdict.ok, "detail": verdict.detail,
                                      "reloaded_total_ms": round(m.total_s * 1e3, 4),
                                      "reloaded_max_abs_err": verdict.max_abs_err,
                                      "reloaded_score": verdict.score}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
