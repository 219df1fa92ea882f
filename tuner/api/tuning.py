"""The Python API: ``tune``, ``best_config`` and ``load_optimized``.

Example::

    import tuner
    result = tuner.tune(model, test_data, trials=200, device="gpu", level="o1")
    result.best_config, result.report, result.artifact_dir
    cfg = tuner.best_config("dec", storage="sqlite:///tune-output/study.db")
    fast = tuner.load_optimized(result.artifact_dir)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import optuna

from search_space import SpaceContext
from tuner.api.preflight import Checked, preflight, prepare, prepare_storage, sqlite_init_lock
from tuner.api.progress import RichProgress
from tuner.core import defaults, stopping
from tuner.core.devices import resolve_device
from tuner.core.errors import UserError
from tuner.core.native_log import native_output_to
from tuner.core.progress import NullProgress, Progress
from tuner.core.settings import TuneSettings
from tuner.core.workload import Workload
from tuner.export.artifact import load_optimized
from tuner.export.finalize import TuneResult, finalize
from tuner.search.keys import REFUSED_ATTR
from tuner.search.loop import run_trials
from tuner.search.study import best_candidate, load_study, open_study, resolve_backends, study_accuracy
from tuner.tracking.tracker import Tracker
from tuner.workloads.loading import make_workload

#: The study process's log of what native code prints (in the run's workers folder).
NATIVE_LOG = "study.log"


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Keep Optuna's per-trial log lines out of the way (the progress display reports trials)."""
    old = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(old)


def run(workload: Workload, checked: Checked, *, progress: Progress | None = None) -> TuneResult:
    """Tune a loaded workload (the CLI, :func:`tune` and ``optimize`` all end here).

    Args:
        workload: Model, test data and reference outputs, on its device.
        checked: The run's settings, after :func:`tuner.api.preflight.preflight`.
        progress: Progress display (None: silent).

    Returns:
        The result.

    Raises:
        UserError: For unusable settings (backends, a study that holds another workload).
    """
    progress = progress or NullProgress()
    stopping.clear()
    settings, device = checked.settings, workload.device
    if settings.backends is not None:
        # Refuse unknown or unavailable backends before anything is written.
        resolve_backends(settings.backends, workload, device, settings.static_only)
    prepare_storage(settings)
    with quiet_optuna():
        # Serialised with other processes that open the same sqlite files (their table creation races).
        with sqlite_init_lock(settings.storage_url):
            study, ctx, resumed = open_study(settings, workload, device)
        settings = settings.model_copy(update={"accuracy": study_accuracy(study)})
        prepare(settings, checked.track)
        tracker = _start_tracking(checked, settings, workload, ctx, progress)
        if resumed:
            progress.message(f"continuing study {settings.study_name!r} "
                             f"({len(study.trials)} trials so far) in {settings.storage_url}")
        else:
            _say_left_out(study, ctx, progress)
        try:
            # What native code prints while this process builds (the baseline, the finalists, the
            # export) goes into a log beside the workers' logs, not between the tuner's lines.
            with native_output_to(settings.workers_dir / NATIVE_LOG):
                with checked.budget.phase("search"):
                    loop = run_trials(study, ctx, workload, settings, tracker, progress, checked.budget)
                if loop.stopped_by == "interrupted":
                    progress.message("interrupted: writing the best result so far (Ctrl-C again to abort)")
                return finalize(study, workload, settings, loop, tracker, progress, checked.budget)
        except BaseException:
            if tracker is not None:
                tracker.close_failed()
            raise


def _say_left_out(study: optuna.Study, ctx: SpaceContext, progress: Progress) -> None:
    """Name what a new study left out of its space because it cannot build for this model."""
    for backend, reason in (study.user_attrs.get(REFUSED_ATTR) or {}).items():
        progress.message(f"left out of the search: {backend} ({reason})")
    for key, values in ctx.excluded:
        progress.message(f"left out of the search: {key}={', '.join(map(str, values))} (it does not build this model)")


def _start_tracking(checked: Checked, settings: TuneSettings, workload: Workload, ctx: SpaceContext,
                    progress: Progress) -> Tracker | None:
    """Open the study's MLflow parent run with its settings (None, said, when tracking is off)."""
    if not checked.track:
        progress.message("MLflow tracking is off (--no-mlflow): trials are only in the Optuna study")
        return None
    with sqlite_init_lock(settings.tracking_uri):
        tracker = Tracker(settings.tracking_uri, settings.study_name, settings.out / "mlruns")
    tracker.start(
        {"model": workload.source, "device": workload.device, "level": settings.level,
         "accuracy": settings.rule.spec, "seed": settings.seed,
         "backends": ",".join(ctx.backends), "trials": settings.trials, "samples": len(workload.samples),
         "static_only": settings.static_only, "expensive": settings.expensive},
        {"tuner.fingerprint": workload.fingerprint},
    )
    return tracker


def tune(
    model: Any,
    test_data: Sequence[tuple[Any, ...]],
    *,
    trials: int = defaults.TRIALS,
    device: str = "auto",
    level: str = defaults.LEVEL,
    accuracy: str | None = None,
    study_name: str = "model",
    output_dir: str | Path = defaults.OUTPUT_DIR,
    storage: str | None = None,
    mlflow_uri: str | None = None,
    backends: Sequence[str] | None = None,
    timeout: float | None = None,
    trial_timeout: float | None = defaults.TRIAL_TIMEOUT_S,
    seed: int = defaults.SEED,
    static_only: bool = False,
    expensive: bool = False,
    track: bool = True,
    verbose: bool = False,
    workers: int | None = None,
    memory_limit: float | None = None,
    finalists: int = defaults.FINALISTS,
) -> TuneResult:
    """Search how to compile ``model`` for ``test_data`` and emit the fastest correct candidate.

    Args:
        model: An ``nn.Module`` or TorchScript module taking one sample's tensors.
        test_data: One tuple of input tensors per sample, as the model will really see them.
        trials: Finished trials the study should hold (a resumed study runs only the rest).
        device: ``cpu``, ``gpu`` or ``auto``.
        level: ``o1`` (fp32 results) or ``o2`` (TF32/fp16/bf16 within a looser tolerance).
        accuracy: The accuracy rule (``--accuracy``); None for the level's default.
        study_name: Optuna study and MLflow experiment name; an existing study is continued.
        output_dir: Where the study, the tracking store and ``<study>/best/`` go.
        storage: Optuna storage URL (default ``sqlite:///<output_dir>/study.db``).
        mlflow_uri: MLflow tracking URI (default ``sqlite:///<output_dir>/mlflow.db``).
        backends: Backends to search (default: every available one).
        timeout: Seconds for the whole run (loading, search, finalists, export and its check).
        trial_timeout: Seconds one candidate may take to build and measure (then it fails).
        seed: TPE sampler seed.
        static_only: Only static-shape candidates.
        expensive: Also search the choices that cost minutes per candidate (``--expensive``).
        track: Log every trial to MLflow.
        verbose: Show the progress bar on stderr.
        workers: Worker processes measuring candidates in parallel (one per GPU on a GPU study).
        memory_limit: GiB of resident memory one worker may use (default: a share of the RAM,
            or of the container's memory limit where lower, split between the workers); a
            candidate over it fails with ``out of memory``.
        finalists: How many of the fastest distinct candidates are measured again side by side
            with eager after the trials; the fastest that runs correctly and exports is emitted.

    Returns:
        ``TuneResult`` with ``best_config``, ``report`` and ``artifact_dir``.

    Raises:
        UserError: For input that cannot be used (test data that does not fit the model, ...).
    """
    settings = TuneSettings(study_name=study_name, output_dir=Path(output_dir), storage=storage,
                            mlflow_uri=mlflow_uri, trials=trials, timeout_s=timeout, trial_timeout_s=trial_timeout,
                            seed=seed, level=level, accuracy=accuracy,
                            backends=tuple(backends) if backends is not None else None, static_only=static_only,
                            expensive=expensive, workers=workers, memory_limit_gb=memory_limit,
                            finalists=finalists)
    dev = resolve_device(device)
    checked = preflight(settings, track)
    with checked.budget.phase("load"):
        workload = make_workload(model, test_data, dev, name=study_name)
    return run(workload, checked, progress=RichProgress() if verbose else None)


def best_config(study_name: str, storage: str = f"sqlite:///{defaults.OUTPUT_DIR}/study.db") -> dict[str, Any]:
    """The config ``tune`` emitted for a study (else its best trial's), rebuilt from its stored params.

    Args:
        study_name: The study.
        storage: Its storage URL.

    Returns:
        ``{"backend", "shape_mode", "precision", "options", "trial", "objective_ms"}``.

    Raises:
        UserError: When the study does not exist or has no complete trial.
    """
    study = load_study(study_name, storage)
    found = best_candidate(study)
    if found is None:
        raise UserError(f"study {study_name!r} has no successful trial yet", "run tune on it first")
    trial, candidate = found
    return {**candidate.to_dict(), "trial": trial.number,
            "objective_ms": None if trial.value is None else trial.value * 1e3}


__all__ = ["TuneResult", "best_config", "load_optimized", "run", "tune"]
