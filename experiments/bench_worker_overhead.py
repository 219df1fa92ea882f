"""What running candidates in a worker process costs: start-up once, and a round trip per trial.

    python experiments/bench_worker_overhead.py --rounds 30

Side by side in one run, alternating: the same cheap candidate (``test_cheap`` variant 0: the
tiny test model, nothing compiled) evaluated in this process (``InProcessEvaluator``) and in a
warm worker (``CandidateWorker``). The difference of the medians is the per-trial cost of
isolation (pipe, pickling of the candidate and the outcome, the parent's polling). Also prints
the one-time costs: writing the workload file, and starting a worker (imports + workload load).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import tiny_model, tiny_samples  # noqa: E402
from tuner.core.accuracy import accuracy_rule  # noqa: E402
from tuner.core.records import Candidate, MeasureConfig  # noqa: E402
from tuner.runner.pool import InProcessEvaluator  # noqa: E402
from tuner.runner.transfer import dump_workload  # noqa: E402
from tuner.runner.worker import CandidateWorker, WorkerSpec  # noqa: E402
from tuner.workloads.loading import make_workload  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    config = MeasureConfig(warmup=1, repeats=3)
    workload = make_workload(tiny_model(), tiny_samples(), "cpu", name="t")
    candidate = Candidate("test_cheap", options={"test_cheap/variant": 0})
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        dump_workload(workload, Path(tmp) / "workload.pt")
        dump_s = time.perf_counter() - t0
        spec = WorkerSpec(workload_path=Path(tmp) / "workload.pt", modules=("backends.faulty",),
                          sys_path=tuple(sys.path), rule=accuracy_rule(None, "o1"), measure_config=config,
                          cache_dir=None, trial_timeout_s=60)
        worker = CandidateWorker(spec, memory_limit_bytes=None, log_path=Path(tmp) / "worker.log")
        t0 = time.perf_counter()
        worker.start()
        start_s = time.perf_counter() - t0
        local = InProcessEvaluator(workload, accuracy_rule(None, "o1"), config, None, 60)
        local.evaluate(candidate, None)
        inproc, inworker = [], []
        try:
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                local.evaluate(candidate, None)
                inproc.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                worker.evaluate(candidate, None)
                inworker.append(time.perf_counter() - t0)
        finally:
            worker.close()
    a, b = statistics.median(inproc) * 1e3, statistics.median(inworker) * 1e3
    print(f"one-time: workload file written in {dump_s * 1e3:.0f} ms; worker started (imports, workload, "
          f"warm-up) in {start_s:.2f} s")
    print(f"per trial, {args.rounds} rounds alternating: in process median {a:.1f} ms, in the worker median "
          f"{b:.1f} ms; isolation costs {b - a:.1f} ms per trial ({b / a:.2f}x on this near-empty candidate)")


if __name__ == "__main__":
    main()
