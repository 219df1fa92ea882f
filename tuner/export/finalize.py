"""After the trial loop: emit the winner.

Rebuild the study's fastest distinct candidates (its finalists, :mod:`tuner.export.finalists`),
measure them side by side with eager, export the fastest that runs correctly and check it in a
fresh process (if that fails, the next one, down the study's ranking: :mod:`tuner.export.emit`),
and write ``best/`` (artifact, report, best config) atomically. Without an exported artifact
nothing is written under the study's folder.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import optuna

from tuner.core.budget import Budget
from tuner.core.defaults import FINAL_ROUNDS
from tuner.core.devices import hardware_context
from tuner.core.files import write_dir_atomically, write_json
from tuner.core.native_log import count_lines
from tuner.core.places import redact
from tuner.core.progress import NullProgress, Progress
from tuner.core.records import Built, Candidate
from tuner.core.settings import TuneSettings
from tuner.core.workload import Workload
from tuner.export.challenge import DEVICES as CHALLENGE_DEVICES
from tuner.export.emit import Emitter, candidates, export_first
from tuner.export.finalists import Pick, distinct_picks, fastest_per_backend, record, top_picks
from tuner.export.report import build_report
from tuner.export.sidebyside import Result, run_side_by_side
from tuner.search.keys import EMITTED_ATTR
from tuner.search.loop import LoopResult
from tuner.search.summary import summary
from tuner.tracking.tracker import Tracker


@dataclasses.dataclass(frozen=True)
class TuneResult:
    """What a tuning run returns.

    Attributes:
        study_name: The study.
        best_config: The winning candidate as a dict (``best_config.json``), None if none won.
        report: The report (``report.json``).
        artifact_dir: ``<output>/<study>/best`` when an artifact was written, else None.
        storage: The Optuna storage URL.
        mlflow_uri: The MLflow tracking URI (None when tracking was off).
    """

    study_name: str
    best_config: dict[str, Any] | None
    report: dict[str, Any]
    artifact_dir: Path | None
    storage: str
    mlflow_uri: str | None


@dataclasses.dataclass(frozen=True)
class Finalists:
    """The finalists measured side by side with eager.

    Attributes:
        picks: The study's fastest distinct candidates, fastest objective first.
        results: Their side-by-side rows by name (``eager``, ``trial N``).
        built: What built, by row name (exported from, not built again).
    """

    picks: list[Pick]
    results: dict[str, Result]
    built: dict[str, Built]

    @property
    def eager_s(self) -> float | None:
        """Eager over the test data, side by side with the finalists."""
        eager = self.results["eager"]
        return eager.total_ms / 1e3 if eager.ok and eager.total_ms else None


@dataclasses.dataclass
class _Run:
    """One final phase: what it was given, and where its report goes."""

    study: optuna.Study
    workload: Workload
    settings: TuneSettings
    loop: LoopResult
    tracker: Tracker | None
    progress: Progress
    budget: Budget


def measure_finalists(workload: Workload, picks: list[Pick], settings: TuneSettings) -> Finalists:
    """Rebuild the finalists and measure them with eager in alternating rounds, in this process.

    A finalist that is eager itself shares eager's row. Each rebuild gets the time a trial gets
    (a rebuild here must not hold the study process forever), and a TVM finalist is rebuilt from
    the study's tuning records, not tuned again.

    Returns:
        The finalists with their rows.
    """
    eager = Candidate("eager")
    entries = {"eager": eager, **{p.name: p.candidate for p in picks if p.candidate.key() != eager.key()}}
    built: dict[str, Built] = {}
    rows = run_side_by_side(workload, entries, settings.measure_config(), rounds=FINAL_ROUNDS, rule=settings.rule,
                            cache_dir=settings.cache_dir, keep=built, compile_limit_s=settings.trial_timeout_s)
    results = {r.name: r for r in rows}
    for p in picks:
        if p.name not in entries:
            results[p.name] = dataclasses.replace(results["eager"], name=p.name)
            if "eager" in built:
                built[p.name] = built["eager"]
    return Finalists(picks, results, built)


def finalize(study: optuna.Study, workload: Workload, settings: TuneSettings, loop: LoopResult,
             tracker: Tracker | None, progress: Progress | None = None, budget: Budget | None = None) -> TuneResult:
    """Write the run's result.

    Args:
        study: The finished (or interrupted) study.
        workload: The workload.
        settings: The run's settings.
        loop: How the trial loop ended.
        tracker: MLflow tracker, None when tracking is off.
        progress: Who to tell.
        budget: The run's clock (None: no limit).

    Returns:
        The result; ``artifact_dir`` is None when nothing was exported (no trial succeeded, or
        no successful candidate exports).
    """
    run = _Run(study, workload, settings, loop, tracker, progress or NullProgress(), budget or Budget())
    picks = _fitting(top_picks(study, settings.finalists), run)
    if not picks:
        return _nothing_to_emit(run, _report_context(run, picks), None)
    run.progress.phase(f"measuring the {len(picks)} fastest distinct candidate(s) again, side by side with eager: "
                       + ", ".join(f"trial {p.trial} ({p.candidate.backend})" for p in picks))
    with run.budget.phase("finalists"):
        finalists = measure_finalists(workload, picks, settings)
    for p in picks:
        if not finalists.results[p.name].ok:
            run.progress.message(f"finalist trial {p.trial} ({p.candidate.describe()}): "
                                 f"{finalists.results[p.name].error}")
    emitter = Emitter(workload, settings, run.budget, run.progress)
    written: list[tuple[dict[str, Any], dict[str, Any]]] = []
    try:
        write_dir_atomically(settings.best_dir, lambda tmp: written.append(_fill_best(tmp, run, finalists, emitter)))
    except _NothingExported as e:
        return _nothing_to_emit(run, e.common, e.artifact)
    report, best_config = written[0]
    # tuner.best_config(study) answers with what was emitted, not with the best single measurement.
    study.set_user_attr(EMITTED_ATTR, best_config["trial"])
    _finish_tracking(run, report, best_config, settings.best_dir)
    return TuneResult(study.study_name, best_config, report, settings.best_dir, settings.storage_url,
                      settings.tracking_uri if tracker else None)


def _fitting(picks: list[Pick], run: _Run) -> list[Pick]:
    """The finalists whose rebuild still fits the time budget (the study's best always stays)."""
    left = run.budget.remaining()
    kept = picks[:1]
    for p in picks[1:]:
        left -= _rebuild_estimate_s(p)
        if left > 0:
            kept.append(p)
    return kept


def _rebuild_estimate_s(pick: Pick) -> float:
    """About what rebuilding and measuring ``pick`` again takes: its trial's compile time, and a margin."""
    return 2.0 * pick.compile_s + 5.0


class _NothingExported(Exception):
    """No successful candidate exported: ``best/`` is not written (the report still goes to MLflow)."""

    def __init__(self, common: dict[str, Any], artifact: dict[str, Any]) -> None:
        super().__init__(artifact.get("error"))
        self.common, self.artifact = common, artifact


def _report_context(run: _Run, picks: list[Pick]) -> dict[str, Any]:
    """The report's parts that do not depend on which finalist wins."""
    config, study, workload = run.settings.measure_config(), run.study, run.workload
    search = {**summary(study), "stopped_by": run.loop.stopped_by, "wall_s": round(run.loop.wall_s, 2),
              "best_trial": picks[0].trial if picks else None,
              "best_objective_ms": picks[0].objective_s * 1e3 if picks else None,
              "seed": run.settings.seed, "workers": run.loop.workers}
    context = hardware_context(workload.device)
    return dict(
        study=study, samples=len(workload.samples), search=search, level=run.settings.level,
        rule=run.settings.rule.spec,
        measurement={"device": context["device_name"], "warmup": config.warmup, "repeats": config.repeats,
                     "objective": "sum over the test samples of each sample's median latency (first call per "
                     "shape excluded, counted as compile time)"},
        test_data={"samples": len(workload.samples), "shapes": workload.shapes_summary(),
                   "varying_dims": [list(d) for d in workload.varying_dims()]},
        context=context,
        locations={"name": study.study_name, "storage": redact(run.settings.storage_url),
                   "mlflow_uri": redact(run.settings.tracking_uri) if run.tracker else None,
                   "output_dir": str(run.settings.out)},
        baseline_total_s=run.loop.baseline_s,
        native_output={"lines": count_lines(run.settings.workers_dir), "logs": str(run.settings.workers_dir)},
        timing=run.budget.split(),
    )


def _nothing_to_emit(run: _Run, common: dict[str, Any], artifact: dict[str, Any] | None) -> TuneResult:
    """No trial succeeded, or none exported: report it (on MLflow, not on disk) and write nothing."""
    report = build_report(chosen=None, chosen_trial=None, pre_total_s=run.loop.baseline_s, post_total_s=None,
                          accuracy=None, artifact=artifact, **common)
    where = "the study and MLflow" if run.tracker is not None else "the study"
    if artifact is None:
        run.progress.message(f"no successful trial in study {run.study.study_name!r}, so no artifact was written "
                             f"(failures by reason: {common['search']['failures_by_reason']}; each reason is in "
                             f"{where})")
    else:
        run.progress.message(f"no artifact was written for study {run.study.study_name!r}: {artifact['error']}")
    _finish_tracking(run, report, None, None)
    return TuneResult(run.study.study_name, None, report, None, run.settings.storage_url,
                      run.settings.tracking_uri if run.tracker else None)


def _finish_tracking(run: _Run, report: dict[str, Any], best_config: dict[str, Any] | None,
                     best_dir: Path | None) -> None:
    if run.tracker is not None:
        run.tracker.finish(report=report, best_config=best_config, study=run.study, best_dir=best_dir,
                           status="KILLED" if run.loop.stopped_by == "interrupted" else "FINISHED")


def _fill_best(tmp: Path, run: _Run, finalists: Finalists, emitter: Emitter) -> tuple[dict[str, Any], dict[str, Any]]:
    """Export the winner into ``tmp`` and write its report and config beside it.

    Raises:
        _NothingExported: When no successful candidate exports.
    """
    order = candidates(finalists.picks, finalists.results, finalists.built, distinct_picks(run.study))
    side_by_side_ms = {name: float(r.total_ms) for name, r in finalists.results.items() if r.ok and r.total_ms}
    offered = side_by_side_ms if run.workload.device in CHALLENGE_DEVICES else None
    chosen, artifact = export_first(tmp, emitter, order, offered)
    if chosen is None:
        raise _NothingExported(_report_context(run, finalists.picks), artifact)
    res = finalists.results.get(chosen.name)
    accuracy = ({"ok": True, "rule": run.settings.rule.spec, "score": res.accuracy[1] if res.accuracy else None,
                 "max_abs_err": res.max_abs_err, "max_rel_err": res.max_rel_err, "detail": ""}
                if res is not None and res.ok else None)
    best_config = {**chosen.candidate.to_dict(), "trial": chosen.trial, "objective_ms": chosen.objective_s * 1e3,
                   "side_by_side_ms": res.total_ms if res else None, "study": run.study.study_name,
                   "level": run.settings.level, "accuracy": run.settings.rule.spec, "device": run.workload.device}
    report = build_report(chosen=chosen.candidate, chosen_trial=chosen.trial, pre_total_s=finalists.eager_s,
                          post_total_s=res.total_ms / 1e3 if res is not None and res.ok and res.total_ms else None,
                          accuracy=accuracy, artifact=artifact,
                          finalists=record(finalists.picks, finalists.results, chosen),
                          side_by_side_s=fastest_per_backend(finalists.picks, finalists.results),
                          **_report_context(run, finalists.picks))
    write_json(tmp / "report.json", report)
    write_json(tmp / "best_config.json", best_config)
    return report, best_config


__all__ = ["Finalists", "TuneResult", "finalize", "measure_finalists"]
