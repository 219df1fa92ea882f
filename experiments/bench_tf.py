"""TF backends side by side on the seed-like ASR decoder (CPU): plain TF, TF+XLA defaults, each backend's best.

    PYTHONPATH=. python experiments/bench_tf.py [--rounds 3] [--out experiments/results/<today, UTC>-cpu-tf]

1. Screening: every candidate of a small grid per backend (tf_graph: defaults and each Grappler
   rewriter off; tf_xla: jit_compile and auto-clustering by minimum cluster size; onnxruntime:
   both shape modes at every optimization level; tvm through ONNX) is built, measured once and
   checked against the reference outputs.
2. Side by side: plain TF (the eager baseline), TF+XLA with TF's defaults (auto-clustering at
   min cluster size 4, and whole-graph jit_compile) and the best three correct candidates of each
   backend are measured in alternating rounds in this one process; each keeps its fastest round.

Figures are the objective of the study: the sum over the test samples of each sample's median
latency (first call per shape excluded). Ratios are plain TF's time over the candidate's.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from pathlib import Path
from typing import Any

from backends import get_backend
from experiments.workloads import tf_asr
from tuner.core.accuracy import accuracy_rule
from tuner.core.records import Candidate, MeasureConfig
from tuner.core.workload import Workload
from tuner.runtime.correctness import check_outputs
from tuner.workloads.loading import make_workload

CONFIG = MeasureConfig(warmup=3, repeats=20)
PLAIN = Candidate("eager")
XLA_DEFAULTS = (Candidate("tf_xla", "static", options={"tf_xla/clustering": "auto4"}),
                Candidate("tf_xla", "static", options={"tf_xla/clustering": "jit_compile"}))


def grid() -> list[Candidate]:
    out = [Candidate("tf_graph")]
    for rw in ("remapping", "arithmetic", "layout", "constant_folding", "loop", "dependency"):
        out.append(Candidate("tf_graph", options={f"tf_graph/{rw}": "off"}))
    out.append(Candidate("tf_graph", options={f"tf_graph/{rw}": "off" for rw in
                                              ("remapping", "arithmetic", "layout", "constant_folding", "loop",
                                               "dependency")}))
    out += [Candidate("tf_xla", "static", options={"tf_xla/clustering": c})
            for c in ("jit_compile", "auto4", "auto2", "auto8", "auto16")]
    for mode in ("dynamic", "static"):
        out += [Candidate("onnxruntime", mode, options={"onnxruntime/graph_optimization_level": lvl})
                for lvl in ("all", "extended", "basic", "disabled")]
    out += [Candidate("tvm", mode, options={"tvm/frontend": "onnx"}) for mode in ("static", "dynamic")]
    return out


def workload() -> Workload:
    return make_workload(tf_asr.build_graph_def(), tf_asr.make_samples(), "cpu", name="tf_asr",
                         inputs=list(tf_asr.INPUTS), outputs=list(tf_asr.OUTPUTS))


def build(w: Workload, c: Candidate) -> tuple[Any, Any, str | None]:
    backend = get_backend(c.backend)
    result = backend.build(w, c)
    if result.built is None:
        return backend, None, f"build: {result.error_msg}"
    return backend, result.built, None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    # Dated by the run, so that a rerun never overwrites an earlier day's figures.
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    parser.add_argument("--out", default=f"experiments/results/{today}-cpu-tf")
    args = parser.parse_args()
    w = workload()
    tol = accuracy_rule(None, "o1")
    print(f"workload: tf_asr, {len(w.samples)} samples, shapes {w.shapes_summary()}")

    screened: list[dict[str, Any]] = []
    for c in grid():
        backend, built, error = build(w, c)
        row: dict[str, Any] = {"candidate": c.describe(), "backend": c.backend, "shape_mode": c.shape_mode}
        if built is not None:
            m = backend.measure(built, w, CONFIG)
            if not m.ok or m.outputs is None:
                error = f"run: {m.error_msg}"
            else:
                verdict = check_outputs(m.outputs, w.reference, tol)
                error = None if verdict.ok else f"wrong: {verdict.detail}"
                row["screen_ms"] = round(m.total_s * 1e3, 3)
                row["build_s"] = round(built.build_s, 2)
        row["error"] = error
        screened.append(row)
        print(f"  screen {row['candidate']:<70} {row.get('screen_ms', '-'):>8} ms  {error or ''}")

    best: list[Candidate] = []
    for name in ("tf_graph", "tf_xla", "onnxruntime", "tvm"):
        rows = sorted((r for r in screened if r["backend"] == name and r["error"] is None),
                      key=lambda r: r["screen_ms"])
        best += [next(c for c in grid() if c.describe() == r["candidate"]) for r in rows[:3]]
    peers = [PLAIN, *XLA_DEFAULTS, *[c for c in best if c not in XLA_DEFAULTS]]
    built_peers = []
    for c in peers:
        backend, built, error = build(w, c)
        if built is not None:
            built_peers.append((c, backend, built))
    times: dict[str, list[float]] = {c.describe(): [] for c, _, _ in built_peers}
    for _ in range(args.rounds):
        for c, backend, built in built_peers:
            m = backend.measure(built, w, CONFIG)
            if m.ok:
                times[c.describe()].append(m.total_s)
    plain_s = min(times[PLAIN.describe()])
    rows = []
    for c, _, built in built_peers:
        t = min(times[c.describe()])
        role = ("plain TF" if c == PLAIN else "TF+XLA default" if c in XLA_DEFAULTS else "study candidate")
        rows.append({"candidate": c.describe(), "role": role, "backend": c.backend, "shape_mode": c.shape_mode,
                     "total_ms": round(t * 1e3, 3), "speedup_vs_plain_tf": round(plain_s / t, 2),
                     "build_s": round(built.build_s, 2)})
    rows.sort(key=lambda r: r["total_ms"])
    header = "| candidate | role | shape mode | total ms | x plain TF | build s |\n|---|---|---|---:|---:|---:|"
    lines = [f"| {r['candidate']} | {r['role']} | {r['shape_mode']} | {r['total_ms']} | {r['speedup_vs_plain_tf']} | "
             f"{r['build_s']} |" for r in rows]
    by_mode = {}
    for mode in ("dynamic", "static"):
        cands = [r for r in rows if r["shape_mode"] == mode and r["role"] != "plain TF"]
        if cands:
            by_mode[mode] = cands[0]
    summary = [f"- best {mode}: {r['candidate']}: {r['speedup_vs_plain_tf']}x plain TF" for mode, r in by_mode.items()]
    table = "\n".join([header, *lines])
    print(table)
    print("\n".join(summary))
    failures = [f"- {r['candidate']}: {r['error']}" for r in screened if r["error"]]
    context = {"machine": platform.node(), "processor": platform.processor() or platform.machine(),
               "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    import onnxruntime
    import tensorflow as tf

    context |= {"tensorflow": tf.__version__, "onnxruntime": onnxruntime.__version__}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"context": context, "side_by_side": rows, "screen": screened,
                                                    "rounds": args.rounds, "measure": vars(CONFIG) if hasattr(
                                                        CONFIG, "__dict__") else str(CONFIG)}, indent=2) + "\n")
    out.with_suffix(".md").write_text(
        f"# TF backends on the seed-like ASR decoder (CPU)\n\n"
        f"`PYTHONPATH=. python experiments/bench_tf.py --rounds {args.rounds}` on {context['processor']} "
        f"({context['date']}; TF {context['tensorflow']}, ONNX Runtime {context['onnxruntime']}). "
        f"Workload: `experiments/workloads/tf_asr.py` ({len(w.samples)} samples of batch 4, memory lengths "
        f"{list(tf_asr.TIMES)}). Total = sum over the samples of each sample's median latency "
        f"({CONFIG.repeats} repeats), side by side in one process, fastest of {args.rounds} alternating rounds.\n\n"
        f"{table}\n\n" + "\n".join(summary) + "\n\nScreening failures (data, not crashes):\n\n"
        + ("\n".join(failures) or "- none") + "\n")
    print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
