"""After the trial loop: emit the winner.

Rebuild the best candidate, measure it side by side with eager, export it, check the reloaded
artifact, and write ``best/`` (artifact, report, best config) atomically.
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
from tuner.correctness import TOLERANCES, check_outputs
from tuner.devices import hardware_context
from tuner.measure import MeasureConfig, measure
from tuner.progress import NullProgress, Progress
from tuner.records import Built, Candidate, Measurement
from tuner.report import build_report
from tuner.settings import TuneSettings
from tuner.study import LoopResult, best_candidate, redact, summary
from tuner.tracking import Tracker
from tuner.verify import verify_in_subprocess
from tuner.workload import Workload


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


def side_by_side(eager: Built, best: Built, backend_measure: Any, workload: Workload,
                  config: MeasureConfig, rounds: int = 2) -> tuple[Measurement, Measurement]:
    """Measure eager and the winner alternately; keep each one's faster round (less noise)."""
    pairs: list[tuple[Measurement, Measurement]] = []
    for _ in range(rounds):
        pairs.append((measure(eager.fn, workload, config), backend_measure(best, workload, config)))

    def pick(ms: list[Measurement]) -> Measurement:
        return min(ms, key=lambda m: m.total_s if m.ok else float("inf"))

    return pick([p[0] for p in pairs]), pick([p[1] for p in pairs])


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
    found = best_candidate(study)
    search = {**summary(study), "stopped_by": loop.stopped_by, "wall_s": round(loop.wall_s, 2),
              "best_trial": found[0].number if found else None,
              "best_objective_ms": found[0].value * 1e3 if found and found[0].value is not None else None,
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
    if found is None:
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

    trial, candidate = found
    progress.phase(f"rebuilding the best candidate (trial {trial.number}: {candidate.describe()}) and measuring "
                   "it side by side with eager")
    # The study's cache dir: a TVM winner is rebuilt from its tuning records, not tuned again.
    backend = get_backend(candidate.backend, cache_dir=settings.cache_dir)
    eager_built = get_backend("eager").build(workload, Candidate("eager")).built
    result = backend.build(workload, candidate)
    pre_s = post_s = None
    accuracy: dict[str, Any] | None = None
    if result.built is not None and eager_built is not None:
        m_eager, m_best = side_by_side(eager_built, result.built, backend.measure, workload, config)
        pre_s = m_eager.total_s if m_eager.ok else None
        if m_best.ok and m_best.outputs is not None:
            post_s = m_best.total_s
            verdict = check_outputs(m_best.outputs, workload.reference, TOLERANCES[settings.level])
            accuracy = {"ok": verdict.ok, "max_abs_err": verdict.max_abs_err, "max_rel_err": verdict.max_rel_err,
                        "detail": verdict.detail}
    best_config = {**candidate.to_dict(), "trial": trial.number, "objective_ms": trial.value * 1e3
                   if trial.value is not None else None, "study": study.study_name, "level": settings.level,
                   "device": workload.device}
    artifact: dict[str, Any] = {"dir": str(settings.best_dir)}
    written: dict[str, Any] = {}

    def fill(tmp: Path) -> None:
        if result.built is None:
            artifact["error"] = f"rebuild failed: {result.error_msg}"
        else:
            progress.phase(f"exporting the {candidate.backend} artifact")
            t0 = time.perf_counter()
            try:
                meta = backend.export(result.built, workload, candidate, tmp)
                write_json(tmp / MANIFEST, {"backend": candidate.backend, "backend_module": type(backend).__module__,
                                            "device": workload.device,
                                            "candidate": candidate.to_dict(), "meta": meta})
                progress.phase("checking the artifact in a fresh process")
                artifact.update(verify_in_subprocess(tmp, workload, settings.level, config.warmup, config.repeats))
            except Exception as e:  # noqa: BLE001 - a failed export is reported, not a crash
                artifact["error"] = f"export failed: {error_line(e)}"
                # No half-artifact: the folder keeps only the report and the config.
                for p in tmp.iterdir():
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
            artifact["export_s"] = round(time.perf_counter() - t0, 2)
            artifact["files"] = sorted(p.name for p in tmp.iterdir())
        report = build_report(chosen=candidate, chosen_trial=trial.number, pre_total_s=pre_s, post_total_s=post_s,
                              accuracy=accuracy, artifact=artifact, **common)
        written["report"] = report
        write_json(tmp / "report.json", report)
        write_json(tmp / "best_config.json", best_config)

    write_dir_atomically(settings.best_dir, fill)
    report = written["report"]
    if "error" in artifact:
        progress.message(f"warning: {artifact['error']}")
    if tracker is not None:
        tracker.finish(report=report, best_config=best_config, study=study, best_dir=settings.best_dir,
                       status="KILLED" if loop.stopped_by == "interrupted" else "FINISHED")
    return TuneResult(study.study_name, best_config, report, settings.best_dir, settings.storage_url,
                      settings.tracking_uri if tracker else None)
