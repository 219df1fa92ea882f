"""kill -9 of tune at random moments of a study, then the same command again, repeated; then count.

    python experiments/kill_resume.py --trials 50 --kills 5

Runs ``tune`` on the cheap test-only backend ``test_cheap`` (default SQLite study and MLflow
stores in a temp folder) and SIGKILLs it at a random moment of the study: once a random number
of trials counts (``--kills`` distinct random targets), plus a random delay of up to ``--jitter``
seconds, so a kill lands anywhere in a trial. Then the same command again, ``--kills`` times,
and the last run finishes. Prints the trials
counted (each must be there once), candidates measured twice, trials failed by a kill and
retried, trials left running, MLflow parent runs and live child runs, and whether ``best/`` was
written exactly once (no temp folders beside it).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlflow.tracking import MlflowClient  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from tuner.search.claims import counted_trials  # noqa: E402
from tuner.search.keys import KEY_ATTR  # noqa: E402
from tuner.search.storage import retried_numbers  # noqa: E402
from tuner.search.study import load_study  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--jitter", type=float, default=0.5, help="random extra delay (s) before each kill")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        cmd = [sys.executable, "-m", "tuner.api.cli", "--model", "tests.helpers:make_tiny", "--backends", "test_cheap",
               "--trials", str(args.trials), "--output-dir", str(out), "--study-name", "kr", "--repeats", "3",
               "--device", "cpu"]
        t0 = time.perf_counter()
        # Random moments inside the study: after a random number of counted trials, plus a random
        # fraction of a second (so a kill lands anywhere in a trial: sampling, measuring, logging).
        targets = sorted(rng.sample(range(1, args.trials - 1), args.kills))
        for k, target in enumerate(targets):
            proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while proc.poll() is None and len(counted_trials(_trials(out))) < target:
                time.sleep(0.02)
            delay = rng.uniform(0.0, args.jitter)
            time.sleep(delay)
            if proc.poll() is not None:
                print(f"run {k + 1}: finished before its kill (code {proc.returncode})")
                continue
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            running = sum(1 for t in _trials(out) if t.state == TrialState.RUNNING)
            print(f"run {k + 1}: kill -9 {delay:.2f} s after trial {target} counted; "
                  f"{len(counted_trials(_trials(out)))} counted, {running} left running")
        done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        print(f"final run: exit code {done.returncode}; total wall {wall:.0f} s")
        if done.returncode != 0:
            print(done.stderr[-2000:])
        trials = _trials(out)
        counted = counted_trials(trials)
        numbers = [t.number for t in counted]
        fresh = [t.user_attrs[KEY_ATTR] for t in counted if not t.user_attrs.get("cached")]
        retried = retried_numbers(trials)
        print(f"trials counted: {len(counted)} of {args.trials}; counted twice: {len(numbers) - len(set(numbers))}; "
              f"candidates measured twice: {len(fresh) - len(set(fresh))}")
        print(f"trials failed by a kill and queued again: {len(retried)}; of those counted anyway: "
              f"{len(retried & set(numbers))}; left RUNNING: "
              f"{sum(1 for t in trials if t.state == TrialState.RUNNING)}; all trials in storage: {len(trials)}")
        client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
        runs = client.search_runs([client.get_experiment_by_name("kr").experiment_id], max_results=10000)
        parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        live = sorted(int(r.data.tags["trial_number"]) for r in runs
                      if "mlflow.parentRunId" in r.data.tags and r.data.tags.get("status") != "RETRIED")
        print(f"MLflow: {len(parents)} parent run(s) ({', '.join(p.info.status for p in parents)}); "
              f"{len(live)} live child runs, matching the counted trials: {live == sorted(numbers)}")
        entries = sorted(p.name for p in (out / "kr").iterdir()) if (out / "kr").exists() else []
        report = (out / "kr" / "best" / "report.json").is_file()
        print(f"output folder of the study: {entries} (best/report.json: {report})")


def _trials(out: Path) -> list:  # type: ignore[type-arg]
    try:
        return load_study("kr", f"sqlite:///{out / 'study.db'}").get_trials()
    except Exception:  # noqa: BLE001 - not created yet (killed before)
        return []


if __name__ == "__main__":
    main()
