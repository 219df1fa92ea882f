"""The benchmark's results files: one JSON and one Markdown per date and device, built up workload by workload.

Each ``bench.py`` call measures some workloads and merges their records into
``<results>/<date>-<device>[-<tag>].json`` (written atomically); the Markdown is rendered again
from the whole JSON every time, so several calls (one per workload on the GPU machine) build one
results file. A convergence plot per workload (best latency vs trial) is written next to them:
``-<workload>-convergence.html`` (plotly) and ``.png`` (matplotlib), each where its library is
installed (the GPU machine's image has matplotlib but not plotly).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from tuner.core.files import write_json

#: The issues' targets over the best peer that passes the rule, by level (H100).
TARGET_SPEEDUP = {"o1": 1.10, "o2": 1.20}
TARGET_SNAPSHOT = 0.95
#: The share of the tuner's best candidate's speed that the written artifact keeps (issue 18: "at
#: least as fast as the best candidate the study found, within 5 %").
TARGET_ARTIFACT_SHARE = 0.95
TARGET_DEMO_VS_EAGER = 2.45


def results_stem(results: Path, date: str, device: str, tag: str) -> Path:
    """``<results>/<date>-<device>[-<tag>]`` (add ``.json``/``.md``)."""
    return results / f"{date}-{device}{'-' + tag if tag else ''}"


def merge(stem: Path, header: dict[str, Any], records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Merge workload records into the results JSON (atomically) and render the Markdown again.

    Args:
        stem: :func:`results_stem`.
        header: Date, device, context and labels of this call (replaces the old header).
        records: Workload name -> record.

    Returns:
        The merged document.
    """
    path = stem.with_suffix(".json")
    doc: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    workloads = {**doc.get("workloads", {}), **records}
    doc = {**doc, **header, "workloads": workloads}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, doc)
    md = stem.with_suffix(".md")
    tmp = md.with_name(f".{md.name}.tmp")
    tmp.write_text(render(doc))
    tmp.replace(md)
    return doc


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}" if v < 100 else f"{v:.1f}"


def _x(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def targets(record: dict[str, Any], final: int, snap: int | None) -> dict[str, Any]:
    """The issue's targets for one workload's record.

    Args:
        record: A workload record (its rows).
        final: The final trial count (e.g. 200).
        snap: The snapshot count (e.g. 50), None when none.

    Returns:
        ``target`` (the level's :data:`TARGET_SPEEDUP`), ``speedup_vs_best_peer`` (tuner@final),
        ``ge_target``, ``not_slower``, the same three for the written artifact timed here
        (prefixed ``artifact_``; None without one), ``snapshot_share`` (tuner@final time /
        tuner@snap time, i.e. @snap's speed as a share of @final's), ``snapshot_ok`` (>= :data:`TARGET_SNAPSHOT`),
        ``artifact_share`` (tuner@final time / the artifact's: the share of the best candidate's
        speed that the artifact keeps) and ``artifact_share_ok`` (>= :data:`TARGET_ARTIFACT_SHARE`),
        ``vs_eager`` (tuner@final).
    """
    rows = {r["name"]: r for r in record["rows"]}
    peers = [r for r in record["rows"] if r["role"] == "peer" and r.get("total_ms")]
    best_peer = min(peers, key=lambda r: r["total_ms"]) if peers else None
    t_final = rows.get(f"tuner best @{final}", {}).get("total_ms")
    t_snap = rows.get(f"tuner best @{snap}", {}).get("total_ms") if snap else None
    eager = rows.get("eager", {}).get("total_ms") or rows.get("TensorFlow", {}).get("total_ms")
    t_artifact = next((r.get("total_ms") for r in record["rows"] if r["role"] == "artifact"), None)
    target = TARGET_SPEEDUP[record.get("measure", {}).get("level", "o1")]
    out: dict[str, Any] = {"best_peer": best_peer["name"] if best_peer else None,
                           "best_peer_ms": best_peer["total_ms"] if best_peer else None, "target": target}
    for prefix, t in (("", t_final), ("artifact_", t_artifact)):
        sp = best_peer["total_ms"] / t if best_peer and t else None
        out.update({f"{prefix}speedup_vs_best_peer": sp, f"{prefix}ge_target": None if sp is None else sp >= target,
                    f"{prefix}not_slower": None if sp is None else sp >= 1.0})
    share = t_final / t_snap if t_final and t_snap else None
    kept = t_final / t_artifact if t_final and t_artifact else None
    out.update(snapshot_share=share, snapshot_ok=None if share is None else share >= TARGET_SNAPSHOT,
               artifact_share=kept, artifact_share_ok=None if kept is None else kept >= TARGET_ARTIFACT_SHARE,
               vs_eager=eager / t_final if eager and t_final else None)
    return out


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0%}"


def render(doc: dict[str, Any]) -> str:
    """The Markdown of a results document."""
    lines = [f"# Benchmarks: the tuner against its peers ({doc.get('date')}, {doc.get('device_name')})", ""]
    if doc.get("label"):
        lines += [f"**{doc['label']}**", ""]
    lines += ["Each workload's rows were built and measured side by side in one process on one device: "
              "each figure is the fastest of alternating rounds of the sum over the test samples of each "
              "sample's median latency (DESIGN.md's protocol: warm-up and first call per shape excluded). "
              "`tuner best @N` is the tuner's pick after the study's first N counted trials: the fastest, "
              "measured here next to the peers, of the fastest distinct candidates among them (its finalists, as "
              "`tune` picks; in results without a finalists line, the study's best trial). `x floor` is the "
              "figure as a multiple of the device's limit (`experiments/floor.py`).", ""]
    ctx = doc.get("context", {})
    if ctx:
        versions = ", ".join(f"{k} {v}" for k, v in ctx.get("versions", {}).items())
        lines += [f"Host: {ctx.get('device_name')}; Python {ctx.get('python')}; {versions}.", ""]
    works = doc.get("workloads", {})
    summary = ["## Targets", "",
               "Targets (H100): tuner @final >= the level's multiple of the best peer that passes the rule "
               f"({', '.join(f'{lv} {x:.2f}x' for lv, x in TARGET_SPEEDUP.items())}) and never slower; the "
               "written artifact, loaded as users load it and timed beside the peers, likewise (o2's target is on "
               f"it), and at least {TARGET_ARTIFACT_SHARE:.0%} as fast as @final; @snapshot >= "
               f"{TARGET_SNAPSHOT:.0%} of @final; demo >= {TARGET_DEMO_VS_EAGER}x eager.", "",
               "| workload | best peer | tuner @final vs best peer | artifact vs best peer | target | met by "
               f"artifact | not slower | artifact's share of @final | >= {TARGET_ARTIFACT_SHARE:.0%} | @snapshot share "
               f"of @final | >= {TARGET_SNAPSHOT:.0%} | "
               "tuner @final vs eager |",
               "|---|---|---:|---:|---:|---|---|---:|---|---:|---|---:|"]
    met = {"speed": 0, "artifact": 0, "snap": 0, "slower": 0, "kept": 0}
    for name, rec in works.items():
        t = rec.get("targets", {})
        # "Never slower" is the artifact's target where one was written and timed (issue 19).
        not_slower = t.get("artifact_not_slower")
        if not_slower is None:
            not_slower = t.get("not_slower")
        met["speed"] += bool(t.get("ge_target"))
        met["artifact"] += bool(t.get("artifact_ge_target"))
        met["snap"] += bool(t.get("snapshot_ok"))
        met["kept"] += bool(t.get("artifact_share_ok"))
        met["slower"] += not_slower is False
        summary.append(f"| {name} | {t.get('best_peer') or '-'} | {_x(t.get('speedup_vs_best_peer'))} | "
                       f"{_x(t.get('artifact_speedup_vs_best_peer'))} | {_x(t.get('target'))} | "
                       f"{_yes(t.get('artifact_ge_target'))} | {_yes(not_slower)} | "
                       f"{_pct(t.get('artifact_share'))} | {_yes(t.get('artifact_share_ok'))} | "
                       f"{_pct(t.get('snapshot_share'))} | {_yes(t.get('snapshot_ok'))} | {_x(t.get('vs_eager'))} |")
    summary += ["", f"Workloads at their target: tuner @final {met['speed']} of {len(works)}, written artifact "
                f"{met['artifact']} of {len(works)}; slower than the best peer (the artifact where one was timed): "
                f"{met['slower']}; artifact keeps >= {TARGET_ARTIFACT_SHARE:.0%} of @final's speed: {met['kept']} of "
                f"{len(works)}; snapshot >= {TARGET_SNAPSHOT:.0%}: {met['snap']} of {len(works)}.", ""]
    lines += summary
    for name, rec in works.items():
        lines += _section(name, rec)
    return "\n".join(lines) + "\n"


def _yes(v: bool | None) -> str:
    return "-" if v is None else "yes" if v else "**no**"


def accuracy_of(row: dict[str, Any]) -> tuple[str | None, float | None, bool | None]:
    """A row's accuracy rule, its score under it, and whether it passed (None where it was not judged).

    A row fails the rule when side by side found its results wrong (``Result.error`` starts
    ``wrong results``); it keeps its score, which says by how much.
    """
    acc = row.get("accuracy")
    if not acc:
        return None, None, None
    spec, score = acc
    return spec, score, not (row.get("error") or "").startswith("wrong results")


def _score(v: float | None) -> str:
    return "-" if v is None else f"{v:.3g}"


def _note(r: dict[str, Any]) -> str:
    """A row's note: why it has no figure; a wrong row as ``fails <rule> (score X)``; a tuner row's pick."""
    note = r.get("error") or ""
    spec, score, passed = accuracy_of(r)
    if passed is False:
        where = note.removeprefix("wrong results: ")
        note = f"fails {spec} (score {_score(score)})" + (f": {where}" if where else "")
    if r["role"] == "tuner":
        note = f"trial {r['trial']} of {r['counted']} counted: `{r['candidate']}`" + (f"; {note}" if note else "")
    elif r["role"] == "artifact":
        fresh = r.get("fresh_process_ms")
        note = (f"written after {r.get('counted')} counted trials from `{r.get('exported_from') or r['candidate']}`"
                + (f"; {_ms(fresh)} ms in tune's fresh-process check" if fresh is not None else "")
                + (f"; {note}" if note else ""))
    return note


def _rows_table(rec: dict[str, Any]) -> list[str]:
    """The table of a workload's rows: figures, ratios, compile and tuning times, errors, the rule's score."""
    lines = ["| config | total (ms) | rounds (ms) | vs eager | vs best peer | x floor | compile (s) | tuning (s) | "
             "max abs err | score | note |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    rule = rec.get("measure", {}).get("accuracy")
    for r in rec["rows"]:
        spec, score, _ = accuracy_of(r)
        # A score under another rule than the run's (a record merged from elsewhere) names its rule.
        score_cell = _score(score) + (f" ({spec})" if spec and rule and spec != rule else "")
        # Every round, not only the fastest: a host whose other work slows some rounds shows here
        # (on 2026-11-30 the demo's eager rounds were 6.1, 10.1 and 8.7 ms in one run).
        rounds = " / ".join(_ms(x) for x in r.get("rounds_ms") or []) or "-"
        lines.append(f"| {r['name']} | {_ms(r.get('total_ms'))} | {rounds} | {_x(r.get('vs_eager'))} | "
                     f"{_x(r.get('vs_best_peer'))} | {_x(r.get('x_floor'))} | "
                     f"{'-' if r.get('compile_s') is None else format(r['compile_s'], '.1f')} | "
                     f"{'-' if r.get('tuning_s') is None else format(r['tuning_s'], '.0f')} | "
                     f"{'-' if r.get('max_abs_err') is None else format(r['max_abs_err'], '.1e')} | "
                     f"{score_cell} | {_note(r)[:220]} |")
    return lines


def _finalists_lines(rec: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for r in rec["rows"]:
        if r.get("finalists"):
            lines += ["", f"`{r['name']}` is the fastest here of the study's {len(r['finalists'])} fastest distinct "
                      "candidates (its finalists, as `tune` picks): " + "; ".join(
                          f"trial {f['trial']} `{f['candidate']}` {_ms(f['objective_ms'])} ms in its trial, "
                          + (f"{_ms(f['side_by_side_ms'])} ms here" if f.get("side_by_side_ms") is not None
                             else f"not measured here ({f.get('error')})")
                          + (" (chosen)" if f.get("chosen") else "") for f in r["finalists"]) + "."]
    return lines


def _floor_lines(fl: dict[str, Any]) -> list[str]:
    """The floor's line: its terms, at the precision of its level (records before o2's floors: fp32)."""
    if "floor_ms" not in fl:
        return ["", f"Floor: not estimated ({fl['error']})."] if fl.get("error") else []
    peak = fl["peak"]
    flops = sum(s["flops"] for s in fl["samples"])
    nbytes = sum(s["bytes"] for s in fl["samples"])
    launches = [s["launches"] for s in fl["samples"]]
    width = fl.get("float_bytes", 4)
    return ["", f"Floor: {_ms(fl['floor_ms'])} ms over the test data at {fl.get('level', 'o1')}'s precision, "
            f"mostly {fl['bound']}-bound (compute {_ms(fl['compute_ms'])} ms: {flops / 1e9:.3g} GFLOP at "
            f"{fl.get('flops_peak', peak['fp32_flops']) / 1e12:.3g} TFLOP/s {fl.get('flops_precision', 'fp32')}; "
            f"memory {_ms(fl['memory_ms'])} ms: {nbytes / 1e6:.3g} MB, floating-point values at {width} bytes, at "
            f"{peak['bandwidth'] / 1e9:.0f} GB/s; one launch {peak['launch_s'] * 1e6:.1f} us per sample). "
            + (f"Eager launches {sum(launches)} kernels over the test data: launch-bound estimate "
               f"{_ms(fl['launch_bound_ms'])} ms. " if fl.get("launch_bound_ms") is not None else
               "Eager kernel count: not known for this workload. ")
            + f"Peak figures: {peak['name']} ({peak['source']})."]


def _tail_lines(rec: dict[str, Any]) -> list[str]:
    """Convergence, tuning time, losses and the MLflow run."""
    lines: list[str] = []
    conv = rec.get("convergence", {})
    if conv.get("trial"):
        done = sum(1 for s in conv["state"] if s == "COMPLETE")
        lines += ["", f"Convergence: {len(conv['trial'])} counted trials ({done} complete), best "
                  f"{_ms(conv['best_ms'][-1])} ms as the study measured it; plot: "
                  + (", ".join(f"`{rec[k]}`" for k in ("plot_png", "plot_html") if rec.get(k)) or "none (neither "
                     "matplotlib nor plotly installed)") + "."]
    tun = rec.get("tuning", {})
    if tun and rec.get("phase") != "peers":
        lines += ["", f"Tuning: {tun.get('calls')} call(s) of the tune phase, {tun.get('wall_s', 0):.0f} s in all "
                  "(the tuner's whole run: baseline, trials, final check and export)."]
    losses = rec.get("losses", [])
    if losses:
        lines += ["", "Where the tuner loses: " + "; ".join(losses) + "."]
    if rec.get("mlflow_run_id"):
        lines += ["", f"MLflow: run `{rec['mlflow_run_id']}` of experiment `bench` in `{rec.get('mlflow_uri')}`."]
    return lines


def _judged(rec: dict[str, Any]) -> str:
    """The sentence on the level, the accuracy rule every row was judged by, and a peers-only run."""
    m = rec.get("measure", {})
    level = f"Level {m.get('level', 'o1')}"
    if not m.get("accuracy"):
        return f"{level}. "
    peers_only = rec.get("phase") == "peers"
    tuner = "" if peers_only else " (the tuner's study by the same rule)"
    return (f"{level}; every row judged by the accuracy rule `{m['accuracy']}` against the fp32 reference{tuner}; "
            "`score` is each row's score under it. "
            + ("Peers only (`--phase peers`): no tuner rows. " if peers_only else ""))


def _section(name: str, rec: dict[str, Any]) -> list[str]:
    shapes = "; ".join(f"{s['shapes']} x{s['count']}" for s in rec.get("shapes", []))
    if len(shapes) > 160:
        shapes = shapes[:157] + "..."
    m = rec.get("measure", {})
    lines = [f"## {name}: {rec.get('title')}", "",
             f"Stresses: {rec.get('stresses')}. Size `{rec.get('size')}`, {rec.get('samples')} test samples "
             f"({shapes}). {m.get('repeats')} timed calls per sample after {m.get('warmup')} warm-up, best of "
             f"{m.get('rounds')} rounds. {_judged(rec)}Command: `{rec.get('command')}`", ""]
    lines += _rows_table(rec)
    lines += _finalists_lines(rec)
    lines += _floor_lines(rec.get("floor", {}))
    lines += _tail_lines(rec)
    return [*lines, ""]


def plot(stem: Path, name: str, convergence: dict[str, Any], lines: dict[str, float]) -> dict[str, str]:
    """The convergence plot: each complete trial's objective and the best so far, with peers as lines.

    Args:
        stem: :func:`results_stem`.
        name: The workload.
        convergence: :func:`experiments.bench_study.read_study`'s convergence.
        lines: Horizontal reference lines (label -> ms), e.g. eager, the best peer, the floor.

    Returns:
        ``{"plot_html": file name, "plot_png": file name}``, each only where its library is installed.
    """
    x = list(range(1, len(convergence["trial"]) + 1))
    pts = [(i, v) for i, v in zip(x, convergence["value_ms"], strict=True) if v is not None]
    out: dict[str, str] = {}
    if importlib.util.find_spec("plotly") is not None:
        import plotly.graph_objects as go

        fig = go.Figure()
        fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="markers", name="trial"))
        fig.add_trace(go.Scatter(x=x, y=convergence["best_ms"], mode="lines", name="best so far", line_shape="hv"))
        for label, ms in lines.items():
            fig.add_hline(y=ms, line_dash="dot", annotation_text=label)
        fig.update_layout(title=f"{name}: best latency vs trial", xaxis_title="counted trial",
                          yaxis_title="objective (ms, sum over the test data)", yaxis_type="log")
        out["plot_html"] = f"{stem.name}-{name}-convergence.html"
        fig.write_html(stem.parent / out["plot_html"], include_plotlyjs="cdn")
    if importlib.util.find_spec("matplotlib") is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        f, ax = plt.subplots(figsize=(7, 4))
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=10, label="trial")
        ax.step(x, [b if b is not None else float("nan") for b in convergence["best_ms"]], where="post",
                label="best so far")
        for label, ms in lines.items():
            ax.axhline(ms, linestyle=":", color="gray")
            ax.annotate(label, (x[-1] if x else 1, ms), fontsize=7, ha="right", va="bottom")
        ax.set_yscale("log")
        ax.set_xlabel("counted trial")
        ax.set_ylabel("objective (ms)")
        ax.set_title(f"{name}: best latency vs trial")
        ax.legend(fontsize=7)
        f.tight_layout()
        out["plot_png"] = f"{stem.name}-{name}-convergence.png"
        f.savefig(stem.parent / out["plot_png"], dpi=100)
        plt.close(f)
    return out


def main(argv: list[str] | None = None) -> int:
    """Merge the results JSON of several bench.py runs (one per GPU) into one results file.

    ``python experiments/bench_report.py DEST.json PART.json...``: each part's header and
    workloads go into DEST (created if missing), and DEST's Markdown is rendered again.

    Returns:
        The exit status.
    """
    import argparse

    ap = argparse.ArgumentParser(description=(main.__doc__ or "").splitlines()[0])
    ap.add_argument("dest", type=Path, help="the results JSON to merge into (<date>-<device>.json)")
    ap.add_argument("parts", type=Path, nargs="+", help="results JSON of the runs to merge")
    args = ap.parse_args(argv)
    for part in args.parts:
        doc = json.loads(part.read_text())
        header = {k: v for k, v in doc.items() if k != "workloads"}
        merge(args.dest.with_suffix(""), header, doc.get("workloads", {}))
    return 0


__all__ = ["accuracy_of", "main", "merge", "plot", "render", "results_stem", "targets"]


if __name__ == "__main__":
    import sys

    sys.exit(main())
