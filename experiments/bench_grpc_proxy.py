"""Plain Optuna on one PostgreSQL study, direct and through Optuna's gRPC storage proxy: seconds per trial.

    python experiments/bench_grpc_proxy.py [--trials 50] [--processes 4] [--pairs 2]

Each process loads the study with the tuner's TPE settings and runs an objective that suggests one
categorical of 400 values and writes 3 user attributes: a trial's time is then mostly storage and
sampling. The two storages alternate, ``--pairs`` times. PostgreSQL is started on loopback by
``tests/pg_server.py`` (``TUNER_PG_BIN`` where it is not Debian's). Results of 2026-11-30 are in
``experiments/results/2026-11-30-cpu-storage.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def worker(mode: str, target: str, trials: int, out: str) -> None:
    """One process's trials; writes each trial's seconds (callback to callback) to ``out``."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if mode == "grpc":
        host, port = target.rsplit(":", 1)
        storage: optuna.storages.BaseStorage = optuna.storages.GrpcStorageProxy(host=host, port=int(port))
    else:
        storage = optuna.storages.RDBStorage(target, heartbeat_interval=5, grace_period=30)
    study = optuna.load_study(study_name="s", storage=storage, sampler=optuna.samplers.TPESampler(
        multivariate=True, group=True, constant_liar=True))
    times: list[float] = []
    last = [time.perf_counter()]

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_categorical("v", list(range(400)))
        for key in "abc":
            trial.set_user_attr(key, 1)
        return 0.001

    def done(_study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now

    study.optimize(objective, n_trials=trials, callbacks=[done])
    Path(out).write_text(json.dumps(times))


def main() -> int:
    """Alternate direct and proxied runs and print seconds per trial."""
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
        return 0
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--trials", type=int, default=50, help="trials per process")
    ap.add_argument("--processes", type=int, default=4)
    ap.add_argument("--pairs", type=int, default=2, help="direct/proxy pairs, alternating")
    args = ap.parse_args()
    import optuna

    from tests.pg_server import pg_bin, postgres_server

    bin_dir = pg_bin()
    if bin_dir is None:
        print("bench_grpc_proxy: PostgreSQL's server is not installed: apt-get install postgresql", file=sys.stderr)
        return 2
    with postgres_server(bin_dir) as url, tempfile.TemporaryDirectory() as tmp:
        for i, mode in enumerate(["pg", "grpc"] * args.pairs):
            if i:
                optuna.delete_study(study_name="s", storage=url)
            optuna.create_study(study_name="s", storage=url)
            server, target = None, url
            if mode == "grpc":
                port = 13000 + i
                code = ("import optuna; optuna.logging.set_verbosity(optuna.logging.WARNING); "
                        f"optuna.storages.run_grpc_proxy_server(optuna.storages.RDBStorage({url!r}), "
                        f"host='localhost', port={port})")
                server = subprocess.Popen([sys.executable, "-c", code])
                time.sleep(4)  # the server's start-up
                target = f"localhost:{port}"
            outs = [f"{tmp}/{i}-{p}.json" for p in range(args.processes)]
            t0 = time.perf_counter()
            procs = [subprocess.Popen([sys.executable, __file__, "--worker", mode, target, str(args.trials), o])
                     for o in outs]
            codes = [p.wait() for p in procs]
            wall = time.perf_counter() - t0
            if server is not None:
                server.kill()
                server.wait()
            per = sorted(t for o in outs for t in json.loads(Path(o).read_text()))
            n = len(optuna.load_study(study_name="s", storage=url).trials)
            print(f"{'gRPC proxy' if mode == 'grpc' else 'PostgreSQL direct'}: exit codes {codes}, {n} trials, "
                  f"wall {wall:.1f} s, per trial median {statistics.median(per) * 1e3:.1f} ms, "
                  f"p90 {per[int(len(per) * 0.9)] * 1e3:.1f} ms", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
