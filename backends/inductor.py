"""The ``inductor`` backend: ``torch.compile`` with Inductor, its artifact an AOTInductor package or a warm rebuild.

Options (``inductor/<option>``):
    mode: a ``torch.compile`` mode: ``default``, ``reduce-overhead``,
        ``max-autotune-no-cudagraphs`` or ``max-autotune``.
    every other option: a ``torch._inductor.config`` key under its own name
        (``max_fusion_size``, ``epilogue_fusion``, ``aggressive_fusion``, ``pattern_matcher``,
        ``coordinate_descent_tuning``, ...); an unknown key or a value of the wrong type fails
        the build.

The mode's Inductor settings (``torch._inductor.list_mode_options``) and the explicit keys are
merged, the explicit keys winning, and handed to ``torch.compile(options=...)``. Inductor applies
them as a config patch around every compile of this function, the recompiles that the first call
of a new input shape triggers inside ``measure()`` included, at no cost per call (a
``torch._inductor.config.patch`` around each call costs about 80 us, more than a small model's
whole run on the CPU).

Shape modes: ``static`` compiles once per distinct input shape (``dynamic=False``), ``dynamic``
once with symbolic shapes (``dynamic=True``), ``mark_dynamic`` marks only the dims that vary in
the test data symbolic (``torch._dynamo.maybe_mark_dynamic``, ``dynamic=None``). In every mode a dim
of size 1 is specialised, so a batch-1 sample gets a graph of its own.

Artifacts: on the GPU every candidate ships in :mod:`backends._compiled_artifact`'s format, which
``torch.compile`` rebuilds warm from the shipped caches (:data:`COMPILED_FORMAT_DEVICES` says why);
on the CPU, AOTInductor packages.

Compile times depend on Inductor's on-disk caches (FX graph, AOTAutograd and C++ code caches under
``TORCHINDUCTOR_CACHE_DIR``): a candidate whose graphs were compiled before, in this process or an
earlier one, builds in a fraction of its cold time.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from backends._compiled_artifact import COMPILED_FORMAT, load_compiled, starting_config, write_compiled
from backends._export_cover import export_covering, load_covering, write_covering
from backends._inductor_passes import legacy_empty_cat_pass
from backends._torch_export import (
    cxx_compiler_available,
    example_inputs,
    export_program,
    pick_by_shape,
    shape_key_str,
)
from backends.base import Backend
from backends.eager import EagerBackend
from tuner.core.records import Built, Candidate
from tuner.core.workload import Workload
from tuner.runtime.cuda_graphs import COMPILER_GRAPHED_MODES, GraphedCall
from tuner.runtime.models import prepared_model, untraceable_reason
from tuner.runtime.precision import tf32

#: ``torch.compile`` modes.
MODES: tuple[str, ...] = ("default", "reduce-overhead", "max-autotune-no-cudagraphs", "max-autotune")
#: The modes in which ``torch.compile`` replays the compiled code from CUDA graphs on the GPU
#: (whose outputs the compiled format's model copies out of the graphs' buffers).
GRAPHED_MODES: frozenset[str] = COMPILER_GRAPHED_MODES
#: Devices where every candidate ships in :mod:`backends._compiled_artifact`'s format rather than
#: as AOTInductor packages. On the GPU, a package compiles the model a second time, ahead of time
#: and without CUDA graphs, and runs other kernels than the candidate did:
#:
#: * graphed winners' packages ran at 4.03 ms where the candidate ran at 3.15 ms (ViT-B/16, o2) and
#:   at 2.26 against 1.50 ms (ResNet-50), ``experiments/results/2026-12-06-h100-levels.md``;
#: * a graph-less winner's package (BERT-base, o1, on an H100) ran at 21.7 ms reloaded where the
#:   candidate ran at 19.7 ms, and its export and check took 108 s where the compiled format's took
#:   47-60 s for the same model at o2 and for GPT-2; its estimate (5 x ``compile_s`` + 35 s) kept
#:   150 of the run's 180 s for the phases after the search, which cut off the study's graphed
#:   Inductor trial (``experiments/results/2026-12-07-h100-levels-run11.md``).
#:
#: The compiled format rebuilds the candidate's own ``torch.compile`` call: its artifacts ran at
#: 95-101 % of the candidate's speed on 9 of 10 studies of that run.
COMPILED_FORMAT_DEVICES: frozenset[str] = frozenset({"gpu"})
#: Inductor settings that only silence its autotuning tables on stderr (not search dimensions):
#: the max-autotune modes otherwise print every GEMM choice they benchmark.
QUIET: dict[str, Any] = {"autotune_num_choices_displayed": 0, "max_autotune_report_choices_stats": False}


def quiet_configs() -> dict[str, Any]:
    """The :data:`QUIET` keys this torch knows (older releases lack some)."""
    import torch._inductor.config as inductor_config

    known = inductor_config.get_config_copy()
    return {k: v for k, v in QUIET.items() if k in known}


#: The compiled format's export and load seconds per second of the trial's compile: the export
#: compiles the reloaded programs (Inductor's caches hit for what the trial compiled, Dynamo traces
#: anew) and the fresh process compiles them again from the shipped caches. Measured as (export +
#: check - 31 s of eager's export, load and the check's start) / compile_s: 1.8 (ViT-B/16) and 1.3
#: (ResNet-50) on 4 cores of an H100 (experiments/results/2026-12-06-h100-levels-run5.md); 2.9
#: (GPT-2, fp32), 2.5 (BERT-base, fp32) and 2.5 (GPT-2, fp16 reduce-overhead) on 3 cores of an
#: H200 (experiments/results/2026-12-07-h200-levels-run10.md), where 1.5 let GPT-2's run end at
#: 1.23 times its --timeout. The ratio is above 1 because ``compile_s`` leaves out the first calls
#: of the pruner's short measurement, where the later shapes compile (GPT-2 small on the CPU box,
#: ``experiments/trial_phases.py``: build 12.7 s, those first calls 3.8 s, the full measurement's 0.0 s).
COMPILED_COMPILE_RATIO = 2.5

#: ``torch.compile(dynamic=...)`` per shape mode.
DYNAMIC: dict[str, bool | None] = {"static": False, "dynamic": True, "mark_dynamic": None}


def split_options(candidate: Candidate) -> tuple[str, dict[str, Any]]:
    """Split the candidate's options into its mode and its Inductor config keys.

    Args:
        candidate: An inductor candidate.

    Returns:
        ``(mode, {config_key: value})``.

    Raises:
        ValueError: For an unknown mode, or a key that is not a ``torch._inductor.config`` key.
    """
    import torch._inductor.config as inductor_config

    mode = str(candidate.option("mode", "default"))
    if mode not in MODES:
        raise ValueError(f"inductor/mode {mode!r} is not one of {MODES}")
    configs = {k.split("/", 1)[1]: v for k, v in candidate.options.items()
               if k.startswith("inductor/") and k != "inductor/mode"}
    known = inductor_config.get_config_copy()
    unknown = sorted(k for k in configs if k not in known)
    if unknown:
        raise ValueError(f"{unknown} are not torch._inductor.config keys")
    return mode, configs


def compile_options(candidate: Candidate) -> dict[str, Any]:
    """Merge what ``torch.compile(options=...)`` gets: the mode's settings, then the explicit keys.

    Args:
        candidate: An inductor candidate.

    Returns:
        Inductor config keys and values.

    Raises:
        ValueError: See :func:`split_options`.
    """
    from torch._inductor import list_mode_options

    mode, configs = split_options(candidate)
    return {**quiet_configs(), **list_mode_options(mode, DYNAMIC[candidate.shape_mode]), **configs}


def own_graphs(candidate: Candidate) -> bool:
    """Whether the candidate's mode replays CUDA graphs of its own (:data:`GRAPHED_MODES`, on the GPU)."""
    return split_options(candidate)[0] in GRAPHED_MODES


def aoti_configs(candidate: Candidate) -> dict[str, Any]:
    """Collect the ``inductor_configs`` of an AOTInductor package.

    The explicit keys, plus ``max_autotune`` for the max-autotune modes (CUDA graphs have no AOT
    counterpart).

    Args:
        candidate: An inductor candidate.

    Returns:
        Inductor config keys and values.

    Raises:
        ValueError: See :func:`split_options`.
    """
    mode, configs = split_options(candidate)
    if mode.startswith("max-autotune"):
        return {**quiet_configs(), "max_autotune": True, **configs}
    return {**quiet_configs(), **configs}


class MarkDynamicCall:
    """Calls a compiled function, marking the varying dims of the inputs of each new input shape.

    The marks go on fresh aliases (``detach()``), never on the caller's tensors: a mark is an
    attribute of the tensor object and would make a later ``dynamic=False`` candidate on the same
    test data compile symbolically. Once a shape has been compiled the calls pass straight through
    (the guards of a symbolic graph do not ask for the mark). Dims of size 0 or 1 are left
    unmarked: Dynamo specialises them anyway and ``mark_dynamic`` would then raise.

    Args:
        fn: The compiled function.
        dims: Per input, the dims to mark (``Workload.varying_dims``).
    """

    def __init__(self, fn: Callable[..., Any], dims: tuple[tuple[int, ...], ...]) -> None:
        self.fn = fn
        self.dims = dims
        self.seen: set[tuple[tuple[int, ...] | None, ...]] = set()

    def __call__(self, *args: Any) -> Any:
        """Run the compiled function, marking first.

        Args:
            *args: The model's inputs.

        Returns:
            The outputs.
        """
        key = tuple(tuple(a.shape) if isinstance(a, torch.Tensor) else None for a in args)
        if key in self.seen:
            return self.fn(*args)
        # maybe_mark_dynamic, not mark_dynamic: the strict mark raises ConstraintViolationError
        # when the model ties a marked dim to another (seen on the demo decoder on an H100, where
        # attention_sum + decoder_attention equates their batch dims), while the hint makes the
        # dim symbolic with whatever relations the model implies.
        from torch._dynamo import maybe_mark_dynamic

        marked = []
        for i, a in enumerate(args):
            if isinstance(a, torch.Tensor) and i < len(self.dims):
                alias = a.detach()
                for d in self.dims[i]:
                    if alias.shape[d] > 1:
                        maybe_mark_dynamic(alias, d)
                a = alias
            marked.append(a)
        out = self.fn(*marked)
        self.seen.add(key)
        return out


def compiled(model: Any, shape_mode: str, options: dict[str, Any], shapes: int,
             varying_dims: tuple[tuple[int, ...], ...]) -> Callable[..., Any]:
    """``torch.compile`` a model in a shape mode with Inductor options (compiling on the first call of each shape).

    Args:
        model: The model (or a loaded program's module).
        shape_mode: ``static``, ``dynamic`` or ``mark_dynamic`` (:data:`DYNAMIC`).
        options: Inductor settings (:func:`compile_options`).
        shapes: Distinct input shapes it will be called with (the recompile limit must allow them).
        varying_dims: Per input, the dims that vary (``Workload.varying_dims``), for ``mark_dynamic``.

    Returns:
        The compiled function, behind a :class:`MarkDynamicCall` in ``mark_dynamic`` mode.
    """
    import torch._dynamo as dynamo

    # Static mode compiles once per distinct test shape; the default limit (8) would silently
    # fall back to eager beyond that. mark_dynamic may add a specialised batch-1 graph.
    limit = max(int(dynamo.config.recompile_limit), shapes + 2)
    if dynamo.config.accumulated_recompile_limit < limit:
        dynamo.config.accumulated_recompile_limit = limit
    # torch.compile's typed overloads predate its recompile_limit argument (a per-function limit
    # that leaves the process-wide one alone; torch 2.11 lacks it); where it is missing the
    # process-wide limit is raised instead.
    extra: dict[str, Any] = {}
    if "recompile_limit" in inspect.signature(torch.compile).parameters:
        extra["recompile_limit"] = limit
    elif dynamo.config.recompile_limit < limit:
        dynamo.config.recompile_limit = limit
    # The pass goes in here, not in compile_options: a compiled-format artifact's meta keeps those
    # as JSON, and its load compiles through here too, keyed to the same caches.
    options = {"post_grad_custom_pre_pass": legacy_empty_cat_pass(), **options}
    torch_compile: Any = torch.compile
    fn: Callable[..., Any] = torch_compile(model, dynamic=DYNAMIC[shape_mode], options=options, **extra)
    return MarkDynamicCall(fn, varying_dims) if shape_mode == "mark_dynamic" else fn


def _compile_with(settings: dict[str, Any]) -> Callable[[Any], Callable[..., Any]]:
    """What compiles a loaded program as a compiled-format artifact's settings say (:meth:`InductorBackend.export`)."""
    dims = tuple(tuple(int(d) for d in dims) for dims in settings["varying_dims"])
    return lambda module: compiled(module, str(settings["shape_mode"]), dict(settings["options"]),
                                   int(settings["shapes"]), dims)


def built_model(built: Built, workload: Workload, candidate: Candidate) -> Any:
    """The model the build compiled (in the candidate's precision), or the same prepared again."""
    model = built.state.get("model")
    return prepared_model(workload, candidate, trace=True) if model is None else model


class ShapeDispatch:
    """Runs the AOTInductor package compiled for the input shapes of each call (static mode).

    Args:
        runners: Loaded package per shape key (:func:`~backends._torch_export.shape_key_str`).
    """

    def __init__(self, runners: dict[str, Callable[..., Any]]) -> None:
        self.runners = runners

    def __call__(self, *args: Any) -> Any:
        """Run the package of these shapes.

        Args:
            *args: The model's inputs.

        Returns:
            The package's outputs.

        Raises:
            ValueError: When no package was compiled for these input shapes.
        """
        runner = pick_by_shape(self.runners, args, "artifact has no package",
                               "export in a dynamic shape mode for other shapes")
        return runner(*args)


def cxx_runtime_in_global_scope() -> None:
    """Put the C++ standard library in the process's global symbol scope, before a package is opened.

    AOTInductor's compiled wrapper (the package's ``.so``) calls the C++ runtime without linking
    it: ``ldd`` of a CUDA package's ``.so`` made by torch 2.11 lists ``libcuda``, ``libgcc_s``
    and torch's libraries, and no ``libstdc++``. It relies on the process having the library in
    its global scope. The process that compiled the package has it there; a fresh Python process
    that only imported torch has not (Python opens torch's libraries, which do link it,
    ``RTLD_LOCAL``), and opening the package there died of SIGSEGV on the GPU machine. Any library
    loaded ``RTLD_GLOBAL`` that links ``libstdc++`` put it there first, which is why importing
    ``tvm`` or ``onnxruntime`` beforehand hid the crash (``experiments/aoti_load_probe.py`` and
    ``experiments/aoti_load_libs.py`` show both).
    """
    import ctypes
    import ctypes.util
    import os

    ctypes.CDLL(ctypes.util.find_library("stdc++") or "libstdc++.so.6", mode=os.RTLD_GLOBAL)



class InductorBackend(Backend):
    """``torch.compile`` with Inductor: static or dynamic shapes, mode and fusion options."""

    name = "inductor"
    # mark_dynamic first: it is torch.compile's own default (dynamic=None: automatic dynamic
    # shapes), and a study starts from each backend's first choices.
    shape_modes = ("mark_dynamic", "static", "dynamic")
    # AOTInductor (the CPU's format) compiles the model again, ahead of time, with its C++ wrapper:
    # 16.1 s against 3.4 s in the trial on the 2-core CPU box (`tune --model
    # experiments.workloads.hf_bert:make_tiny --device cpu --backends eager,inductor --trials 4
    # --finalists 2`, the report's timing).
    export_compile_ratio = 5.0

    @classmethod
    def export_estimate_s(cls, candidate: Candidate, compile_s: float, device: str) -> float:
        """The AOTInductor estimate, or where candidates ship in the compiled format that format's.

        That format exports like the eager backend, compiles once more here (warm from the
        trial's caches) and once more, warm, in the fresh process: :data:`COMPILED_COMPILE_RATIO`.
        """
        if device not in COMPILED_FORMAT_DEVICES:
            return super().export_estimate_s(candidate, compile_s, device)
        return (COMPILED_COMPILE_RATIO * compile_s + EagerBackend.export_s.get(device, 0.0)
                + EagerBackend.load_s.get(device, 0.0))

    @classmethod
    def is_available(cls, device: str) -> bool:
        """Whether Inductor can generate code for ``device`` here.

        Args:
            device: ``"cpu"`` or ``"gpu"``.

        Returns:
            On the CPU: a C++ compiler is found. On a GPU: CUDA works and Triton is installed.
        """
        import importlib.util

        if not super().is_available(device):
            return False
        if device == "gpu":
            return importlib.util.find_spec("triton") is not None
        return cxx_compiler_available()

    @classmethod
    def refusal(cls, workload: Workload) -> str | None:
        """A TorchScript model that torch's converter cannot turn back into Python code (see ``prepared_model``)."""
        return untraceable_reason(workload)

    def compile(self, workload: Workload, candidate: Candidate) -> Built:
        """``torch.compile`` the model and compile it for the example sample.

        The first call happens here, so that a model Inductor cannot compile fails the build
        (not the measurement); the other shapes compile on their first call in ``measure()``.

        Args:
            workload: The model, test data and device.
            candidate: Shape mode, precision, mode and Inductor config keys.

        Returns:
            The compiled callable.

        Raises:
            ValueError: For an unknown mode or config key.
            Exception: Whatever Dynamo or Inductor raise.
        """
        import torch._dynamo as dynamo

        starting_config()  # before this process's first compile changes any setting
        # A fresh candidate must not reuse (or count against the recompile limit of) the previous
        # candidate's graphs.
        dynamo.reset()
        # Fail instead of running a graph that did not compile eagerly, which would be timed as if
        # it were this candidate.
        dynamo.config.suppress_errors = False
        dynamo.config.fail_on_recompile_limit_hit = True
        options = compile_options(candidate)
        model = prepared_model(workload, candidate, trace=True)
        fn = compiled(model, candidate.shape_mode, options, len(workload.shape_counts()), workload.varying_dims())
        # Compile now, under no_grad as measure() calls it (grad mode is guarded on).
        with torch.no_grad():
            fn(*example_inputs(workload))
        return Built(fn=fn, build_s=0.0, state={"model": model, "options": options})

    def export(self, built: Built, workload: Workload, candidate: Candidate, directory: Path) -> dict[str, Any]:
        """Write AOTInductor packages, or on the GPU a warm rebuild.

        AOTInductor packages: one per distinct test shape (static) or one with symbolic dims. On a
        device of :data:`COMPILED_FORMAT_DEVICES` the candidate is written in
        :mod:`backends._compiled_artifact`'s format instead, with its compile settings.

        Args:
            built: The built candidate (its model in the candidate's precision).
            workload: The test data: its distinct shapes, example sample and varying dims.
            candidate: Shape mode and Inductor options (compiled into the packages).
            directory: Where to write.

        Returns:
            Static: ``{"format": "aoti", "shape_mode": "static", "packages": {shape_key: file}}``;
            otherwise ``{"format": "aoti", "shape_mode": ..., "file": "model.pt2"}``, with
            ``programs`` where several packages take the test data's shapes
            (:mod:`backends._export_cover`); on the GPU
            ``{"format": "torch.compile", "file", "cache", "shape_mode", "options", "shapes",
            "varying_dims", ...}``.

        Raises:
            Exception: Whatever ``torch.export`` or AOTInductor raise.
        """
        starting_config()  # before an AOTInductor export changes any setting
        # AOTInductor bakes TF32 into the GEMM kernels it generates: compile under the
        # candidate's own (the process's is off, tuner.runtime.switches).
        with tf32(candidate.precision == "tf32"):
            if workload.device in COMPILED_FORMAT_DEVICES:
                return self._export_compiled(built, workload, candidate, directory)
            return self._export_packages(built, workload, candidate, directory)

    def _export_compiled(self, built: Built, workload: Workload, candidate: Candidate,
                         directory: Path) -> dict[str, Any]:
        """:meth:`export` in :mod:`backends._compiled_artifact`'s format (the GPU's)."""
        model = built_model(built, workload, candidate)
        settings = {"shape_mode": candidate.shape_mode, "options": compile_options(candidate),
                    "shapes": len(workload.shape_counts()), "varying_dims": [list(d) for d in workload.varying_dims()]}
        meta = write_compiled(model, workload, directory, _compile_with(settings), graphed=own_graphs(candidate))
        return {**meta, **settings}

    def _export_packages(self, built: Built, workload: Workload, candidate: Candidate,
                         directory: Path) -> dict[str, Any]:
        """:meth:`export`, under the candidate's TF32 setting."""
        from torch._inductor import aoti_compile_and_package

        model = built_model(built, workload, candidate)
        configs = aoti_configs(candidate)
        meta: dict[str, Any] = {"format": "aoti", "shape_mode": candidate.shape_mode, "inductor_configs": configs}
        if candidate.shape_mode == "static":
            packages: dict[str, str] = {}
            for key in workload.shape_counts():
                sample = next(s for i, s in enumerate(workload.samples) if workload.shape_key(i) == key)
                program = export_program(model, sample)
                path = directory / f"model_{len(packages)}.pt2"
                aoti_compile_and_package(program, package_path=str(path), inductor_configs=configs)
                packages[shape_key_str(key)] = path.name
            meta["packages"] = packages
            return meta
        def package(program: torch.export.ExportedProgram, path: Path) -> None:
            aoti_compile_and_package(program, package_path=str(path), inductor_configs=configs)

        return {**meta, **write_covering(export_covering(model, workload), directory, package)}

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any], device: str) -> Callable[..., Any]:
        """Load AOTInductor package(s) (``torch._inductor.aoti_load_package``) or a compiled-format artifact.

        Args:
            directory: The artifact folder.
            meta: What :meth:`export` returned.
            device: ``"cpu"`` or ``"gpu"`` (the packages run where they were compiled for).

        Returns:
            The package, or a dispatcher over the per-shape packages (static mode) or the
            packages of several shape ranges, which raises ``ValueError`` for shapes none takes
            (replayed from :class:`~tuner.runtime.cuda_graphs.GraphedCall` where its meta says
            ``cuda_graph``: graphed packages written before the compiled format); or the
            compiled programs (:func:`backends._compiled_artifact.load_compiled`).

        Raises:
            ValueError: For an unknown artifact format.
        """
        from torch._inductor import aoti_load_package

        if meta.get("format") == COMPILED_FORMAT:
            return load_compiled(directory, meta, device, _compile_with(meta))
        cxx_runtime_in_global_scope()
        if meta.get("format") != "aoti":
            raise ValueError(f"inductor artifact format {meta.get('format')!r} is not 'aoti' or {COMPILED_FORMAT!r}")
        graphed = bool(meta.get("cuda_graph")) and device == "gpu"

        def load(path: Path) -> Callable[..., Any]:
            # The runtime's default run path synchronises its threads, which a CUDA graph capture
            # refuses ("operation not permitted when stream is capturing", pytorch#148601).
            return aoti_load_package(str(path), run_single_threaded=graphed)

        if "packages" in meta:
            model: Callable[..., Any] = ShapeDispatch(
                {key: load(directory / str(file)) for key, file in meta["packages"].items()})
        else:
            model = load_covering(directory, meta, load)
        return GraphedCall(model) if graphed else model
