"""The contract every backend fulfils.

A backend turns a :class:`~tuner.core.records.Candidate` into something that runs (``compile``), is
timed on the test data (``measure``), writes a deployable artifact (``export``) and reads it back
(``load``). Subclasses register themselves by defining ``name``; a new backend is one new file in
this package. Framework imports happen inside methods, so a missing framework makes its backend
unavailable instead of breaking ``import tuner``.

Failures are data: :meth:`Backend.build` turns any exception of ``compile`` into a
``BuildResult`` with ``error_msg``.
"""

from __future__ import annotations

import abc
import dataclasses
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

from tuner.core.errors import error_line
from tuner.core.records import BuildResult, Built, Candidate, MeasureConfig, Measurement
from tuner.core.workload import Workload
from tuner.runtime.measure import measure
from tuner.runtime.switches import with_switches


class Backend(abc.ABC):
    """Base class of the backends: how a candidate is compiled, timed, exported and loaded.

    Class attributes a subclass sets:
        name: Registered name, used on the CLI (``--backends``) and in the search space.
        frameworks: Workload frameworks it accepts (``"torch"``, ``"tf"``).
        shape_modes: Shape modes it can compile in (see :data:`tuner.core.records.SHAPE_MODES`).
        devices: ``"cpu"`` and/or ``"gpu"``.
        test_only: Kept out of ``backend_names()`` unless asked for (fault-injection backends).
        precisions: Precisions it supports (None: all that the level allows).
        own_precisions: Of those, the ones it computes by its own means rather than in the model
            that :func:`tuner.runtime.models.prepared_model` gives it (TVM's ``amp-fp16``): no
            module of the model can be kept in fp32 there.
        native_kinds: Model kinds (:func:`tuner.core.kinds.model_kind`: ``"torchscript"``,
            ``"nn.Module"``, ``"graphdef"``) that :meth:`native_model` can return a candidate as.
        export_compile_ratio: The export's seconds per second of the candidate's compile
            (``Outcome.compile_s``), for the share of the run's time budget kept for the export
            (:func:`tuner.search.loop.final_reserve`); 1 where the export saves what the build made.
        export_s: Per device, seconds the export takes besides its share of the compile (an
            export that traces the model anew, whatever its build took; where it is known).
        load_s: Per device, seconds a fresh process takes to load the artifact, beyond starting
            Python and importing (where it is known to be long).
    """

    name: ClassVar[str]
    frameworks: ClassVar[frozenset[str]] = frozenset({"torch"})
    shape_modes: ClassVar[tuple[str, ...]] = ("dynamic",)
    devices: ClassVar[frozenset[str]] = frozenset({"cpu", "gpu"})
    test_only: ClassVar[bool] = False
    precisions: ClassVar[frozenset[str] | None] = None
    own_precisions: ClassVar[frozenset[str]] = frozenset()
    native_kinds: ClassVar[frozenset[str]] = frozenset()
    export_compile_ratio: ClassVar[float] = 1.0
    export_s: ClassVar[Mapping[str, float]] = MappingProxyType({})
    load_s: ClassVar[Mapping[str, float]] = MappingProxyType({})

    _registry: ClassVar[dict[str, type[Backend]]] = {}

    def __init__(self, cache_dir: Path | None = None) -> None:
        """Create the backend.

        Args:
            cache_dir: Where the backend keeps what later candidates and studies reuse (the study
                passes ``<output>/cache``); None keeps nothing beyond this instance.
        """
        self.cache_dir = cache_dir

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            Backend._registry[cls.name] = cls

    @classmethod
    def export_estimate_s(cls, candidate: Candidate, compile_s: float, device: str) -> float:
        """Seconds a candidate's export and its artifact's load in a fresh process are expected to add.

        From :attr:`export_compile_ratio`, :attr:`export_s` and :attr:`load_s`; a backend whose
        artifact format depends on the candidate overrides it.

        Args:
            candidate: The candidate.
            compile_s: Its compile seconds in its trial.
            device: ``cpu`` or ``gpu``.
        """
        return cls.export_compile_ratio * compile_s + cls.export_s.get(device, 0.0) + cls.load_s.get(device, 0.0)

    @classmethod
    def is_available(cls, device: str) -> bool:
        """Whether this backend can run on ``device`` here (framework installed, device supported).

        Args:
            device: ``"cpu"`` or ``"gpu"``.

        Returns:
            True when the backend can build candidates for that device. The default: the device
            is one of ``devices``, and for ``gpu`` torch sees a working CUDA GPU.
        """
        from tuner.core.devices import cuda_available

        return device in cls.devices and (device != "gpu" or cuda_available())

    @classmethod
    def refusal(cls, workload: Workload) -> str | None:
        """Why this backend cannot take the workload's model at all, or None when it can.

        Asked once, when a study is created: a backend that refuses is left out of the space,
        instead of failing every trial it would get. The default: it takes every model of its
        frameworks.
        """
        return None

    @classmethod
    def refused_options(cls, workload: Workload) -> dict[str, tuple[Any, ...]]:
        """Option values this backend cannot build for the workload's model (left out of a new study's space).

        Returns:
            ``{"<backend>/<option>": (value, ...)}``; the default: none.
        """
        return {}

    @abc.abstractmethod
    def compile(self, workload: Workload, candidate: Candidate) -> Built:
        """Compile the workload's model as the candidate says.

        Args:
            workload: The model, test data and device.
            candidate: Backend, shape mode, precision and options.

        Returns:
            The runnable result (``build_s`` may be left 0: :meth:`build` times the call).

        Raises:
            Exception: Anything; :meth:`build` records it as the candidate's build failure.
        """

    def build(self, workload: Workload, candidate: Candidate) -> BuildResult:
        """Compile, timing it, and turn any failure into data.

        The built model is wrapped in the candidate's process-wide torch switches
        (:mod:`tuner.runtime.switches`: options ``torch/...`` and TF32 for a ``tf32`` candidate), which no
        backend sets itself.

        Args:
            workload: The model, test data and device.
            candidate: What to build.

        Returns:
            ``BuildResult(built=...)`` or ``BuildResult(error_msg=...)``.
        """
        t0 = time.perf_counter()
        try:
            built = self.compile(workload, candidate)
            fn = with_switches(built.fn, candidate.options, candidate.precision)
        except Exception as e:  # noqa: BLE001 - a candidate that fails to build is data
            return BuildResult(error_msg=error_line(e))
        build_s = time.perf_counter() - t0
        return BuildResult(built=dataclasses.replace(built, fn=fn, build_s=build_s))

    def measure(self, built: Built, workload: Workload, config: MeasureConfig, *, quick: bool = False) -> Measurement:
        """Time the built candidate over the test data (:func:`tuner.runtime.measure.measure`'s protocol).

        Args:
            built: What :meth:`build` returned.
            workload: Test data and device.
            config: Warm-up and repeats.
            quick: The short first measurement that the pruner judges.

        Returns:
            The measurement, with outputs for the correctness check.
        """
        return measure(built.fn, workload, config, quick=quick)

    @abc.abstractmethod
    def export(self, built: Built, workload: Workload, candidate: Candidate, directory: Path) -> dict[str, Any]:
        """Write the deployable artifact into ``directory`` (an empty folder, made atomic by the caller).

        Args:
            built: The built candidate.
            workload: The model and its test data (some formats need example inputs).
            candidate: The candidate, for its options.
            directory: Where to write.

        Returns:
            What :meth:`load` needs to know beyond the files (stored in ``artifact.json``).
        """

    @classmethod
    @abc.abstractmethod
    def load(cls, directory: Path, meta: dict[str, Any], device: str) -> Callable[..., Any]:
        """Load an artifact written by :meth:`export`.

        Args:
            directory: The artifact folder.
            meta: What :meth:`export` returned.
            device: ``"cpu"`` or ``"gpu"``.

        Returns:
            A callable with the original model's inputs and outputs.
        """

    def native_model(self, built: Built, workload: Workload, candidate: Candidate) -> Any | None:
        """The built candidate as a model of the framework's own kind, for ``tuner.optimize``.

        ``optimize`` returns the user a model of the kind they gave (a ScriptModule for a
        ScriptModule, a GraphDef for a GraphDef), so that their own save call works on it. Only a
        model that, saved and loaded with the framework's own calls, runs as this candidate was
        measured counts: a candidate that needs runtime settings the model cannot carry (a JIT
        fuser switch, say) is not one.

        Args:
            built: What :meth:`build` returned for ``candidate``.
            workload: The workload it was built for.
            candidate: The candidate.

        Returns:
            The model (its kind one of :attr:`native_kinds`), or None when this candidate cannot
            be one. The default: None.
        """
        return None
