"""Many tune processes on one PostgreSQL study: nothing lost or duplicated, and the storage's cost per trial.

    python experiments/bench_workers.py --trials 200 --workers 4

Starts a throw-away PostgreSQL server on loopback (Debian's binaries, as the tests do), then
``--workers`` separate ``tune`` processes (each ``--workers 1``, as on separate machines) on one
study of the cheap test-only backend ``test_cheap`` (400 fault-free variants; a trial costs
milliseconds, so the study machinery is what is measured). Each process's storage calls are
timed (``_storage_timing.py``). Prints trials recorded / lost / duplicated (a candidate measured
twice), surplus and waiting trials, and the median and p90 storage time per trial.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.pg_server import pg_bin, postgres_server  # noqa: E402
from tuner.search.claims import counted_trials  # noqa: E402
from tuner.search.keys import KEY_ATTR, SURPLUS_ATTR  # noqa: E402
from tuner.search.study import load_study  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--workers", type=int, default=4)
    args = ap.parse_args()
    bin_dir = pg_bin()
    if bin_dir is None:
        sys.exit("PostgreSQL is not installed: apt-get install postgresql")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    with postgres_server(bin_dir) as url, tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        t0 = time.perf_counter()
        procs = []
        for i in range(args.workers):
            cmd = [sys.executable, str(ROOT / "experiments" / "_storage_timing.py"), str(out / f"timing-{i}.json"),
                   "--model", "tests.helpers:make_tiny", "--backends", "test_cheap", "--trials", str(args.trials),
                   "--output-dir", str(out / f"m{i}"), "--study-name", "bench", "--storage", url, "--repeats", "3",
                   "--device", "cpu", "--no-mlflow"]
            procs.append(subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                          stderr=open(out / f"m{i}.log", "w")))  # noqa: SIM115
        codes = [p.wait() for p in procs]
        wall = time.perf_counter() - t0
        study = load_study("bench", url)
        trials = study.get_trials()
        counted = counted_trials(trials)
        fresh = [t.user_attrs[KEY_ATTR] for t in counted if not t.user_attrs.get("cached")]
        per_trial = []
        by_method: dict[str, list[float]] = {}
        for i in range(args.workers):
            path = out / f"timing-{i}.json"
            if path.exists():
                data = json.loads(path.read_text())
                per_trial += [x["storage_s"] * 1e3 for x in data["per_trial"]]
                for name, (calls, secs) in data["by_method"].items():
                    by_method.setdefault(name, [0, 0.0])
                    by_method[name][0] += calls
                    by_method[name][1] += secs
        by_pid: dict[int, int] = {}
        for t in counted:
            pid = t.user_attrs["worker"]["pid"]
            by_pid[pid] = by_pid.get(pid, 0) + 1
        numbers = [t.number for t in counted]
        print(f"processes: {args.workers} tune processes x 1 worker, exit codes {codes}, wall {wall:.1f} s")
        lost = max(0, args.trials - len(counted))
        print(f"trials recorded (counted): {len(counted)} of {args.trials}; lost: {lost}; "
              f"counted twice: {len(numbers) - len(set(numbers))}")
        print(f"candidates measured twice: {len(fresh) - len(set(fresh))} ({len(fresh)} measured, "
              f"{len(counted) - len(fresh)} taken from the cache or from another worker's measurement)")
        print(f"waited for another worker's measurement: {sum(1 for t in counted if 'waited_for' in t.user_attrs)}; "
              f"surplus trials (budget taken by others, not counted): "
              f"{sum(1 for t in trials if t.user_attrs.get(SURPLUS_ATTR))}; "
              f"left RUNNING: {sum(1 for t in trials if t.state.name == 'RUNNING')}")
        print(f"trials per process: {sorted(by_pid.values(), reverse=True)}")
        # The peer, right after on the same server: plain Optuna, same processes and trial count.
        peer_procs = [subprocess.Popen([sys.executable, str(ROOT / "experiments" / "_storage_timing.py"),
                                        str(out / f"peer-{i}.json"), "optuna", url, str(args.trials)],
                                       env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                      for i in range(args.workers)]
        for p in peer_procs:
            p.wait()
        peer = []
        for i in range(args.workers):
            path = out / f"peer-{i}.json"
            if path.exists():
                peer += [x["storage_s"] * 1e3 for x in json.loads(path.read_text())["per_trial"]]
        if per_trial:
            q = statistics.quantiles(per_trial, n=10)
            print(f"storage time per trial, tune (ms, {len(per_trial)} trial ends timed): median "
                  f"{statistics.median(per_trial):.1f}, p90 {q[-1]:.1f}, max {max(per_trial):.1f}")
        if peer:
            q = statistics.quantiles(peer, n=10)
            print(f"storage time per trial, plain Optuna peer (same sampler, storage, processes; ms, {len(peer)} "
                  f"trial ends): median {statistics.median(peer):.1f}, p90 {q[-1]:.1f}; tune / peer (medians): "
                  f"{statistics.median(per_trial) / statistics.median(peer):.2f}x")
            top = sorted(by_method.items(), key=lambda kv: -kv[1][1])[:6]
            print("storage time by method (calls, total s): " + ", ".join(
                f"{name} {int(calls)} {secs:.2f}" for name, (calls, secs) in top))
        for i in range(args.workers):
            log = (out / f"m{i}.log").read_text()
            if codes[i] != 0:
                print(f"process {i} log tail: {log[-1500:]}")


if __name__ == "__main__":
    main()
