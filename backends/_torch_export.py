"""Helpers shared by the torch backends that export: example inputs, dynamic shapes, shape keys, loading.

This module defines no :class:`~backends.base.Backend`, so importing it (``backends`` imports
every module of the package) registers nothing.
"""

from __future__ import annotations

import inspect
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch

from tuner.core.devices import torch_device
from tuner.core.workload import Workload
from tuner.runtime.hf_masks import shape_decided_masks
from tuner.runtime.precision import AutocastWrapper, holds

T = TypeVar("T")


def example_inputs(workload: Workload) -> tuple[torch.Tensor, ...]:
    """Return the sample to trace and export with (the largest one, see ``Workload.example_index``).

    Args:
        workload: The workload.

    Returns:
        One test sample's input tensors, on the workload's device.
    """
    return workload.samples[workload.example_index()]


def dynamic_shapes_spec(workload: Workload) -> tuple[dict[int, Any] | None, ...] | None:
    """Build the ``dynamic_shapes`` argument of ``torch.export.export`` for the workload's test data.

    Every dim that varies between test samples is ``Dim.AUTO(min=1)``: torch.export infers which
    of them the model forces equal (say every input's batch dim, or a mask's length and the
    ids') and specializes none that the model can run symbolic. Named ``Dim``s would have to state
    those relations beforehand, and a model that relates dims the test data does not show
    (Hugging Face's attention masks do) fails with ``Constraints violated``. ``min=1`` admits
    batch 1 even when the example's batch is larger.

    Args:
        workload: The workload.

    Returns:
        One entry per input (``{dim: Dim.AUTO}`` or None for an input with no varying dim), or
        None when no dim varies at all (a plain static export).
    """
    varying = workload.varying_dims()
    if not any(varying):
        return None
    auto = torch.export.Dim.AUTO(min=1)
    return tuple({d: auto for d in dims} or None for dims in varying)


def bound_dynamic_shapes(model: Any, dynamic_shapes: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
    """``dynamic_shapes`` as torch.export binds it to ``model.forward``'s parameters.

    A wrapper whose ``forward(*args)`` takes the inputs as one variadic parameter (the precision
    cast, the flattened outputs) gets them as one entry: a tuple with one spec per input.
    """
    if dynamic_shapes is None:
        return None
    forward = getattr(model, "forward", model)
    params = list(inspect.signature(forward).parameters.values())
    if params and params[0].kind is inspect.Parameter.VAR_POSITIONAL:
        return (tuple(dynamic_shapes),)
    return dynamic_shapes


def shape_key_str(shapes: tuple[tuple[int, ...], ...]) -> str:
    """Name one input-shape combination in a JSON-friendly way, e.g. ``"2x8,2x16"``.

    Args:
        shapes: The shapes of one sample's inputs (``Workload.shape_key``).

    Returns:
        Each input's dims joined by ``x``, inputs joined by ``,``.
    """
    return ",".join("x".join(str(d) for d in shape) for shape in shapes)


def pick_by_shape(table: Mapping[str, T], args: tuple[Any, ...], missing: str, hint: str) -> T:
    """What a static-shape artifact holds for the input shapes of ``args``.

    Args:
        table: Entries per shape key (:func:`shape_key_str`).
        args: The call's inputs.
        missing: What the error says is missing, e.g. ``"artifact has no package"``.
        hint: What the error suggests instead.

    Returns:
        The entry of these shapes.

    Raises:
        ValueError: When there is none.
    """
    key = shape_key_str(tuple(tuple(a.shape) for a in args))
    found = table.get(key)
    if found is None:
        raise ValueError(f"this static-shape {missing} for input shapes {key}; it holds {sorted(table)} ({hint})")
    return found


def cpu_copy(model: Any, args: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...]]:
    """The model and its example inputs on the CPU (a deep copy of the model if it was elsewhere).

    Args:
        model: The module, on any device.
        args: Example inputs, on any device.

    Returns:
        ``(model, args)``, the originals when the inputs are on the CPU already.
    """
    if all(not isinstance(a, torch.Tensor) or a.device.type == "cpu" for a in args):
        return model, args
    import copy

    return copy.deepcopy(model).to("cpu"), tuple(a.to("cpu") if isinstance(a, torch.Tensor) else a for a in args)


def cxx_compiler_available() -> bool:
    """Whether a C++ compiler is on the PATH (Inductor's CPU code generation needs one).

    Returns:
        True when ``g++``, ``c++`` or ``clang++`` is found.
    """
    return any(shutil.which(cxx) for cxx in ("g++", "c++", "clang++"))


def export_program(model: Any, args: tuple[torch.Tensor, ...],
                   dynamic_shapes: tuple[dict[int, Any] | None, ...] | None = None) -> torch.export.ExportedProgram:
    """``torch.export.export`` that also works for models whose CUDA kernels have no fake impl.

    On a GPU some fused kernels cannot be traced: a ``GRUCell`` on CUDA dispatches to
    ``aten._thnn_fused_gru_cell``, which torch.export refuses (seen on an H100 with torch 2.11:
    UnsupportedOperatorException). The CPU path of the same modules decomposes into plain ops, so
    a model on the GPU is exported from a CPU copy and the program moved back to its device.
    Not a model under autocast: torch.export records the autocast region of the device it traces
    on, and a CPU region does nothing to CUDA ops (seen on an H100: an ``amp-fp16`` ViT's program
    failed its own dtype checks when reloaded, "Tensor dtype mismatch! Expected: Half, Got:
    float").

    Args:
        model: The module to export (on its device).
        args: Example inputs (on the model's device).
        dynamic_shapes: The ``dynamic_shapes`` argument, or None.

    Returns:
        The exported program, on the inputs' device.
    """
    dynamic_shapes = bound_dynamic_shapes(model, dynamic_shapes)
    device = next((a.device for a in args if isinstance(a, torch.Tensor)), torch.device("cpu"))
    in_place = device.type == "cpu" or holds(model, AutocastWrapper)
    traced_model, traced_args = (model, args) if in_place else cpu_copy(model, args)
    with shape_decided_masks():
        program = torch.export.export(traced_model, traced_args, dynamic_shapes=dynamic_shapes)
    if in_place:
        return program
    from torch.export.passes import move_to_device_pass

    return move_to_device_pass(program, device)


def load_program(file: Path, device: str) -> torch.nn.Module:
    """A ``torch.export`` program file as a module on ``device``."""
    from torch.export.passes import move_to_device_pass

    dev = torch_device(device)
    if dev.type == "cuda" and dev.index is None:
        # With an index: the pass writes the device into the graph's tensor-metadata asserts (left by
        # the model's .to() calls), which Dynamo compares with the inputs' strictly ("Expected: cuda,
        # Got: cuda:0" on an H100, experiments/compiled_export_probe.py).
        dev = torch.device("cuda", torch.cuda.current_device())
    module: torch.nn.Module = move_to_device_pass(torch.export.load(file), dev).module()
    return module
