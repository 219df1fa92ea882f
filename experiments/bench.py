"""The tuner against every peer, side by side on one device: the benchmark suite (issue 6).

    # On a host with TensorFlow (the CPU side): write the workloads' test data, the TF workload's
    # ONNX export and TF's reference outputs.
    PYTHONPATH=. python experiments/bench.py --prepare bench-data --workloads all
    # On the device, one workload (or one part) per call; the calls merge into one results file.
    PYTHONPATH=. python experiments/bench.py --data bench-data --workloads mlp --device gpu \\
        --trials 200 --snapshot 50 --results experiments/results

For each workload, in one process on one device: the peers at their defaults
(``experiments/peers.py``: eager, torch.compile default and max-autotune, TorchScript, TVM's
default pipeline, ONNX Runtime / TensorFlow / TF+XLA for the TF workload; at ``--level o2`` also
autocast, ``.half()``, torch.compile, TorchScript and TVM in 16 bits), and the tuner's best
after ``--snapshot`` and after ``--trials`` trials, rebuilt from its study and measured next to
them (``tuner/export/sidebyside.py``, as the tuner picks its winner), and the artifact the last
tune call wrote, loaded as users load it and timed in the same rounds (``tuner artifact (as
shipped)``). Each figure is also given as a multiple of
the device's floor (``experiments/floor.py``, at the level's precision). Writes
``<results>/<date>-<device>[-<tag>].{json,md}``, a convergence plot per workload, and one MLflow
run per workload (experiment ``bench``).

One accuracy rule judges every row: ``--accuracy`` (default: the level's, ``elementwise:1e-4,1e-4``
at o1 and ``rel-l2:0.02`` at o2, :mod:`tuner.core.accuracy`). The tuner's study is created with
the same rule, and its picks are judged by it again side by side; a row that fails it keeps its
place in the table with its score.

Phases (``--phase``): ``tune`` runs (or continues) the tuner's study up to ``--trials``, at most
``--tune-timeout`` seconds per call; ``measure`` measures the peers and the study's snapshots and
writes the results; ``all`` (default) does both; ``peers`` measures the peers alone (no study is
run or read, and the table has no tuner rows), for a device call that times the peers apart from
the tuner's (pass another ``--tag`` so that the two calls write separate results files).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any

from experiments import bench_report, bench_study
from experiments.floor import (
    FLOAT_BYTES,
    Floor,
    SampleCost,
    floor_from_costs,
    io_bytes,
    onnx_weight_bytes,
    peak_for,
    torch_floor,
)
from experiments.peers import Peer, peers_for
from experiments.workloads import registry
from tuner.api.progress import RichProgress
from tuner.core.accuracy import accuracy_rule
from tuner.core.devices import device_name, hardware_context, resolve_device
from tuner.core.errors import UserError
from tuner.core.native_log import native_output_to
from tuner.core.records import Candidate, MeasureConfig
from tuner.core.workload import Workload
from tuner.export.artifact import MANIFEST
from tuner.export.finalists import fastest
from tuner.export.finalists import record as finalists_record
from tuner.export.sidebyside import Result, Shipped, result_dict, run_side_by_side


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prepare", type=Path, metavar="DIR",
                    help="write the workloads' files into DIR and exit (needs TensorFlow for tf_asr)")
    ap.add_argument("--data", type=Path, metavar="DIR", help="prepared files (required for tf_asr)")
    ap.add_argument("--workloads", default="all", help=f"comma list of {','.join(registry.WORKLOADS)}, or all")
    ap.add_argument("--size", choices=registry.SIZES, default="full", help="workload size (small: CPU smoke runs)")
    ap.add_argument("--device", default="auto", help="cpu, gpu or auto")
    ap.add_argument("--trials", type=int, default=200, help="the tuner's trial budget (the final snapshot)")
    ap.add_argument("--snapshot", type=int, default=50, help="also measure the tuner's best after this many trials")
    ap.add_argument("--phase", choices=("all", "tune", "measure", "peers"), default="all",
                    help="tune, measure, both (all), or the peers alone (peers: no study run or read)")
    ap.add_argument("--tune-timeout", type=float, help="seconds for this call's trial loop (the next call continues)")
    ap.add_argument("--workers", type=int, help="tuner worker processes (default: the tuner's)")
    ap.add_argument("--memory-limit", type=float, metavar="GIB",
                    help="GiB one tuner worker may use (default: the tuner's; set it when bench.py runs share a host)")
    ap.add_argument("--backends", help="comma list of backends the tuner searches (default: every available one)")
    ap.add_argument("--track-trials", action="store_true", help="let the tuner log every trial to MLflow too")
    ap.add_argument("--finalists", type=int, default=3,
                    help="the tuner's finalists: its pick after N trials is the fastest of them measured here")
    ap.add_argument("--peers", help="comma list of peer rows to measure (default: all; others get a reason)")
    ap.add_argument("--compile-limit", type=float, default=None, metavar="SECONDS",
                    help="seconds each row may take to build and compile; a row past it gets that reason "
                         "instead of a figure (default: no limit)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating measurement rounds")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--level", choices=("o1", "o2"), default="o1",
                    help="the level of the tuner and of the peers (o2 adds the 16-bit peers)")
    ap.add_argument("--accuracy", metavar="RULE",
                    help="the accuracy rule every row and the tuner are judged by (default: the level's)")
    ap.add_argument("--work-dir", type=Path, default=Path("bench-work"), help="studies, tuner outputs, MLflow store")
    ap.add_argument("--results", type=Path, default=Path("experiments/results"))
    ap.add_argument("--tag", default="", help="suffix of the results files' names")
    ap.add_argument("--label", default="", help="a line shown at the top of the Markdown (e.g. 'CPU smoke run')")
    ap.add_argument("--date", default=datetime.date.today().isoformat())
    ap.add_argument("--mlflow-uri", help="tracking URI (default sqlite:///<work-dir>/mlflow.db)")
    ap.add_argument("--no-mlflow", action="store_true")
    args = ap.parse_args(argv)
    if args.trials < 1 or args.snapshot < 1:
        raise UserError("--trials and --snapshot must be at least 1", "pass e.g. --trials 200 --snapshot 50")
    # Parsed here, so that a bad rule is a one-line error before any workload loads.
    args.rule = accuracy_rule(args.accuracy, args.level)
    return args


def device_tag(device: str) -> str:
    """Short device name for file names: ``cpu``, ``h100``, ``h200`` or ``gpu``."""
    if device != "gpu":
        return "cpu"
    peak = peak_for(device)
    name = (peak.name if peak else "").lower()
    return next((t for t in ("h100", "h200") if t in name), "gpu")


def floor_of(workload: Workload, data: Path | None, device: str, level: str = "o1") -> Floor:
    """The workload's floor on this device at the level's precision (see :mod:`experiments.floor`).

    Raises:
        ValueError: When there are no peak figures for this device.
    """
    peak = peak_for(device)
    if peak is None:
        raise ValueError(f"no peak figures for {device_name(device)} in experiments/floor.py's GPU_PEAKS")
    if workload.framework == "torch":
        return torch_floor(workload.model, workload.samples, device, peak, level)
    # The TF workload: FLOPs counted from the graph's dims when it was prepared; weights from its ONNX export.
    assert data is not None
    width = FLOAT_BYTES[level]
    meta = json.loads((data / workload.name / "meta.json").read_text())
    weights = onnx_weight_bytes(workload.model.onnx, width)
    costs = [SampleCost(flops=float(f), bytes=float(weights + io_bytes(s, r, width)), launches=None)
             for f, s, r in zip(meta["flops"], workload.samples, workload.reference, strict=True)]
    return floor_from_costs(costs, peak, level)


def tuner_backends(workload: Workload, requested: str | None) -> tuple[str, ...] | None:
    """The tuner's backends: as asked, else all, but without TF-only ones where TensorFlow is missing."""
    if requested:
        return tuple(b.strip() for b in requested.split(",") if b.strip())
    if workload.framework == "tf" and not registry.tf_installed():
        from backends import available_backends

        # Plain TF (eager on a TF workload) is not there to run: leave it out of the search.
        return tuple(b for b in available_backends("tf", workload.device) if b not in ("eager", "tf_graph", "tf_xla"))
    return None


def peer_entries(args: argparse.Namespace, peers: list[Peer]) -> tuple[dict[str, Candidate | Shipped], dict[str, str]]:
    """The peers to measure (name -> candidate), and why each other peer row has no figure."""
    wanted = {p.strip() for p in args.peers.split(",")} if args.peers else None
    entries: dict[str, Candidate | Shipped] = {}
    reasons: dict[str, str] = {}
    for peer in peers:
        if peer.candidate is None:
            reasons[peer.name] = str(peer.reason)
        elif wanted is not None and peer.name not in wanted:
            reasons[peer.name] = "not run: left out by --peers"
        else:
            entries[peer.name] = peer.candidate
    return entries, reasons


def side_by_side(args: argparse.Namespace, workload: Workload, entries: dict[str, Candidate | Shipped], out: Path,
                 say: Any) -> dict[str, Result]:
    """Every entry built and timed side by side, each judged by the run's rule: name -> result.

    What the builds print (TVM's C++ warnings, by the hundred for some models) goes to
    ``native.log`` in ``out``, as ``tune`` keeps it in its study log; the progress stays on stderr.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    config = MeasureConfig(warmup=args.warmup, repeats=args.repeats)
    with native_output_to(out / "native.log"), Progress(
            TextColumn(f"[bold]{workload.name}: side by side"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task("measure", total=len(entries) * (1 + args.rounds))
        results = run_side_by_side(workload, entries, config, rounds=args.rounds, rule=args.rule,
                                   cache_dir=out / "cache", say=say, step=lambda: bar.advance(task),
                                   compile_limit_s=args.compile_limit)
    return {r.name: r for r in results}


def tuner_rows(args: argparse.Namespace, snaps_n: list[int], snaps: list[bench_study.Snapshot],
               convergence: dict[str, Any], by_name: dict[str, Result]) -> list[dict[str, Any]]:
    """The rows ``tuner best @N``: the fastest of each snapshot's finalists measured side by side."""
    rows: list[dict[str, Any]] = []
    for n in snaps_n:
        row_name = f"tuner best @{n}"
        snap = next((s for s in snaps if s.n == n), None)
        if snap is None:
            rows.append({"name": row_name, "role": "tuner", "candidate": None, "total_ms": None, "trial": None,
                         "counted": len(convergence.get("trial", [])),
                         "error": "no complete trial in the study (not tuned yet, or every trial failed: "
                                  "see its failures in the study)"})
            continue
        picks = list(snap.finalists)
        chosen = fastest(picks, by_name)
        res = by_name[chosen.name]
        rec = {**result_dict(res), "name": row_name, "role": "tuner", "trial": chosen.trial, "counted": snap.counted,
               "objective_ms": chosen.objective_s * 1e3, "study_best_trial": snap.trial,
               "tuning_s": snap.time_to_n_s, "finalists": finalists_record(picks, by_name, chosen)}
        if snap.counted < n:
            rec["error"] = (f"{res.error + '; ' if res.error else ''}the study counts only {snap.counted} trials "
                            f"(best of those)")
        rows.append(rec)
    return rows


#: The row of the tuner's written artifact, loaded as users load it and timed beside the peers.
SHIPPED_ROW = "tuner artifact (as shipped)"


def shipped_entry(out: Path, name: str) -> Shipped | None:
    """The artifact the tuner's last tune call wrote for the workload, as a side-by-side entry (None: none)."""
    directory = out / bench_study.study_name(name) / "best"
    return Shipped(directory) if (directory / MANIFEST).is_file() else None


def shipped_row(shipped: Shipped, by_name: dict[str, Result]) -> dict[str, Any]:
    """The artifact's row: its side-by-side figure, and what its tune run reported of it.

    The tune run's own check (``report.json``'s ``artifact``) loaded it in a fresh process; the
    side-by-side figure is taken here, next to the peers, so that the two can be compared.
    """
    report_path = shipped.directory / "report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    return {**result_dict(by_name[SHIPPED_ROW]), "role": "artifact",
            "counted": (report.get("search") or {}).get("trials"),
            "fresh_process_ms": (report.get("artifact") or {}).get("reloaded_total_ms"),
            "exported_from": (report.get("chosen") or {}).get("description")}


def compare(rows: list[dict[str, Any]], floor: Floor | None) -> tuple[list[dict[str, Any]], float | None,
                                                                        float | None]:
    """Set each row's ratios to eager, to the best peer and to the floor, and its accuracy verdict (in place).

    The verdict (``accuracy_rule``, ``accuracy_score``, ``accuracy_ok``) is the side-by-side check's,
    spelled out for readers of the JSON: a peer that fails the rule stays a row, with its score.

    Returns:
        ``(peers that ran and passed the rule, the best peer's ms, eager's ms)``.
    """
    ok_peers = [r for r in rows if r["role"] == "peer" and r.get("total_ms") and not r.get("error")]
    best_peer = min((r["total_ms"] for r in ok_peers), default=None)
    eager = next((r["total_ms"] for r in rows if r["name"] in ("eager", "TensorFlow") and r.get("total_ms")), None)
    for r in rows:
        t = r.get("total_ms")
        r["vs_eager"] = eager / t if t and eager else None
        r["vs_best_peer"] = best_peer / t if t and best_peer else None
        r["x_floor"] = floor.times(t / 1e3) if t and floor else None
        r["accuracy_rule"], r["accuracy_score"], r["accuracy_ok"] = bench_report.accuracy_of(r)
    return ok_peers, best_peer, eager


def measure_workload(args: argparse.Namespace, workload: Workload, device: str, out: Path, stem: Path,
                     say: Any) -> dict[str, Any]:
    """Peers and the tuner's snapshots side by side, the floor, the convergence: the workload's record."""
    name = workload.name
    spec = registry.WORKLOADS[name]
    peers = peers_for(spec.framework, device, args.level)
    entries, reasons = peer_entries(args, peers)
    snaps_n = [] if args.phase == "peers" else sorted({args.snapshot, args.trials})
    convergence: dict[str, Any] = {}
    snaps: list[bench_study.Snapshot] = []
    if snaps_n and bench_study.counted(out, name):
        convergence, snaps = bench_study.read_study(out, name, snaps_n, args.finalists)
    shipped = shipped_entry(out, name) if snaps_n else None
    if shipped is not None:
        entries[SHIPPED_ROW] = shipped
    for s in snaps:
        # The tuner's pick after n trials: the fastest of its finalists measured here (as
        # tuner.export.finalize picks), so each finalist is an entry; one shared by snapshots is measured once.
        for p in s.finalists:
            entries.setdefault(p.name, p.candidate)
    by_name = side_by_side(args, workload, entries, out, say)
    try:
        floor: Floor | None = floor_of(workload, args.data, device, args.level)
        floor_rec = floor.to_dict() if floor else {}
    except Exception as e:  # noqa: BLE001 - a floor that cannot be estimated is reported, not fatal
        floor, floor_rec = None, {"error": f"{type(e).__name__}: {e}"}
    rows = [{**result_dict(by_name[p.name]), "role": "peer"} if p.name in by_name else
            {"name": p.name, "role": "peer", "candidate": None, "total_ms": None, "error": reasons[p.name]}
            for p in peers]
    rows += tuner_rows(args, snaps_n, snaps, convergence, by_name)
    if shipped is not None:
        rows.append(shipped_row(shipped, by_name))
    ok_peers, best_peer, eager = compare(rows, floor)
    calls = bench_study.tune_calls(out)
    record: dict[str, Any] = {
        "workload": name, "title": spec.title, "stresses": spec.stresses, "framework": spec.framework,
        "size": args.size, "device": device_tag(device), "device_name": device_name(device), "date": args.date,
        "trials": args.trials, "snapshot": args.snapshot, "command": " ".join(["python", *sys.argv]),
        "samples": len(workload.samples), "shapes": workload.shapes_summary(), "phase": args.phase,
        "measure": {"warmup": args.warmup, "repeats": args.repeats, "rounds": args.rounds, "level": args.level,
                    "accuracy": args.rule.spec, "compile_limit_s": args.compile_limit},
        "rows": rows, "floor": floor_rec, "convergence": convergence,
        "tuning": {"calls": len(calls), "wall_s": sum(c["wall_s"] for c in calls), "per_call": calls},
    }
    record["targets"] = bench_report.targets(record, args.trials, args.snapshot if args.snapshot < args.trials
                                             else None)
    final = next((r for r in rows if r["name"] == f"tuner best @{args.trials}"), None)
    if final and final.get("total_ms"):
        record["losses"] = [f"tuner best @{args.trials} ({final['total_ms']:.3f} ms) is slower than {p['name']} "
                            f"({p['total_ms']:.3f} ms)" for p in ok_peers if p["total_ms"] < final["total_ms"]]
    if convergence.get("trial"):
        lines = {"eager": eager} if eager else {}
        if best_peer:
            lines["best peer"] = best_peer
        if floor:
            lines["floor"] = floor.floor_s * 1e3
        record.update(bench_report.plot(stem, name, convergence, lines))
    return record


def run_workload(args: argparse.Namespace, name: str, device: str, stem: Path, console: Any,
                 say: Any) -> dict[str, Any] | None:
    """One workload's phases: tune, then measure and merge into the results; its record (None: not measured)."""
    say(f"workload {name}: loading on {device}")
    workload = registry.load(name, args.size, device, args.data)
    if args.data is not None:
        args.size = registry.prepared_size(args.data)
    out = args.work_dir / device_tag(device) / name
    backends = tuner_backends(workload, args.backends)
    if args.phase in ("all", "tune") and backends == ():
        say(f"{name}: no backend here can run it without TensorFlow: not tuning (its tuner rows say so)")
    elif args.phase in ("all", "tune"):
        say(f"{name}: tuning up to {args.trials} trials at {args.level}, {args.rule.spec} (study in {out})")
        bench_study.tune(workload, out, device=device, trials=args.trials, timeout_s=args.tune_timeout,
                         workers=args.workers, backends=backends, progress=RichProgress(console),
                         memory_limit_gb=args.memory_limit, track=args.track_trials, level=args.level,
                         accuracy=args.rule.spec)
    if args.phase not in ("all", "measure", "peers"):
        return None
    args.results.mkdir(parents=True, exist_ok=True)
    record = measure_workload(args, workload, device, out, stem, say)
    if not args.no_mlflow:
        from experiments.bench_mlflow import log_record

        uri = args.mlflow_uri or f"sqlite:///{(args.work_dir / 'mlflow.db').resolve()}"
        plots = [args.results / record[k] for k in ("plot_html", "plot_png") if record.get(k)]
        record["mlflow_run_id"] = log_record(uri, args.work_dir / "mlartifacts", record, plots)
        record["mlflow_uri"] = uri
    # Merged after every workload: a call cut short keeps what it measured.
    header = {"date": args.date, "device": device_tag(device), "device_name": device_name(device),
              "context": hardware_context(device), "label": args.label}
    bench_report.merge(stem, header, {name: record})
    say(f"{name}: merged into {stem}.json / .md")
    return record


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (see the module docstring)."""
    from rich.console import Console

    console = Console(stderr=True, log_path=False)

    def say(text: str) -> None:
        console.log(text, markup=False, highlight=False)

    try:
        args = parse_args(argv)
        names = registry.parse_names(args.workloads)
        if args.prepare:
            manifest = registry.prepare(names, args.size, args.prepare)
            say(f"prepared {', '.join(names)} ({args.size}) in {args.prepare}: {manifest}")
            return 0
        if args.data is None and any(registry.WORKLOADS[n].framework == "tf" for n in names):
            # Checked before any workload runs, so that nothing is half done.
            raise UserError("tf_asr is measured from prepared files (its ONNX export and TF's reference outputs)",
                            "run bench.py --prepare DIR where TensorFlow is installed and pass --data DIR")
        # Also before any workload runs: on 2026-11-30 a GPU run measured tf_asr, then stopped at
        # bert, which its --data folder lacked.
        registry.check_prepared(names, args.data)
        device = resolve_device(args.device)
        stem = bench_report.results_stem(args.results, args.date, device_tag(device), args.tag)
        records: dict[str, dict[str, Any]] = {}
        for name in names:
            record = run_workload(args, name, device, stem, console, say)
            if record is not None:
                records[name] = record
        if records:
            print(bench_report.render({"date": args.date, "device_name": device_name(device), "label": args.label,
                                       "workloads": records}))
        return 0
    except UserError as e:
        print(f"error: {e.one_line()}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
