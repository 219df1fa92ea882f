"""``tune`` on the real-model workloads as a user runs it, and what each run shipped.

Each run is the ``tune`` command line on a workload's full-size factory
(``experiments.workloads.<name>:make_full``) at one level, with ``--timeout``; several run at once,
each on its own share of the cores (``taskset``). ``summarize`` reads every run's report and
writes one row per run: its wall time against the budget, whether the artifact was written and
verified in a fresh process, the reloaded artifact's figure against the finalists' side-by-side
figure of the emitted candidate, and the share of failed trials by reason.

    python experiments/real_models.py start --dir /tmp/rm --timeout 300 --parallel 4   # detached
    python experiments/real_models.py wait --dir /tmp/rm --seconds 540 --out $OUT       # then summarize
    python experiments/real_models.py summarize --dir /tmp/rm --out experiments/results --tag h200
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

WORKLOADS = ("hf_bert", "hf_gpt2", "hf_vit", "resnet50")
LEVELS = ("o1", "o2")
ROOT = Path(__file__).resolve().parents[1]


def _runs(args: argparse.Namespace) -> list[tuple[str, str]]:
    return [(w, lv) for lv in args.levels.split(",") for w in args.workloads.split(",")]


def _command(workload: str, level: str, args: argparse.Namespace, out: Path, workers: int) -> list[str]:
    return [sys.executable, "-m", "tuner.api.cli", "--model", f"experiments.workloads.{workload}:{args.factory}",
            "--device", args.device, "--level", level, "--timeout", str(args.timeout), "--trials", str(args.trials),
            "--output-dir", str(out), "--study-name", f"{workload}-{level}", "--no-mlflow",
            "--workers", str(workers), "--memory-limit", str(args.memory_limit)]


def run_queue(args: argparse.Namespace) -> None:
    """Run the queue, ``--parallel`` at a time, each on its share of the cores; record each run's times."""
    runs = _runs(args)
    cores = os.cpu_count() or 2
    per = max(1, cores // args.parallel)
    slots: dict[int, tuple[subprocess.Popen[bytes], Path, float]] = {}
    queue = list(runs)
    while queue or slots:
        for slot in range(args.parallel):
            if slot not in slots and queue:
                workload, level = queue.pop(0)
                out = args.dir / f"{workload}-{level}"
                out.mkdir(parents=True, exist_ok=True)
                cmd = ["taskset", "-c", f"{slot * per}-{slot * per + per - 1}",
                       *_command(workload, level, args, out, max(1, per // 2))]
                log = open(out / "tune.log", "wb")  # noqa: SIM115 - the child writes it
                slots[slot] = (subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=log), out, time.time())
                (out / "command.txt").write_text(" ".join(cmd) + "\n")
        for slot, (proc, out, t0) in list(slots.items()):
            if proc.poll() is not None:
                (out / "run.json").write_text(json.dumps({"rc": proc.returncode, "wall_s": round(time.time() - t0, 1),
                                                          "budget_s": args.timeout}) + "\n")
                del slots[slot]
        time.sleep(2)


def _row(folder: Path) -> dict[str, Any]:
    workload, level = folder.name.rsplit("-", 1)
    run = json.loads((folder / "run.json").read_text()) if (folder / "run.json").is_file() else {}
    row: dict[str, Any] = {"workload": workload, "level": level, **run}
    report_path = folder / f"{workload}-{level}" / "best" / "report.json"
    if not report_path.is_file():
        log = (folder / "tune.log").read_text(errors="replace").splitlines() if (folder / "tune.log").is_file() else []
        row["error"] = next((ln for ln in reversed(log) if "no artifact" in ln or "error" in ln), "no report")
        return row
    report = json.loads(report_path.read_text())
    chosen = next((f for f in report["finalists"] if f["chosen"]), None)
    search, artifact = report["search"], report["artifact"]
    row.update(chosen=report["chosen"]["description"], speedup=report.get("speedup"),
               verified=artifact.get("verified"), reloaded_ms=artifact.get("reloaded_total_ms"),
               side_by_side_ms=chosen["side_by_side_ms"] if chosen else None,
               fallbacks=len(artifact.get("fallbacks", [])), trials=search["trials"], failed=search["failed"],
               failures_by_reason=search["failures_by_reason"], refused=search.get("refused_backends"),
               excluded=search.get("excluded_options"), timing=report.get("timing"),
               native_lines=(report.get("native_output") or {}).get("lines"), stopped_by=search["stopped_by"],
               device=report["measurement"]["device"], accuracy_rule=report.get("accuracy_rule"),
               accuracy_score=(report.get("accuracy") or {}).get("score"),
               reloaded_score=artifact.get("reloaded_score"))
    if row["reloaded_ms"] and row["side_by_side_ms"]:
        row["reloaded_over_side_by_side"] = round(row["reloaded_ms"] / row["side_by_side_ms"], 3)
    if run.get("wall_s"):
        row["wall_over_budget"] = round(run["wall_s"] / run["budget_s"], 3)
    return row


def summarize(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = [_row(f) for f in sorted(args.dir.iterdir()) if f.is_dir() and (f / "command.txt").is_file()]
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"{time.strftime('%Y-%m-%d', time.gmtime())}-{args.tag}-real-models"
    (args.out / f"{name}.json").write_text(json.dumps(rows, indent=2) + "\n")
    for row in rows:
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("start", "run", "wait", "summarize"))
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--levels", default=",".join(LEVELS))
    parser.add_argument("--device", default="gpu")
    parser.add_argument("--factory", default="make_full", help="make_full, or make_tiny for a smoke run")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--memory-limit", type=float, default=12.0)
    parser.add_argument("--seconds", type=float, default=540.0)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/real-models-out")))
    parser.add_argument("--tag", default="gpu")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    if args.mode == "start":
        cmd = [sys.executable, __file__, "run", *sys.argv[2:]]
        subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, stdout=open(args.dir / "queue.log", "wb"),  # noqa: SIM115
                         stderr=subprocess.STDOUT)
        print(f"started: {' '.join(cmd)}")
    elif args.mode == "run":
        run_queue(args)
        (args.dir / "done").write_text("done\n")
    elif args.mode == "wait":
        end = time.time() + args.seconds
        while not (args.dir / "done").is_file() and time.time() < end:
            time.sleep(10)
        print("ALL DONE" if (args.dir / "done").is_file() else "STILL RUNNING")
        summarize(args)
    else:
        summarize(args)


if __name__ == "__main__":
    main()
