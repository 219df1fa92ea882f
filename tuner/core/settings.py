"""What a tuning run is asked to do, validated (pydantic, unknown fields refused)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, field_validator

from tuner.core import defaults
from tuner.core.accuracy import AccuracyRule, accuracy_rule, checked_spec
from tuner.core.errors import UserError
from tuner.core.records import MeasureConfig


class TuneSettings(BaseModel):
    """Settings of one ``tune`` run.

    Attributes:
        study_name: Optuna study (and MLflow experiment) name; an existing one is continued.
        output_dir: Folder for ``study.db``, ``mlflow.db``, ``mlruns/`` and ``<study>/best/``.
        storage: SQLAlchemy URL of the Optuna storage; ``sqlite:///<output_dir>/study.db`` if None.
        mlflow_uri: MLflow tracking URI; ``sqlite:///<output_dir>/mlflow.db`` if None.
        trials: Finished trials the study should hold (a resumed study runs only the rest).
        timeout_s: Wall-clock budget of the whole run (:class:`tuner.core.budget.Budget`), None for none.
        trial_timeout_s: Limit on one candidate's build and measurement; past it the trial fails
            with reason ``timeout``. None for none.
        seed: Seed of the TPE sampler.
        level: ``o1`` (fp32 results) or ``o2`` (TF32/fp16/bf16 allowed, looser tolerance).
        accuracy: The accuracy rule (``--accuracy``, :mod:`tuner.core.accuracy`); None: the
            level's default (a continued study keeps the rule it was created with).
        backends: Backends to search; all available ones if None.
        static_only: Only static-shape candidates.
        expensive: Also search the choices that cost minutes per candidate (see
            :class:`search_space.base.SpaceContext`).
        prune: Stop clearly slow candidates after a short first measurement.
        warmup: Untimed calls per sample.
        repeats: Timed calls per sample.
        workers: Worker processes measuring candidates in parallel (one per GPU on a GPU study).
        memory_limit_gb: Resident memory one worker's process tree may use before its candidate
            fails with ``out of memory``; None: 80 % of RAM (or of the container's memory limit,
            where lower) shared by the workers.
        finalists: The fastest distinct candidates measured again side by side with eager after
            the trial loop; the fastest of them that runs correctly (and exports) is emitted.
        isolate: Run candidates in worker processes (False: in this process, without the
            protection against segfaults, hangs in native code and runaway memory).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    study_name: str
    output_dir: Path = Path(defaults.OUTPUT_DIR)
    storage: str | None = None
    mlflow_uri: str | None = None
    trials: int = defaults.TRIALS
    timeout_s: float | None = None
    trial_timeout_s: float | None = defaults.TRIAL_TIMEOUT_S
    seed: int = defaults.SEED
    level: str = defaults.LEVEL
    accuracy: str | None = None
    backends: tuple[str, ...] | None = None
    static_only: bool = False
    expensive: bool = False
    prune: bool = True
    warmup: int = defaults.WARMUP
    repeats: int = defaults.REPEATS
    workers: int | None = None
    memory_limit_gb: float | None = None
    finalists: int = defaults.FINALISTS
    isolate: bool = True

    @field_validator("trials")
    @classmethod
    def _positive_trials(cls, v: int) -> int:
        if v < 1:
            raise UserError(f"--trials must be at least 1, got {v}", "pass --trials 1 or more (e.g. --trials 200)")
        return v

    @field_validator("level")
    @classmethod
    def _known_level(cls, v: str) -> str:
        if v not in defaults.LEVELS:
            raise UserError(f"unknown level {v!r}", "use --level o1 (fp32 results) or o2 (TF32/fp16/bf16 allowed)")
        return v

    @field_validator("accuracy")
    @classmethod
    def _known_rule(cls, v: str | None) -> str | None:
        return checked_spec(v)

    @property
    def rule(self) -> AccuracyRule:
        """The accuracy rule in effect (``accuracy``, else the level's default)."""
        return accuracy_rule(self.accuracy, self.level)

    @field_validator("study_name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        # The name becomes a folder and an MLflow experiment: keep it to a safe alphabet.
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", v):
            raise UserError(f"study name {v!r} is not usable as a folder name",
                            "use letters, digits, '.', '_' and '-' (at most 100 characters)")
        return v

    @field_validator("timeout_s", "trial_timeout_s")
    @classmethod
    def _positive_timeout(cls, v: float | None) -> float | None:
        if v is not None and v <= 0:
            raise UserError(f"--timeout and --trial-timeout must be positive, got {v}",
                            "pass seconds, e.g. --timeout 1200 --trial-timeout 300")
        return v

    def worker_count(self, device: str) -> int:
        """``workers``, or the default for ``device`` when it was not given.

        Args:
            device: ``"cpu"`` or ``"gpu"``.

        Returns:
            How many worker processes the study runs on this host.
        """
        return self.workers or defaults.default_workers(device)

    @field_validator("workers")
    @classmethod
    def _positive_workers(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise UserError(f"--workers must be at least 1, got {v}", "pass --workers 1 or more")
        return v

    @field_validator("memory_limit_gb")
    @classmethod
    def _positive_memory(cls, v: float | None) -> float | None:
        if v is not None and v <= 0:
            raise UserError(f"--memory-limit must be positive, got {v}", "pass GiB per worker, e.g. --memory-limit 8")
        return v

    @field_validator("finalists")
    @classmethod
    def _some_finalists(cls, v: int) -> int:
        if v < 1:
            raise UserError(f"--finalists must be at least 1, got {v}",
                            "pass --finalists 1 (the study's best as measured) or more (e.g. 3)")
        return v

    @field_validator("warmup", "repeats")
    @classmethod
    def _counts(cls, v: int) -> int:
        if v < 1:
            raise UserError(f"warm-up and repeat counts must be at least 1, got {v}", "pass 1 or more")
        return v

    @property
    def out(self) -> Path:
        """The output folder, absolute."""
        return self.output_dir.expanduser().resolve()

    @property
    def storage_url(self) -> str:
        """The Optuna storage URL in effect."""
        return self.storage or f"sqlite:///{self.out / 'study.db'}"

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking URI in effect."""
        return self.mlflow_uri or f"sqlite:///{self.out / 'mlflow.db'}"

    @property
    def cache_dir(self) -> Path:
        """Where backends keep what later trials and studies reuse (TVM's tuning databases)."""
        return self.out / "cache"

    @property
    def workers_dir(self) -> Path:
        """Where the run's worker logs and workload file go, and the log of what native code prints here."""
        return self.out / "workers" / f"{self.study_name}-{os.getpid()}"

    @property
    def best_dir(self) -> Path:
        """Where the best artifact, report and config go."""
        return self.out / self.study_name / "best"

    def measure_config(self) -> MeasureConfig:
        """The measurement protocol."""
        return MeasureConfig(warmup=self.warmup, repeats=self.repeats)
