"""Where one trial's wall time goes: build, the pruner's short measurement, the full one, the check.

    python -m experiments.trial_phases --workloads hf_gpt2 --entries "torch.compile reduce-overhead .half()"

Each entry (a candidate of :data:`experiments.gpu_profile.ENTRIES`) goes through the steps of
:func:`tuner.runner.evaluate.evaluate` in this process, each step timed by the wall clock, with
the objective and the accuracy score at o2's default rule. On an H100 (run 9, 2026-12-07) GPT-2's
``reduce-overhead`` trial took 72 s of a study's time for a ``compile_s`` of 22 s; this says which
step holds the rest. A diagnostic, not a benchmark.
"""

from __future__ import annotations

import argparse
import time

from backends import get_backend
from experiments.gpu_profile import ENTRIES
from experiments.workloads import registry
from tuner.core.accuracy import accuracy_rule
from tuner.core.records import Candidate, MeasureConfig
from tuner.core.workload import Workload
from tuner.runtime.correctness import check_outputs


def phases(candidate: Candidate, workload: Workload) -> str:
    """One line: each step's wall seconds, the objective (ms) and the accuracy score."""
    backend = get_backend(candidate.backend)
    config = MeasureConfig()
    t0 = time.perf_counter()
    result = backend.build(workload, candidate)
    steps = [f"build {time.perf_counter() - t0:.1f} s"]
    if result.built is None:
        return f"{steps[0]}; build failed: {result.error_msg}"
    measurements = []
    for quick in (True, False):
        t0 = time.perf_counter()
        m = backend.measure(result.built, workload, config, quick=quick)
        steps.append(f"{'quick' if quick else 'full'} {time.perf_counter() - t0:.1f} s "
                     f"(first calls {m.warmup_s:.1f} s)")
        if m.latencies_s is None or m.outputs is None:
            return "; ".join(steps) + f"; failed: {m.error_msg}"
        measurements.append((m.total_s, m.outputs))
    total_s, outputs = measurements[-1]
    t0 = time.perf_counter()
    verdict = check_outputs(outputs, workload.reference, accuracy_rule(None, "o2"))
    steps.append(f"check {time.perf_counter() - t0:.1f} s")
    return "; ".join(steps) + f"; objective {total_s * 1e3:.3f} ms, score {verdict.score:.2g}"


def main() -> None:
    """Time each entry's trial steps on each workload and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="hf_gpt2")
    parser.add_argument("--size", default="full")
    parser.add_argument("--device", default="gpu")
    parser.add_argument("--entries", default=",".join(ENTRIES), help="comma list of entry names")
    args = parser.parse_args()
    for wname in registry.parse_names(args.workloads):
        workload = registry.load(wname, args.size, args.device, None)
        for name in args.entries.split(","):
            print(f"{wname} | {name} | {phases(ENTRIES[name], workload)}", flush=True)


if __name__ == "__main__":
    main()
