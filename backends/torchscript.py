"""The ``torchscript`` backend: script or trace, optionally freeze/optimize, run under a JIT fuser.

Options (``torchscript/<option>``):
    method: ``"script"`` (default) or ``"trace"`` (with the largest test sample).
    freeze: ``torch.jit.freeze`` (inline weights, fold constants); default False.
    optimize_for_inference: ``torch.jit.optimize_for_inference`` (freezes by itself, then folds
        conv/bn and picks MKLDNN layouts on the CPU); default False.
    fuser: a ``torch.jit.fuser`` name, ``"none"`` or ``"fuser1"`` (NNC). The profiling executor
        fuses during its first runs, so the fuser context wraps every call, not only the build.
        Absent: torch's default fusers. NNC needs LLVM for CPU code, which the CPU wheels lack:
        there ``fuser1`` on the CPU fails the build.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from backends._jit_fuser import FUSER_FLAGS, FuserCall, current_flags, fuser_flags, fusion_on
from backends._torch_export import example_inputs
from backends._ts_passes import fold_module_constant_moves
from backends.base import Backend
from tuner.core.devices import torch_device
from tuner.core.outputs import FlatOutputs
from tuner.core.records import Built, Candidate
from tuner.core.workload import Workload
from tuner.runtime.hf_masks import shape_decided_masks
from tuner.runtime.models import prepared_model
from tuner.runtime.precision import AutocastWrapper, CastWrapper, Fp32Island, holds

#: How the model becomes TorchScript.
METHODS: tuple[str, ...] = ("script", "trace")
#: The options this backend reads; any other ``torchscript/`` key is a typo and fails the build.
OPTIONS: frozenset[str] = frozenset({"method", "freeze", "optimize_for_inference", "fuser"})


def _wrap(module: Callable[..., Any], fuser: str | None) -> Callable[..., Any]:
    return module if fuser is None else FuserCall(module, fuser)


def _bool_option(candidate: Candidate, name: str) -> bool:
    value = candidate.option(name, False)
    if not isinstance(value, bool):
        raise ValueError(f"torchscript/{name} must be a bool, got {value!r}")
    return value


#: The first ``torch.jit.script`` error of each module class in this process. A failed script
#: leaves the class half-defined in TorchScript's compilation unit, and every later script of the
#: class in the process fails with "Can't redefine method: forward", which hides the real error
#: (a warm worker would report that for every later script candidate of the model).
_SCRIPT_ERRORS: dict[type, str] = {}


def _script_module(module: nn.Module) -> torch.jit.ScriptModule:
    """``torch.jit.script(module)``, failing with the class's first script error if it had one here.

    Raises:
        RuntimeError: When TorchScript cannot script the module's class (now or earlier in this process).
    """
    cls = type(module)
    if cls in _SCRIPT_ERRORS:
        raise RuntimeError(_SCRIPT_ERRORS[cls])
    try:
        scripted: torch.jit.ScriptModule = torch.jit.script(module)
    except Exception as e:
        _SCRIPT_ERRORS[cls] = str(e).strip() or type(e).__name__
        raise
    return scripted


#: Thin wrappers around the user's model (a precision cast, flattened outputs): their ``forward``
#: takes ``*args``, which the scripting compiler refuses.
_WRAPPERS = (CastWrapper, FlatOutputs)


def _script(model: Any, example: tuple[torch.Tensor, ...]) -> torch.jit.ScriptModule:
    if isinstance(model, torch.jit.ScriptModule):
        return model
    if isinstance(model, _WRAPPERS):
        # Script the innermost model and trace the thin layers around it (a traced module keeps a
        # scripted submodule's control flow as a call).
        parent = model
        while isinstance(parent.model, _WRAPPERS):
            parent = parent.model
        if not isinstance(parent.model, torch.jit.ScriptModule):
            parent.model = _script_module(parent.model)
        traced: torch.jit.ScriptModule = torch.jit.trace(  # type: ignore[no-untyped-call]
            model, example, check_trace=False, strict=False)
        return traced
    return _script_module(model)


class TorchScriptBackend(Backend):
    """TorchScript: scripted or traced, frozen or not, with the JIT fuser the candidate names."""

    name = "torchscript"
    shape_modes = ("dynamic",)
    native_kinds = frozenset({"torchscript", "nn.Module"})

    @classmethod
    def refused_options(cls, workload: Workload) -> dict[str, tuple[Any, ...]]:
        """``torchscript/method=script`` for a model TorchScript's compiler cannot script (most libraries' models)."""
        model = workload.model
        if workload.framework != "torch" or isinstance(model, torch.jit.ScriptModule):
            return {}
        try:
            _script_module(model)
        except Exception:  # noqa: BLE001 - any failure to script means: trace only
            return {"torchscript/method": ("script",)}
        return {}

    def compile(self, workload: Workload, candidate: Candidate) -> Built:
        """Script or trace the model in the candidate's precision, then freeze/optimize it.

        Args:
            workload: The model, its test data (the trace example) and device.
            candidate: Precision and ``torchscript/`` options.

        Returns:
            The TorchScript module, wrapped in its fuser when one is named.

        Raises:
            ValueError: For an unknown option or an invalid option value.
            Exception: Whatever scripting, tracing or freezing raises.
        """
        unknown = sorted(k for k in candidate.options if k.startswith("torchscript/")
                         and k.split("/", 1)[1] not in OPTIONS)
        if unknown:
            raise ValueError(f"unknown torchscript options {unknown}; known: {sorted(OPTIONS)}")
        method = candidate.option("method", "script")
        if method not in METHODS:
            raise ValueError(f"torchscript/method {method!r} is not one of {METHODS}")
        freeze = _bool_option(candidate, "freeze")
        optimize = _bool_option(candidate, "optimize_for_inference")
        fuser = candidate.option("fuser")
        if fuser is not None:
            fuser = str(fuser)
            # Enter once here so that an unknown fuser name fails the build, not the first call.
            with fuser_flags(fuser):
                pass
            if fuser == "fuser1" and workload.device == "cpu" and not torch._C._llvm_enabled():
                # NNC emits CPU code through LLVM; without it every fused call fails at run time
                # ("LLVM Backend not found"), so say so at build time.
                raise RuntimeError("torchscript/fuser 'fuser1' (NNC) cannot generate CPU code: this torch build has "
                                   "no LLVM (torch._C._llvm_enabled() is False)")

        model = prepared_model(workload, candidate)
        if isinstance(model, nn.Module):
            model.eval()
        example = example_inputs(workload)
        module: torch.jit.ScriptModule
        # A model under autocast or with fp32 islands is traced, whatever the method: scripting
        # keeps neither (autocast does not reach into a scripted submodule's code, and an island's
        # ``forward(*args)`` does not script); tracing records the casts they make.
        if method == "script" and not holds(model, AutocastWrapper, Fp32Island):
            module = _script(model, example)
        else:
            # A ScriptModule given to trace comes back as it is (torch warns): scripted already.
            # Bidirectional masks as eager skips them: under tracing transformers builds one, which
            # sends SDPA to its fp32 math backend (ViT on an H100, tuner.runtime.hf_masks).
            with shape_decided_masks(causal=False):
                module = torch.jit.trace(model, example, check_trace=False, strict=False)  # type: ignore[no-untyped-call]
            if module is not model:  # the user's own ScriptModule stays as given
                fold_module_constant_moves(module)
        if freeze:
            module = torch.jit.freeze(module.eval())
        state: dict[str, Any] = {"module": module, "fuser": fuser}
        if optimize:
            # optimize_for_inference rewrites a frozen module in place (copy.deepcopy shares the
            # graphs), and on the CPU what it makes (MKLDNN constants) saves but cannot be loaded
            # back. So keep the serialized module from before the pass, for export, and optimize a
            # copy loaded from it; load() re-applies the pass.
            buffer = io.BytesIO()
            torch.jit.save(module, buffer)
            state["saved"] = buffer.getvalue()
            copied = torch.jit.load(  # type: ignore[no-untyped-call]
                io.BytesIO(state["saved"]), map_location=torch_device(workload.device))
            module = torch.jit.optimize_for_inference(copied)
            state["module"] = module
        return Built(fn=_wrap(module, fuser), build_s=0.0, state=state)

    def native_model(self, built: Built, workload: Workload, candidate: Candidate) -> Any | None:
        """The TorchScript module, where ``torch.jit.save`` and ``torch.jit.load`` keep it as measured.

        The fuser is a process-wide JIT switch that the file does not carry: a candidate qualifies
        only when its fuser fuses on its device what this process's switches (torch's defaults,
        unless the user changed them) fuse there too. Not for ``optimize_for_inference`` (on the
        CPU its module saves but does not load back), nor TF32 (a process-wide switch too).
        """
        if built.state.get("saved") is not None or candidate.precision == "tf32":
            return None
        if workload.output_spec is not None and not workload.output_spec.flat:
            return None  # it returns the outputs flattened, not in the model's own structure
        fuser = built.state.get("fuser")
        if fuser is not None and fusion_on(FUSER_FLAGS[str(fuser)], workload.device) != fusion_on(
                current_flags(), workload.device):
            return None
        return built.state["module"]

    def export(self, built: Built, workload: Workload, candidate: Candidate, directory: Path) -> dict[str, Any]:
        """Write ``model.ts`` with ``torch.jit.save``.

        Args:
            built: The built candidate (its TorchScript module).
            workload: Unused (the module holds everything).
            candidate: Unused (the fuser is taken from the build).
            directory: Where to write.

        Returns:
            ``{"format": "torchscript", "file": "model.ts", "fuser": name or None,
            "optimize_for_inference": bool}``; :meth:`load` re-applies the fuser and
            ``optimize_for_inference`` (the file holds the module from before that pass).
        """
        path = directory / "model.ts"
        saved = built.state.get("saved")
        if saved is not None:
            path.write_bytes(saved)
        else:
            torch.jit.save(built.state["module"], str(path))
        return {"format": "torchscript", "file": path.name, "fuser": built.state.get("fuser"),
                "optimize_for_inference": saved is not None}

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any], device: str) -> Callable[..., Any]:
        """``torch.jit.load`` the module onto ``device`` and wrap it in its fuser again.

        Args:
            directory: The artifact folder.
            meta: What :meth:`export` returned.
            device: ``"cpu"`` or ``"gpu"``.

        Returns:
            The module (optimized for inference again when it was), called under the exported
            fuser when one was named.
        """
        module = torch.jit.load(  # type: ignore[no-untyped-call]
            str(directory / str(meta["file"])), map_location=torch_device(device))
        if meta.get("optimize_for_inference"):
            module = torch.jit.optimize_for_inference(module)
        fuser = meta.get("fuser")
        return _wrap(module, None if fuser is None else str(fuser))
