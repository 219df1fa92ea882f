"""The tuner's side of the benchmark: run (or continue) its study, then read its convergence and snapshots.

The study lives in ``<work dir>/<device>/<workload>/study.db`` (the tuner's own output folder), so a
later call continues it: a device call of at most 10 minutes runs part of the 200 trials, the next
call the rest. The tuner's best after N trials is the best COMPLETE trial among the first N
counted trials (in trial-number order, as :func:`tuner.search.claims.counted_trials` counts them), decoded
from its params exactly as tuning decoded it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from tuner.api.preflight import preflight
from tuner.api.tuning import quiet_optuna, run
from tuner.core.files import write_json
from tuner.core.progress import Progress
from tuner.core.settings import TuneSettings
from tuner.core.workload import Workload
from tuner.export.finalists import Pick, top_picks
from tuner.search.claims import counted_trials
from tuner.search.study import load_study

#: Per-call wall times of the tune phase, kept next to the study.
CALLS_FILE = "bench_tune_calls.json"


def study_name(workload: str) -> str:
    """The study of a workload."""
    return f"bench-{workload}"


def tune(workload: Workload, out: Path, *, device: str, trials: int, timeout_s: float | None,
         workers: int | None, backends: tuple[str, ...] | None, progress: Progress, track: bool,
         memory_limit_gb: float | None = None, level: str = "o1", accuracy: str | None = None) -> dict[str, Any]:
    """Run the tuner on the workload until its study counts ``trials`` trials (or ``timeout_s`` passes).

    Args:
        workload: The workload.
        out: The tuner's output folder for it.
        device: ``cpu`` or ``gpu``.
        trials: Trials the study should count.
        timeout_s: Seconds for this call's trial loop (the next call continues), None for none.
        workers: Tuner worker processes (None: its default).
        backends: Backends to search (None: every available one).
        progress: The tuner's progress display.
        track: Let the tuner log its trials to MLflow (its own tracking store under ``out``).
        memory_limit_gb: GiB one worker may use (None: the tuner's default, 80 % of RAM shared by
            this process's workers, which over-commits a host shared by several bench processes).
        level: The tuner's level (``o2`` also searches TF32, fp16, bf16 and autocast).
        accuracy: The accuracy rule its trials are judged by (``--accuracy``); None: the level's
            default. ``bench.py`` passes the rule its peers are judged by, so that both meet one guard.

    Returns:
        This call's record: wall seconds and trials counted before and after.
    """
    before = counted(out, workload.name)
    if before >= trials:
        progress.message(f"{workload.name}: the study already counts {before} trials (>= {trials}): not tuning")
        return {"wall_s": 0.0, "before": before, "after": before}
    settings = TuneSettings(study_name=study_name(workload.name), output_dir=out, trials=trials, timeout_s=timeout_s,
                            workers=workers, backends=backends, memory_limit_gb=memory_limit_gb, level=level,
                            accuracy=accuracy)
    t0 = time.perf_counter()
    run(workload, preflight(settings, track), progress=progress)
    call = {"wall_s": round(time.perf_counter() - t0, 2), "before": before, "after": counted(out, workload.name),
            "at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    path = out / CALLS_FILE
    calls = json.loads(path.read_text()) if path.is_file() else []
    write_json(path, [*calls, call])
    return call


def storage_url(out: Path) -> str:
    """The study's storage (the tuner's default under its output folder)."""
    return f"sqlite:///{out.resolve() / 'study.db'}"


def counted(out: Path, workload: str) -> int:
    """Trials the workload's study counts so far (0 when there is none)."""
    if not (out / "study.db").is_file():
        return 0
    with quiet_optuna():
        names = optuna.study.get_all_study_names(storage_url(out))
        if study_name(workload) not in names:
            return 0
        study = optuna.load_study(study_name=study_name(workload), storage=storage_url(out))
    return len(counted_trials(study.get_trials(deepcopy=False)))


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The tuner's best candidates after its first ``n`` counted trials.

    Attributes:
        n: Trials asked for.
        counted: Trials the study really had (fewer than ``n`` when it stopped early).
        time_to_n_s: From the first trial's start to the last end among the first n counted
            trials (gaps between calls included when the study ran over several calls).
        finalists: The fastest distinct candidates among those trials (the study's best first,
            never empty), which the tuner measures again side by side before emitting one
            (:mod:`tuner.export.finalists`).
    """

    n: int
    counted: int
    time_to_n_s: float | None
    finalists: tuple[Pick, ...]

    @property
    def trial(self) -> int:
        """The study's best trial among the first ``n`` (as measured in its trial)."""
        return self.finalists[0].trial


def read_study(out: Path, workload: str, snapshots: list[int], finalists: int = 3
               ) -> tuple[dict[str, Any], list[Snapshot]]:
    """The study's convergence and its best candidates after each snapshot's trial count.

    Args:
        out: The tuner's output folder.
        workload: The workload's name.
        snapshots: Trial counts (e.g. ``[50, 200]``).
        finalists: Finalists per snapshot (the tuner's ``--finalists``).

    Returns:
        ``(convergence, snapshots)``: convergence has, per counted trial in order, its number,
        state, objective (ms, None unless COMPLETE) and the best so far; snapshots are left out
        for counts before the first COMPLETE trial.
    """
    with quiet_optuna():
        study = load_study(study_name(workload), storage_url(out))
    trials = counted_trials(study.get_trials(deepcopy=False))
    numbers, states, values, best = [], [], [], []
    run_min: float | None = None
    for t in trials:
        v = t.value * 1e3 if t.state == TrialState.COMPLETE and t.value is not None else None
        if v is not None and (run_min is None or v < run_min):
            run_min = v
        numbers.append(t.number)
        states.append(t.state.name)
        values.append(v)
        best.append(run_min)
    convergence = {"trial": numbers, "state": states, "value_ms": values, "best_ms": best,
                   "baseline_ms": (study.user_attrs["baseline_s"] * 1e3 if study.user_attrs.get("baseline_s")
                                   else None)}
    out_snaps = []
    start = min((t.datetime_start for t in trials if t.datetime_start is not None), default=None)
    for n in snapshots:
        first = trials[:n]
        picks = tuple(top_picks(study, finalists, first))
        if not picks:
            continue
        # With several workers the n-th trial by number need not be the last of the n to finish.
        end = max((t.datetime_complete for t in first if t.datetime_complete is not None), default=None)
        out_snaps.append(Snapshot(n=n, counted=len(first),
                                  time_to_n_s=(end - start).total_seconds() if start and end else None,
                                  finalists=picks))
    return convergence, out_snaps


def tune_calls(out: Path) -> list[dict[str, Any]]:
    """The tune phase's calls on this study so far."""
    path = out / CALLS_FILE
    data: list[dict[str, Any]] = json.loads(path.read_text()) if path.is_file() else []
    return data


__all__ = ["Snapshot", "counted", "read_study", "storage_url", "study_name", "tune", "tune_calls"]
