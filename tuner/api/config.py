"""``tuner.Config``: what ``tuner.optimize`` may search, the counterpart of Blade's ``blade.Config``.

Every field is validated; an unknown field (a typo) or a bad value stops at once with one line
that names the field, the valid fields or values, and a did-you-mean where one is close.

The defaults (:mod:`tuner.core.defaults`' ``OPTIMIZE_*``) run a short search, so that
``optimize()`` with no config returns within about five minutes on a 2-core CPU for the seed's
workloads (``experiments/optimize_time.py`` measures it).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt, ValidationError, ValidationInfo, field_validator

from tuner.core import defaults
from tuner.core.accuracy import checked_spec
from tuner.core.errors import UserError

#: One line per field: what it means, for the error messages.
FIELD_HELP: dict[str, str] = {
    "enable_static_shape_compilation_opt": "true: search static-shape candidates only (Blade's option)",
    "trials": "most trials the search runs (an integer >= 1)",
    "time_budget_s": "seconds the whole call may take, search, export and check included (> 0), or None",
    "trial_timeout_s": "seconds one candidate may take to build and measure (> 0), or None",
    "backends": "backends to search, e.g. ['eager', 'torchscript'], or None for every available one",
    "output": "'same_kind' (a model of the kind given) or 'any' (the overall fastest, maybe a loaded artifact)",
    "output_dir": "folder for the study, the tracking store and the artifacts",
    "study_name": "Optuna study name; None derives one from the model and the settings",
    "storage": "Optuna storage URL (default sqlite:///<output_dir>/study.db)",
    "mlflow_uri": "MLflow tracking URI (default sqlite:///<output_dir>/mlflow.db)",
    "track": "log every trial to MLflow (true/false)",
    "seed": "seed of the TPE sampler (an integer)",
    "repeats": "timed calls per test sample (an integer >= 1; the median counts)",
    "accuracy": "the accuracy rule, e.g. 'rel-l2:0.02', 'cosine:0.999', 'top1', 'elementwise:1e-4,1e-4' or "
                "'module:function'; None for the level's default",
}


class Config(BaseModel):
    """How ``tuner.optimize`` searches; ``Config()`` is a short search over every available backend.

    Attributes:
        enable_static_shape_compilation_opt: Search static-shape candidates only (one program per
            distinct input shape), as Blade's option of the same name asks for.
        trials: Most trials the search runs (a repeated ``optimize`` call continues the same
            study, so it runs only the trials still missing).
        time_budget_s: Seconds the whole call may take: loading, the search, the finalists, the
            export and its check (the search stops early enough for the rest); None for no limit.
        trial_timeout_s: Seconds one candidate may take to build and measure; past it the
            candidate fails with reason ``timeout``. None for no limit.
        backends: Backends to search; None for every available one.
        output: ``same_kind`` (default): the returned model is of the kind given, the fastest
            candidate that can be one; ``any``: the overall fastest candidate, loaded from its
            artifact when it cannot be of that kind.
        output_dir: Folder for ``study.db``, ``mlflow.db``, ``mlruns/`` and the artifacts.
        study_name: Optuna study (and MLflow experiment) name; None derives one from the model
            and the settings, so the same call continues the same study.
        storage: Optuna storage URL; ``sqlite:///<output_dir>/study.db`` if None.
        mlflow_uri: MLflow tracking URI; ``sqlite:///<output_dir>/mlflow.db`` if None.
        track: Log every trial to MLflow.
        seed: Seed of the TPE sampler.
        repeats: Timed calls per test sample (each sample's median counts); fewer than ``tune``'s
            20 by default, to keep the short search short.
        accuracy: The accuracy rule (``tune --accuracy``, :mod:`tuner.core.accuracy`); None for
            the level's default.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enable_static_shape_compilation_opt: StrictBool = False
    trials: StrictInt = defaults.OPTIMIZE_TRIALS
    time_budget_s: float | None = defaults.OPTIMIZE_TIME_BUDGET_S
    trial_timeout_s: float | None = defaults.OPTIMIZE_TRIAL_TIMEOUT_S
    backends: tuple[str, ...] | None = None
    output: Literal["same_kind", "any"] = "same_kind"
    output_dir: Path = Path(defaults.OUTPUT_DIR)
    study_name: str | None = None
    storage: str | None = None
    mlflow_uri: str | None = None
    track: StrictBool = True
    seed: StrictInt = defaults.SEED
    repeats: StrictInt = defaults.OPTIMIZE_REPEATS
    accuracy: str | None = None

    def __init__(self, **data: Any) -> None:
        """Validate the fields.

        Raises:
            UserError: For an unknown field or a bad value (one line, naming the field).
        """
        fields = list(type(self).model_fields)
        for name in data:
            if name not in fields:
                close = difflib.get_close_matches(name, fields, n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise UserError(f"tuner.Config has no field {name!r}",
                                f"{hint}valid fields: {', '.join(fields)}")
        try:
            super().__init__(**data)
        except ValidationError as e:
            err = e.errors()[0]
            field = str(err["loc"][0]) if err["loc"] else "?"
            got = data.get(field, err.get("input"))
            raise UserError(f"tuner.Config field {field}={got!r} is invalid ({err['msg']})",
                            f"{field}: {FIELD_HELP.get(field, '')}") from None

    @field_validator("accuracy")
    @classmethod
    def _known_rule(cls, v: str | None) -> str | None:
        return checked_spec(v)

    @field_validator("trials", "repeats")
    @classmethod
    def _positive_count(cls, v: int, info: ValidationInfo) -> int:
        if v < 1:
            raise UserError(f"tuner.Config field {info.field_name}={v} is invalid",
                            f"{info.field_name}: {FIELD_HELP[str(info.field_name)]}")
        return v

    @field_validator("time_budget_s", "trial_timeout_s")
    @classmethod
    def _positive_seconds(cls, v: float | None) -> float | None:
        if v is not None and not v > 0:
            raise UserError(f"tuner.Config time limit {v} is invalid",
                            "pass seconds > 0 to time_budget_s / trial_timeout_s, or None for no limit")
        return v

    @field_validator("backends", mode="before")
    @classmethod
    def _known_backends(cls, v: Any) -> Any:
        if v is None:
            return None
        if isinstance(v, str):
            # A comma-separated string, as on the command line.
            v = [b.strip() for b in v.split(",") if b.strip()]
        if not isinstance(v, (list, tuple)) or not v or not all(isinstance(b, str) for b in v):
            raise UserError(f"tuner.Config field backends={v!r} is invalid", f"backends: {FIELD_HELP['backends']}")
        from backends import backend_names

        known = backend_names(include_test_only=True)
        for name in v:
            if name not in known:
                close = difflib.get_close_matches(name, backend_names(), n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise UserError(f"tuner.Config field backends names an unknown backend {name!r}",
                                f"{hint}choose from {', '.join(backend_names())}")
        return tuple(v)

    def summary(self) -> dict[str, Any]:
        """The fields as JSON-ready values (for the report)."""
        return self.model_dump(mode="json")


__all__ = ["Config"]
