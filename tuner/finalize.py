"""After the trial loop: emit the winner.

Rebuild the study's fastest distinct candidates (its finalists, :mod:`tuner.finalists`), measure
them side by side with eager, export the fastest that runs correctly (the next one if its export
fails), check the reloaded artifact, and write ``best/`` (artifact, report, best config) atomically.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any

import optuna

from backends import error_line, get_backend
from tuner.artifact import MANIFEST, write_dir_atomically, write_json
from tuner.devices import hardware_context
from tuner.finalists import Pick, fastest, ranked, record, top_picks
from tuner.progress import NullProgress, Progress
from tuner.records import Built, Candidate
from tuner.report import build_report
from tuner.settings import TuneSettings
from tuner.sidebyside import Result, run_side_by_side
from tuner.study import EMITTED_ATTR, LoopResult, redact, summary
from tuner.tracking import Tracker
from tuner.verify import verify_in_subprocess
from tuner.workload import Workload

#: Alternating rounds of the finalists' side-by-side measurement (each keeps its fastest).
FINAL_ROUNDS = 2


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


def _measure_finalists(workload: Workload, picks: list[Pick], settings: TuneSettings
                       ) -> tuple[dict[str, Result], dict[str, Built]]:
    """Rebuild the finalists and measure them with eager in alternating rounds, in this process.

    Returns:
        ``(results, built)`` by row name (``eager``, ``trial N``); a finalist that is eager itself
        shares eager's row.
    """
    eager = Candidate("eager")
    entries = {"eager": eager, **{p.name: p.candidate for p in picks if p.candidate.key() != eager.key()}}
    built: dict[str, Built] = {}
    # The study's cache dir: a TVM finalist is rebuilt from its tuning records, not tuned again.
    # Each gets the time a trial gets: a rebuild here must not hold the study process forever.
    rows = run_side_by_side(workload, entries, settings.measure_config(), rounds=FINAL_ROUNDS, level=settings.level,
                            cache_dir=settings.cache_dir, keep=built, compile_limit_s=settings.trial_timeout_s)
    results = {r.name: r for r in rows}
    for p in picks:
        if p.name not in entries:
            results[p.name] = dataclasses.replace(results["eager"], name=p.name)
            if "eager" in built:
                built[p.name] = built["eager"]
    return results, built


def finalize(study: optuna.Study, workload: Workload, settings: TuneSettings, loop: LoopResult,
             tracker: Tracker | None, progress: Progress | None = None) -> TuneResult:
    """Write the run's result.

    Args:
        study: The finished (or interrupted) study.
        workload: The workload.
        settings: The run's settings.
        loop: How the trial loop ended.
        tracker: MLflow tracker, None when tracking is off.
        progress: Who to tell.

    Returns:
        The result; ``artifact_dir`` is None when no trial succeeded or the export failed.
    """
    progress = progress or NullProgress()
    config = settings.measure_config()
    picks = top_picks(study, settings.finalists)
    search = {**summary(study), "stopped_by": loop.stopped_by, "wall_s": round(loop.wall_s, 2),
              "best_trial": picks[0].trial if picks else None,
              "best_objective_ms": picks[0].objective_s * 1e3 if picks else None,
              "seed": settings.seed, "workers": loop.workers}
    common: dict[str, Any] = dict(
        study=study, samples=len(workload.samples), search=search, level=settings.level,
        measurement={"device": hardware_context(workload.device)["device_name"], "warmup": config.warmup,
                     "repeats": config.repeats, "objective": "sum over the test samples of each sample's median "
                     "latency (first call per shape excluded, counted as compile time)"},
        test_data={"samples": len(workload.samples), "shapes": workload.shapes_summary(),
                   "varying_dims": [list(d) for d in workload.varying_dims()]},
        context=hardware_context(workload.device),
        locations={"name": study.study_name, "storage": redact(settings.storage_url),
                   "mlflow_uri": redact(settings.tracking_uri) if tracker else None, "output_dir": str(settings.out)},
        baseline_total_s=loop.baseline_s,
    )
    if not picks:
        report = build_report(chosen=None, chosen_trial=None, pre_total_s=loop.baseline_s, post_total_s=None,
                              accuracy=None, artifact=None, **common)
        where = "the study and MLflow" if tracker is not None else "the study"
        progress.message(f"no successful trial in study {study.study_name!r}, so no artifact was written "
                         f"(failures by reason: {search['failures_by_reason']}; each reason is in {where})")
        if tracker is not None:
            tracker.finish(report=report, best_config=None, study=study, best_dir=None,
                           status="KILLED" if loop.stopped_by == "interrupted" else "FINISHED")
        return TuneResult(study.study_name, None, report, None, settings.storage_url,
                          settings.tracking_uri if tracker else None)

    progress.phase(f"measuring the {len(picks)} fastest distinct candidate(s) again, side by side with eager: "
                   + ", ".join(f"trial {p.trial} ({p.candidate.backend})" for p in picks))
    results, built = _measure_finalists(workload, picks, settings)
    for p in picks:
        if not results[p.name].ok:
            progress.message(f"finalist trial {p.trial} ({p.candidate.describe()}): {results[p.name].error}")
    order = ranked(picks, results)
    eager_res = results["eager"]
    pre_s = eager_res.total_ms / 1e3 if eager_res.ok and eager_res.total_ms else None
    artifact: dict[str, Any] = {"dir": str(settings.best_dir)}
    written: dict[str, Any] = {}

    def fill(tmp: Path) -> None:
        # The fastest finalist that ran correctly and exports wins; if its export (or the check
        # of the reloaded artifact) fails, the next one is tried, and the report says why.
        chosen = fastest(picks, results)
        if not order:
            artifact["error"] = "no finalist rebuilt and ran correctly: " + "; ".join(
                f"trial {p.trial}: {results[p.name].error}" for p in picks)
        t0 = time.perf_counter()
        for p in order:
            progress.phase(f"exporting the {p.candidate.backend} artifact (trial {p.trial})")
            try:
                backend = get_backend(p.candidate.backend, cache_dir=settings.cache_dir)
                meta = backend.export(built[p.name], workload, p.candidate, tmp)
                write_json(tmp / MANIFEST, {"backend": p.candidate.backend, "backend_module": type(backend).__module__,
                                            "device": workload.device, "candidate": p.candidate.to_dict(),
                                            "meta": meta})
                progress.phase("checking the artifact in a fresh process")
                artifact.update(verify_in_subprocess(tmp, workload, settings.level, config.warmup, config.repeats))
                chosen = p
                artifact.pop("error", None)
                break
            except Exception as e:  # noqa: BLE001 - a failed export is reported, not a crash
                error = f"export failed: {error_line(e)}"
                artifact.setdefault("error", error)
                artifact.setdefault("fallbacks", []).append({"trial": p.trial, "candidate": p.candidate.describe(),
                                                             "error": error})
                progress.message(f"trial {p.trial}: {error}" + (": trying the next finalist" if p is not order[-1]
                                                                 else ""))
                # No half-artifact: the folder keeps only the report and the config.
                for f in tmp.iterdir():
                    shutil.rmtree(f) if f.is_dir() else f.unlink()
        if order:
            artifact["export_s"] = round(time.perf_counter() - t0, 2)
        artifact["files"] = sorted(f.name for f in tmp.iterdir())
        res = results[chosen.name]
        accuracy = ({"ok": True, "max_abs_err": res.max_abs_err, "max_rel_err": res.max_rel_err, "detail": ""}
                    if res.ok else None)
        best_config = {**chosen.candidate.to_dict(), "trial": chosen.trial, "objective_ms": chosen.objective_s * 1e3,
                       "side_by_side_ms": res.total_ms, "study": study.study_name, "level": settings.level,
                       "device": workload.device}
        report = build_report(chosen=chosen.candidate, chosen_trial=chosen.trial, pre_total_s=pre_s,
                              post_total_s=res.total_ms / 1e3 if res.ok and res.total_ms else None,
                              accuracy=accuracy, artifact=artifact, finalists=record(picks, results, chosen), **common)
        written.update(report=report, best_config=best_config)
        write_json(tmp / "report.json", report)
        write_json(tmp / "best_config.json", best_config)

    write_dir_atomically(settings.best_dir, fill)
    report, best_config = written["report"], written["best_config"]
    # tuner.best_config(study) answers with what was emitted, not with the best single measurement.
    study.set_user_attr(EMITTED_ATTR, best_config["trial"])
    if "error" in artifact:
        progress.message(f"warning: {artifact['error']}")
    if tracker is not None:
        tracker.finish(report=report, best_config=best_config, study=study, best_dir=settings.best_dir,
                       status="KILLED" if loop.stopped_by == "interrupted" else "FINISHED")
    return TuneResult(study.study_name, best_config, report, settings.best_dir, settings.storage_url,
                      settings.tracking_uri if tracker else None)
