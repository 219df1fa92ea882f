"""Typed, immutable records passed between the search space, the backends and the study.

Failures are data: a :class:`BuildResult` or :class:`Measurement` holds either its result or an
``error_msg``, never both (checked in ``__post_init__``), in the manner of TVM MetaSchedule's
``BuilderResult`` / ``RunnerResult``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from tuner.core import defaults

#: How a candidate treats input shapes. ``static``: one compiled program per distinct input
#: shape; ``dynamic``: symbolic shapes, one program for all; ``mark_dynamic``: symbolic only on
#: the dims that vary in the test data (torch ``mark_dynamic``).
SHAPE_MODES: tuple[str, ...] = ("static", "dynamic", "mark_dynamic")

#: Numeric precision a candidate computes in. ``fp32`` keeps float32 semantics with TF32 off;
#: the others are only searched at level o2: ``fp16``/``bf16`` cast the whole model,
#: ``amp-fp16``/``amp-bf16`` run it under ``torch.autocast`` (or, for TVM, its own mixed-precision pass).
PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "fp16", "bf16", "amp-fp16", "amp-bf16")


def _exactly_one(record: object, result: str, failure: str) -> None:
    """Check that a record holds its result or its failure, never both and never neither."""
    if (getattr(record, result) is None) == (getattr(record, failure) is None):
        raise ValueError(f"{type(record).__name__} needs exactly one of {result} and {failure}")


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One way to compile the model: what a trial's parameters decode to.

    Attributes:
        backend: Registered backend name, e.g. ``"inductor"``.
        shape_mode: One of :data:`SHAPE_MODES`.
        precision: One of :data:`PRECISIONS`.
        options: Flat backend options keyed ``"<backend>/<option>"``, e.g.
            ``{"inductor/max_fusion_size": 64}``.
    """

    backend: str
    shape_mode: str = "dynamic"
    precision: str = "fp32"
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.shape_mode not in SHAPE_MODES:
            raise ValueError(f"shape_mode {self.shape_mode!r} is not one of {SHAPE_MODES}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r} is not one of {PRECISIONS}")
        # Freeze the options so that a Candidate is hashable and safe to share.
        object.__setattr__(self, "options", dict(sorted(self.options.items())))

    def option(self, name: str, default: Any = None) -> Any:
        """A backend option by its short name (``"max_fusion_size"`` for ``inductor``)."""
        return self.options.get(f"{self.backend}/{name}", default)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the content of ``best_config.json``)."""
        return {
            "backend": self.backend,
            "shape_mode": self.shape_mode,
            "precision": self.precision,
            "options": dict(self.options),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Candidate:
        """The inverse of :meth:`to_dict`."""
        return cls(
            backend=data["backend"],
            shape_mode=data.get("shape_mode", "dynamic"),
            precision=data.get("precision", "fp32"),
            options=dict(data.get("options", {})),
        )

    def key(self) -> str:
        """A stable digest: identical candidates have identical keys (the result cache's key)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def describe(self) -> str:
        """A short human-readable summary for progress lines and logs."""
        opts = ",".join(f"{k.split('/', 1)[-1]}={v}" for k, v in self.options.items())
        return f"{self.backend}[{self.shape_mode},{self.precision}{',' + opts if opts else ''}]"


@dataclasses.dataclass(frozen=True)
class Built:
    """A compiled candidate, ready to run.

    Attributes:
        fn: Callable with the model's signature (positional input tensors) that returns the
            model's outputs.
        build_s: Seconds the build took (compile time that happens before the first call).
        state: Backend-private objects kept alive with the callable (compiled modules, ...).
        tuning_s: Of ``build_s``, seconds spent tuning schedules (TVM's MetaSchedule), logged as
            a metric of its own; None for a backend that does not tune.
    """

    fn: Callable[..., Any]
    build_s: float
    state: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    tuning_s: float | None = None


@dataclasses.dataclass(frozen=True)
class BuildResult:
    """The outcome of ``Backend.build``: exactly one of ``built`` and ``error_msg`` is set."""

    built: Built | None = None
    error_msg: str | None = None

    def __post_init__(self) -> None:
        _exactly_one(self, "built", "error_msg")

    @property
    def ok(self) -> bool:
        """Whether the build succeeded."""
        return self.built is not None


@dataclasses.dataclass(frozen=True)
class Measurement:
    """Latencies of a candidate on the test data: exactly one of ``latencies_s`` and ``error_msg``.

    Attributes:
        latencies_s: Median latency in seconds per test sample, in test-data order.
        warmup_s: Seconds of the first call per distinct input shape (run-time compiles and
            recompiles land here; it is part of compile time, not of latency).
        outputs: Flattened outputs per test sample (CPU tensors), for the correctness check.
        repeats: Timed repeats per sample behind each median.
        device: Where it ran, e.g. ``"cpu"`` or ``"NVIDIA H100 80GB HBM3"``.
        error_msg: Why it could not be measured.
    """

    latencies_s: tuple[float, ...] | None = None
    warmup_s: float = 0.0
    outputs: tuple[tuple[Any, ...], ...] | None = None
    repeats: int = 0
    device: str = ""
    error_msg: str | None = None

    def __post_init__(self) -> None:
        _exactly_one(self, "latencies_s", "error_msg")

    @property
    def ok(self) -> bool:
        """Whether every sample was measured."""
        return self.latencies_s is not None

    @property
    def total_s(self) -> float:
        """Time over the whole test data (the objective): the sum of per-sample medians."""
        return math.fsum(self.latencies_s or ())


@dataclasses.dataclass(frozen=True)
class Correctness:
    """How far a candidate's outputs are from the reference.

    Attributes:
        ok: Whether the outputs pass the study's accuracy rule.
        max_abs_err: Largest absolute difference over all outputs and samples.
        max_rel_err: Largest relative difference (``|out - ref| / max(|ref|, tiny)``).
        detail: Which output of which sample failed first, when ``ok`` is false.
        score: The rule's score (:mod:`tuner.core.accuracy`), None where it could not be computed.
        rule: The rule, as ``--accuracy`` spells it.
    """

    ok: bool
    max_abs_err: float
    max_rel_err: float
    detail: str = ""
    score: float | None = None
    rule: str = ""


#: The failure kind of a candidate that the run stopped (the time budget's end, Ctrl-C), not its
#: own failing: its trial takes no slot of the study's trials, is no failure in the counts the user
#: sees, and is not the candidate's cached answer.
INTERRUPTED = "interrupted"


@dataclasses.dataclass(frozen=True)
class Outcome:
    """Everything one evaluation of a candidate produced (what the cache stores).

    Attributes:
        candidate: What was evaluated.
        value_s: Objective (seconds over the whole test data) when it succeeded.
        failure_kind: Why it failed, when it did: ``build``, ``run``, ``wrong``, ``timeout`` or
            ``interrupted``, or a death (or poisoning) of the worker process that ran it
            (:mod:`tuner.runner.worker`): ``segfault``, ``out of memory``, ``cuda error``,
            ``killed`` (a SIGKILL from outside that was not an out-of-memory kill), ``crashed``.
        failure_reason: One line saying why.
        compile_s: Build seconds plus the first call per distinct shape of the measurement the
            evaluation ended on: the full one, or the pruner's short one for a candidate pruned
            or wrong there. Where the short one ran before the full one, its first calls are in
            ``first_calls_s`` and the full one's find the shapes compiled.
        tuning_s: Of ``compile_s``, seconds spent tuning schedules (0 when all was reused; None
            for a backend that does not tune).
        median_ms: Median per-sample latency in ms.
        p90_ms: 90th percentile per-sample latency in ms.
        max_abs_err: Largest absolute error against the reference.
        max_rel_err: Largest relative error against the reference.
        accuracy_score: The score of the study's accuracy rule (:mod:`tuner.core.accuracy`).
        pruned: Whether the first short measurement was slow enough to stop the trial.
        first_calls_s: Where the pruner's short measurement ran before the full one, seconds of
            its first call per distinct shape (else None: ``compile_s`` holds the first calls).
            A candidate that compiles a shape at its first call (a recompile for a new shape, a
            CUDA graph capture) compiles there, so its whole compile is ``compile_s`` plus this.
            The time estimates that read ``compile_s`` (:func:`tuner.search.loop.final_reserve`,
            the backends' ``export_estimate_s``) were fitted to ``compile_s`` alone, on GPU runs
            that did not log this, and read it alone until a GPU run's figures refit them.
        eval_s: Wall seconds of the whole evaluation where it ran (build, measurements, check; None
            where none ran, as for a killed worker). What a trial takes beyond it is a worker's
            start, the wait for the device's timing lock and the study's storage.
    """

    candidate: Candidate
    value_s: float | None = None
    failure_kind: str | None = None
    failure_reason: str | None = None
    compile_s: float = 0.0
    tuning_s: float | None = None
    median_ms: float | None = None
    p90_ms: float | None = None
    max_abs_err: float | None = None
    max_rel_err: float | None = None
    accuracy_score: float | None = None
    pruned: bool = False
    first_calls_s: float | None = None
    eval_s: float | None = None

    def __post_init__(self) -> None:
        _exactly_one(self, "value_s", "failure_kind")

    @property
    def ok(self) -> bool:
        """Whether the candidate built, ran and was correct."""
        return self.value_s is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what a trial keeps in its user attributes)."""
        return {**dataclasses.asdict(self), "candidate": self.candidate.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Outcome:
        """The inverse of :meth:`to_dict`."""
        return cls(**{**data, "candidate": Candidate.from_dict(data["candidate"])})


@dataclasses.dataclass(frozen=True)
class MeasureConfig:
    """How hard to measure (see :mod:`tuner.core.defaults` for each default and why).

    Attributes:
        warmup: Untimed calls per sample before timing (after the first call per shape).
        repeats: Timed calls per sample; the sample's latency is their median.
        quick_repeats: Timed calls per sample in the short first measurement that the pruner
            judges a candidate on.
        gpu_warmup_s: On the GPU, seconds of untimed calls over the test data before timing.
    """

    warmup: int = defaults.WARMUP
    repeats: int = defaults.REPEATS
    quick_repeats: int = defaults.QUICK_REPEATS
    gpu_warmup_s: float = defaults.GPU_WARMUP_S
