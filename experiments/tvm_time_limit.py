"""How soon a ``--trial-timeout`` ends a ``tvm`` candidate that is tuning with MetaSchedule.

Evaluates a 64@top2 candidate on the conformance suite's tiny model under an 8 s limit (as the
study does), prints when the TrialTimeout arrived, then tunes a 16@top1 candidate in the same
process to show the process and the builder pool are still fine.

    python experiments/tvm_time_limit.py [--limit 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=float, default=8.0, help="the trial time limit, in seconds")
    args = parser.parse_args()

    from tests.backends_tests import conformance
    from tuner.core.accuracy import accuracy_rule
    from tuner.core.records import Candidate, MeasureConfig
    from tuner.runner.evaluate import evaluate
    from tuner.runtime.timelimit import TrialTimeout, time_limit

    workload = conformance.tiny_workload()
    cache = Path(tempfile.mkdtemp())
    config = MeasureConfig(warmup=1, repeats=3)
    t0 = time.perf_counter()
    try:
        with time_limit(args.limit):
            outcome = evaluate(Candidate("tvm", "static", "fp32", {"tvm/metaschedule": "64@top2"}), workload,
                               accuracy_rule(None, "o1"), config, cache_dir=cache)
        print(f"finished within the limit: {outcome.failure_kind or 'ok'}")
    except TrialTimeout as e:
        print(f"TrialTimeout after {time.perf_counter() - t0:.1f} s ({e})")
    t1 = time.perf_counter()
    outcome = evaluate(Candidate("tvm", "static", "fp32", {"tvm/metaschedule": "16@top1"}), workload,
                       accuracy_rule(None, "o1"), config, cache_dir=cache)
    print(f"next candidate: {'ok' if outcome.ok else outcome.failure_reason}, {outcome.tuning_s:.1f} s tuning, "
          f"{time.perf_counter() - t1:.1f} s in all")


if __name__ == "__main__":
    main()
