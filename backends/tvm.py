"""The ``tvm`` backend: TVM Relax, with fusion, DLight, MetaSchedule, cuBLAS and CUDA-graph choices.

TensorFlow workloads (framework ``tf``) reach TVM through ONNX: the frozen graph is converted with
tf2onnx (``tuner/runtime/tf_session.py``) and imported with TVM's ONNX importer, in fp32.

Options (``tvm/<option>``, see ``search_space/fusion.py`` and the ``tvm_*`` modules beside it):
    frontend: ``torch.export`` or ``onnx`` (the route TensorFlow models take).
    fuse_ops: FuseOps + FuseTIR on or off.
    fuse_patterns: Relax's pattern fusions (parallel and transposed matmuls) before FuseOps.
    dlight: The DLight rules, in order (``"Matmul,GEMV,...,Fallback"``), or ``"none"``.
    metaschedule: ``"off"`` or ``"<trials per task>@top<k>"``: MetaSchedule on the k costliest
        kernels, through the persistent tuning database (``backends/_tvm_tuning.py``).
    cublas: Matmuls by cuBLAS (through torch, ``backends/_tvm_library.py``); GPU only.
    cuda_graph: ``relax.backend.use_cuda_graph``; GPU only.

Shape modes: ``static`` compiles one module per distinct test-data shape (concrete shapes, where
MetaSchedule can tune every kernel); ``dynamic`` one module with the dims that vary in the test
data symbolic (MetaSchedule then tunes only the kernels whose shapes are all static).

The artifact is one ``export_library`` shared object per module plus ``artifact.json``; the
loader returns a callable over torch tensors, passed to and from TVM through DLPack (no copies).
"""

from __future__ import annotations

import collections
import dataclasses
import tempfile
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.dlpack import from_dlpack

from backends._torch_export import dynamic_shapes_spec, example_inputs, pick_by_shape, shape_key_str
from backends._tvm_import import FRONTENDS, import_model, mixed_precision
from backends._tvm_pipeline import (
    DEFAULT_CPU_RULES,
    DEFAULT_GPU_RULES,
    PipelineOptions,
    compile_prepared,
    prepare,
    target_for,
)
from backends._tvm_tuning import OFF, TuningReport, TuningRequest, TuningStore, tune_modules
from backends.base import Backend
from tuner.core.records import Built, Candidate
from tuner.core.workload import Workload
from tuner.runtime import timelimit
from tuner.runtime.models import prepared_model, untraceable_reason

#: Key of the single module of a dynamic-shape artifact.
ANY_SHAPE = "*"
#: Imported Relax modules kept per process, most recent last: (model fingerprint, frontend,
#: precision, shape key) -> (the model, IRModule). Relax passes return new modules, so one import serves every
#: later candidate that differs only in pipeline options (on the H100 an import of the demo
#: decoder costs 0.5-4 s per module, a tenth to a third of a candidate's build).
_IMPORTS: collections.OrderedDict[tuple[str, str, str, str], tuple[weakref.ref[Any], Any]] = (
    collections.OrderedDict())
IMPORT_CACHE_SIZE = 16


def pipeline_options(candidate: Candidate, device: str) -> PipelineOptions:
    """Read a candidate's pipeline choices (defaults: TVM's default pipeline for the device).

    Args:
        candidate: A ``tvm`` candidate.
        device: ``"cpu"`` or ``"gpu"``.

    Returns:
        The options.
    """
    gpu = device == "gpu"
    return PipelineOptions(
        fuse_ops=bool(candidate.option("fuse_ops", True)),
        fuse_patterns=bool(candidate.option("fuse_patterns", False)),
        dlight=str(candidate.option("dlight", DEFAULT_GPU_RULES if gpu else DEFAULT_CPU_RULES)),
        library=bool(candidate.option("cublas", False)) and gpu,
        cuda_graph=bool(candidate.option("cuda_graph", False)) and gpu,
    )


def tvm_device(device: str) -> Any:
    """The TVM device of ``"cpu"`` or ``"gpu"`` (GPU 0, the one the workload runs on)."""
    import tvm

    return tvm.cuda(0) if device == "gpu" else tvm.cpu(0)


def torch_device(device: str) -> torch.device:
    """The torch device of :func:`tvm_device`: where a VM's inputs must be."""
    return torch.device("cuda", 0) if device == "gpu" else torch.device("cpu")


def target_tag(device: str) -> str:
    """A short name of this host's target, part of the tuning database's folder name."""
    if device == "gpu":
        major, minor = torch.cuda.get_device_capability()
        return f"cuda-sm_{major}{minor}"
    return "llvm"


class VmRunner:
    """Runs the compiled Relax VM of each call's input shapes on torch tensors.

    Inputs go to TVM and outputs come back through DLPack, without copies (a non-contiguous input
    is made contiguous first). An input on another device than the VM's is copied there first, in
    the call (and so in its measured time): a TensorFlow workload's test data stays on the host, as
    a frozen graph's feeds do, and a GPU VM takes only device memory (without the copy every
    ``tvm`` candidate of a TF workload on a GPU fails with "Mismatched ... device_type ...").

    Args:
        vms: Relax VM per shape key (:func:`~backends._torch_export.shape_key_str`), or one under
            :data:`ANY_SHAPE` for a dynamic module.
        device: The torch device the VMs run on (:func:`torch_device`).
        single_output: Return the one output as a tensor instead of a 1-tuple.
        calls_python: The VM calls back into Python (the cuBLAS dispatch): the trial's time limit
            is then deferred around each call, where an exception would abort the process.
    """

    def __init__(self, vms: dict[str, Any], device: torch.device, single_output: bool = False,
                 calls_python: bool = False) -> None:
        self.vms = vms
        self.device = device
        self.single_output = single_output
        self.calls_python = calls_python
        self.mains = {key: vm["main"] for key, vm in vms.items()}

    def __call__(self, *args: torch.Tensor) -> Any:
        """Run the module of these input shapes.

        Args:
            *args: The model's input tensors.

        Returns:
            The outputs: a tuple of tensors, or one tensor for a single-output model.

        Raises:
            ValueError: When no module was compiled for these input shapes.
        """
        import tvm

        main = self.mains.get(ANY_SHAPE)
        if main is None:
            main = pick_by_shape(self.mains, args, "TVM module has no build",
                                 "compile in dynamic shape mode for other shapes")
        tvm_args = [tvm.runtime.from_dlpack(a.to(self.device).contiguous()) for a in args]
        if self.calls_python:
            with timelimit.deferred():
                out = main(*tvm_args)
        else:
            out = main(*tvm_args)
        if isinstance(out, tvm.runtime.Tensor):
            outs: tuple[torch.Tensor, ...] = (from_dlpack(out),)
        else:
            outs = tuple(from_dlpack(o) for o in out)
        return outs[0] if self.single_output and len(outs) == 1 else outs


class TvmBackend(Backend):
    """TVM Relax: import, fusion, schedules (DLight, MetaSchedule), cuBLAS and CUDA graphs."""

    name = "tvm"
    frameworks = frozenset({"torch", "tf"})
    shape_modes = ("static", "dynamic")
    # amp-fp16 is TVM's own mixed precision (Relax's ToMixedPrecision on the fp32 import: fp16
    # matmuls and convolutions accumulating in fp32), so it takes TensorFlow graphs too.
    precisions = frozenset({"fp32", "fp16", "amp-fp16"})
    own_precisions = frozenset({"amp-fp16"})

    def __init__(self, cache_dir: Path | None = None) -> None:
        super().__init__(cache_dir)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    @classmethod
    def is_available(cls, device: str) -> bool:
        """Whether TVM is installed, and for ``gpu`` whether it was built with CUDA and a GPU works.

        Args:
            device: ``"cpu"`` or ``"gpu"``.

        Returns:
            True when candidates can be built for that device.
        """
        import importlib.util

        if not super().is_available(device) or importlib.util.find_spec("tvm") is None:
            return False
        try:
            import tvm
        except Exception:  # noqa: BLE001 - a broken install (a missing compiler library) is no TVM
            return False
        return device != "gpu" or bool(tvm.cuda(0).exist)

    @classmethod
    def refusal(cls, workload: Workload) -> str | None:
        """A TorchScript model that torch's converter cannot turn back into Python code (TVM imports an export)."""
        return untraceable_reason(workload) if workload.framework == "torch" else None

    @classmethod
    def refused_options(cls, workload: Workload) -> dict[str, tuple[Any, ...]]:
        """``tvm/precision=fp16`` (the cast model) for a model with convolutions; its ``amp-fp16`` stays.

        TVM 0.27's torch importer gives every convolution ``out_dtype="float32"``, so in a cast
        model the next fp16 op refuses the mix (seen on the H100 and the CPU: ``R.add(fp32 conv,
        fp16 bias)`` in ViT's patch embedding, a ``batch_norm`` type error in ResNet-50). TVM's own
        mixed precision (``amp-fp16``) imports in fp32 and builds these models.
        """
        return {"tvm/precision": ("fp16",)} if workload.has_convolutions() else {}

    def store(self, workload: Workload) -> TuningStore:
        """The tuning database of this (model, target): under ``cache_dir``, or a folder of this instance.

        Args:
            workload: The workload (its fingerprint names the model).

        Returns:
            The store.
        """
        root = self.cache_dir
        if root is None:
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="tvm-tuning-")
            root = Path(self._tmp.name)
        return TuningStore(root / "tvm-tuning" / f"{workload.fingerprint[:16]}-{target_tag(workload.device)}")

    def compile(self, workload: Workload, candidate: Candidate) -> Built:
        """Import, tune (if asked) and compile one module per distinct shape, or one dynamic module.

        Args:
            workload: The model, test data and device.
            candidate: Shape mode, precision and ``tvm/*`` options.

        Returns:
            A :class:`VmRunner`; ``state["executables"]`` holds the VM executables per shape key,
            ``state["tuning"]`` the MetaSchedule report; ``tuning_s`` the seconds spent tuning.

        Raises:
            ValueError: For an unknown option value.
            Exception: Whatever the importer or TVM raise (an operator the importer lacks, a
                DLight rule that fails on a kernel, a MetaSchedule run with no valid schedule).
        """
        # TVM runs Python (passes, DLight rules, MetaSchedule's builder) from C++, where a
        # TrialTimeout would abort the process: the limit is checked between stages instead.
        with timelimit.deferred():
            return self._compile(workload, candidate)

    def _compile(self, workload: Workload, candidate: Candidate) -> Built:
        """:meth:`compile`, run with the trial's time limit deferred."""
        from tvm import relax

        opts = pipeline_options(candidate, workload.device)
        if opts.library and opts.cuda_graph:
            # torch's cuBLAS call runs on torch's stream while TVM captures its own: seen on an
            # H100 as CUBLAS_STATUS_INTERNAL_ERROR. Refused before any compile time is spent.
            raise ValueError("tvm/cublas cannot be combined with tvm/cuda_graph (torch's cuBLAS call is not "
                             "captured into TVM's CUDA graph)")
        request = TuningRequest.parse(str(candidate.option("metaschedule", OFF)))
        frontend = str(candidate.option("frontend", FRONTENDS[0]))
        amp = candidate.precision in self.own_precisions
        if workload.framework == "tf":
            if candidate.precision not in ("fp32", "amp-fp16"):
                raise ValueError(f"tvm takes TensorFlow graphs in fp32 or amp-fp16 only, not {candidate.precision}")
            model = workload.model
        else:
            imported = dataclasses.replace(candidate, precision="fp32") if amp else candidate
            model = prepared_model(workload, imported, trace=True)
        target = target_for(workload.device)
        store = self.store(workload) if request.budget else None
        dev = tvm_device(workload.device)

        counts = workload.shape_counts()
        if candidate.shape_mode == "static":
            examples = {shape_key_str(key): next(s for i, s in enumerate(workload.samples)
                                                 if workload.shape_key(i) == key) for key in counts}
            runs = {shape_key_str(key): n for key, n in counts.items()}
        elif candidate.shape_mode == "dynamic":
            examples = {ANY_SHAPE: example_inputs(workload)}
            runs = {ANY_SHAPE: len(workload.samples)}
        else:
            raise ValueError(f"tvm shape mode {candidate.shape_mode!r} is not one of {self.shape_modes}")
        spec = dynamic_shapes_spec(workload)

        prepared = {}
        for key, args in examples.items():
            # A dynamic import also depends on which dims vary in the test data.
            cache_key = (workload.fingerprint, frontend, candidate.precision,
                         key if key != ANY_SHAPE else f"{key}{spec!r}")
            hit = _IMPORTS.get(cache_key)
            # The model object must be the same too: a workload copied with another model keeps
            # its fingerprint (the tests' broken workload does).
            if hit is not None and hit[0]() is workload.model:
                mod = hit[1]
            else:
                mod = import_model(frontend, model, args, key == ANY_SHAPE, spec)
                if amp:
                    mod = mixed_precision(mod)
                _IMPORTS[cache_key] = (weakref.ref(workload.model), mod)
                while len(_IMPORTS) > IMPORT_CACHE_SIZE:
                    _IMPORTS.popitem(last=False)
            _IMPORTS.move_to_end(cache_key)
            prepared[key] = prepare(mod, opts, target)
            timelimit.stop_if_expired()
        report = TuningReport()
        database = None
        if store is not None:
            # One tuning run over all modules: the k costliest kernels of the whole test data.
            report = tune_modules([(mod, runs[key]) for key, mod in prepared.items()], target, store, request)
            database = store.database
        executables = {}
        for key, mod in prepared.items():
            executables[key] = compile_prepared(mod, opts, workload.device, target, database)
            timelimit.stop_if_expired()
        vms = {key: relax.VirtualMachine(ex, dev) for key, ex in executables.items()}
        fn = VmRunner(vms, torch_device(workload.device), single_output=returns_tensor(workload),
                      calls_python=opts.library)
        # The first call of each module loads its kernels onto the device; do it here so that a
        # module that cannot run fails the build, as a compiler error would.
        with torch.no_grad():
            for args in examples.values():
                fn(*args)
        return Built(fn=fn, build_s=0.0, tuning_s=report.tuning_s,
                     state={"executables": executables, "tuning": report.to_dict(), "options": opts,
                            "single_output": fn.single_output})

    def export(self, built: Built, workload: Workload, candidate: Candidate, directory: Path) -> dict[str, Any]:
        """Write one shared library per module with ``export_library``.

        Args:
            built: The built candidate (its executables).
            workload: The workload (unused: the modules are compiled already).
            candidate: The candidate (its cuBLAS choice: the library needs its packed function).
            directory: Where to write.

        Returns:
            ``{"format": "tvm-so", "shape_mode": ..., "libraries": {shape key: file},
            "torch_matmul": bool}``.
        """
        executables: dict[str, Any] = built.state["executables"]
        libraries: dict[str, str] = {}
        for i, (key, ex) in enumerate(executables.items()):
            path = directory / f"model_{i}.so"
            ex.export_library(str(path))
            libraries[key] = path.name
        opts: PipelineOptions = built.state["options"]
        return {"format": "tvm-so", "shape_mode": candidate.shape_mode, "libraries": libraries,
                "single_output": bool(built.state["single_output"]), "torch_matmul": opts.library,
                "tvm_version": _tvm_version()}

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any], device: str) -> Callable[..., Any]:
        """Load the shared libraries into Relax VMs on ``device``.

        Args:
            directory: The artifact folder.
            meta: What :meth:`export` returned.
            device: ``"cpu"`` or ``"gpu"`` (the libraries run where they were compiled for).

        Returns:
            A :class:`VmRunner` over torch tensors.

        Raises:
            ValueError: For an unknown artifact format.
        """
        import tvm
        from tvm import relax

        if meta.get("format") != "tvm-so":
            raise ValueError(f"tvm artifact format {meta.get('format')!r} is not 'tvm-so'")
        if meta.get("torch_matmul"):
            from backends._tvm_library import register

            register()
        dev = tvm_device(device)
        vms = {key: relax.VirtualMachine(tvm.runtime.load_module(str(directory / file)), dev)
               for key, file in meta["libraries"].items()}
        return VmRunner(vms, torch_device(device), single_output=bool(meta.get("single_output")),
                        calls_python=bool(meta.get("torch_matmul")))


def returns_tensor(workload: Workload) -> bool:
    """Whether the model returns one tensor (not a tuple): the runner then does the same.

    Args:
        workload: The workload (its model is run once on the example sample).

    Returns:
        True for a plain tensor output.
    """
    if workload.framework == "tf":
        return False  # a TF graph's outputs are a list of named tensors
    with torch.no_grad():
        return isinstance(workload.model(*example_inputs(workload)), torch.Tensor)


def _tvm_version() -> str:
    import tvm

    return str(tvm.__version__)
