"""OpenMP threads on a busy CPU: how much a small model's throughput drops when processes share the cores.

The test suite runs two test processes on CI's two cores, and each starts tune workers and fresh
processes of its own. Each torch process starts one OpenMP thread per core, and an idle OpenMP
thread spins before it sleeps. This runs ``--procs`` processes at once, each calling an 8-layer
MLP for ``--seconds`` (with a 1 ms pause every 50 calls, as a measurement loop between samples
has), under three settings, and prints each process's calls and CPU seconds:

    python -m experiments.omp_oversubscription --procs 3 --seconds 15

On the 2-core CPU box (2026-12-07), three processes: 2132-2942 calls each with the default two
threads, 15806-16920 with ``OMP_WAIT_POLICY=PASSIVE``, 27230-28503 with ``OMP_NUM_THREADS=1``,
each process using 11.2-11.7 CPU seconds in all three. tests/conftest.py sets one thread.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

#: The settings compared: a name and the variables it sets.
SETTINGS: dict[str, dict[str, str]] = {
    "default": {},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "OMP_NUM_THREADS=1": {"OMP_NUM_THREADS": "1"},
}


def work(seconds: float) -> None:
    """Call the MLP for ``seconds`` and print the calls made, the CPU seconds and the thread count."""
    import torch

    model = torch.nn.Sequential(*[torch.nn.Linear(256, 256) for _ in range(8)]).eval()
    x = torch.randn(8, 256)
    t0, calls = time.perf_counter(), 0
    with torch.no_grad():
        while time.perf_counter() - t0 < seconds:
            model(x)
            calls += 1
            if calls % 50 == 0:
                time.sleep(0.001)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"calls {calls} cpu {usage.ru_utime + usage.ru_stime:.1f} s threads {torch.get_num_threads()}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--procs", type=int, default=3, help="processes at once")
    ap.add_argument("--seconds", type=float, default=15.0, help="seconds each process runs")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        work(args.seconds)
        return
    print(f"{os.cpu_count()} cores, {args.procs} processes at once, {args.seconds:g} s each")
    for name, extra in SETTINGS.items():
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
        procs = [subprocess.Popen([sys.executable, "-m", "experiments.omp_oversubscription", "--worker",
                                   "--seconds", str(args.seconds)], env={**env, **extra},
                                  stdout=subprocess.PIPE, text=True) for _ in range(args.procs)]
        lines = [p.communicate()[0].strip() for p in procs]
        print(f"== {name}")
        for line in lines:
            print(f"   {line}")


if __name__ == "__main__":
    main()
