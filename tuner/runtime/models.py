"""The model a backend compiles: in the candidate's precision, its outputs a tuple of tensors.

Every backend starts from :func:`prepared_model` rather than from ``workload.model``:

- the precision is applied (:func:`tuner.runtime.precision.apply_precision`), with the modules
  that the candidate keeps in fp32 (:mod:`tuner.runtime.fallback`), the weights' memory
  format (:data:`CHANNELS_LAST`) and the padding of unaligned Linear layers (:data:`PAD_LINEAR`);
- outputs held in a library's classes (a ``ModelOutput``, a ``DynamicCache``) are flattened to a
  tuple of tensors (:class:`tuner.core.outputs.FlatOutputs`), which every exporter and tracer
  takes; the artifact's loader rebuilds the structure;
- for the backends that trace through Python (``torch.compile``, ``torch.export``), a TorchScript
  model is converted first with torch's TorchScript-to-ExportedProgram converter
  (:func:`traceable`): neither takes a ``ScriptModule`` as it is.
"""

from __future__ import annotations

import copy
import dataclasses
import weakref
from typing import Any

import torch

from tuner.core.errors import error_line
from tuner.core.outputs import FlatOutputs, with_flat_outputs
from tuner.core.records import Candidate
from tuner.core.workload import Workload
from tuner.runtime.fallback import FP32_FALLBACK, fp32_modules
from tuner.runtime.padding import pad_linears
from tuner.runtime.precision import apply_precision, low_dtype

#: Option: hold the model's 4-d weights channels-last (``torch.channels_last``), chosen by
#: :mod:`search_space.channels_last`. Not a ``torch/`` switch: it changes the model, not the process.
CHANNELS_LAST = "layout/channels_last"
#: Option: pad Linear layers whose output width cuBLAS cannot align (:mod:`tuner.runtime.padding`),
#: chosen by :mod:`search_space.pad_linear`. A change of the model too, like :data:`CHANNELS_LAST`.
PAD_LINEAR = "layout/pad_linear"


@dataclasses.dataclass(frozen=True)
class _Unconvertible:
    """Why a ScriptModule cannot be converted (kept in place of its conversion)."""

    reason: str


#: Converted TorchScript models, or why one cannot be converted, by the ScriptModule they came from
#: (converting takes seconds, and every backend that traces asks: its refusal, then each build).
_CONVERTED: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def traceable(workload: Workload) -> Any:
    """The workload's model as Python code that ``torch.compile`` and ``torch.export`` trace.

    A ``ScriptModule`` becomes the module of the ``ExportedProgram`` that torch's
    ``TS2EPConverter`` makes of it on the example sample; any other model is returned as it is.

    Raises:
        RuntimeError: When the converter cannot convert the ScriptModule (its message says which
            TorchScript node it stopped at).
    """
    model = workload.model
    if not isinstance(model, torch.jit.ScriptModule):
        return model
    if model not in _CONVERTED:
        from torch._export.converter import TS2EPConverter

        example = workload.samples[workload.example_index()]
        try:
            _CONVERTED[model] = TS2EPConverter(model, example).convert().module()
        except Exception as e:  # noqa: BLE001 - kept, and raised below for every asker
            _CONVERTED[model] = _Unconvertible(f"torch's TorchScript-to-ExportedProgram converter cannot convert "
                                               f"this ScriptModule ({error_line(e)})")
    converted = _CONVERTED[model]
    if isinstance(converted, _Unconvertible):
        raise RuntimeError(converted.reason)
    return converted


def untraceable_reason(workload: Workload) -> str | None:
    """Why :func:`traceable` cannot give this workload's model, or None when it can."""
    try:
        traceable(workload)
    except RuntimeError as e:
        return str(e)
    return None


def in_precision(model: Any, workload: Workload, candidate: Candidate) -> Any:
    """``model`` in the candidate's precision and weight layout, with the modules it keeps in fp32.

    Its Linear layers are padded first (:data:`PAD_LINEAR`), so a padded layer is cast, or kept
    in fp32, under its own name.

    Outputs are as the model's. The user's model is never changed: a layout is applied to a copy.
    ``model`` is the workload's model, or it wrapped in :class:`~tuner.core.outputs.FlatOutputs`
    (the modules kept in fp32 are named in the workload's model, under the wrapper's ``model``).
    """
    if candidate.options.get(PAD_LINEAR):
        model = pad_linears(model)
    if candidate.options.get(CHANNELS_LAST):
        model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    share = float(candidate.options.get(FP32_FALLBACK, 0.0)) if low_dtype(candidate.precision) else 0.0
    kept = fp32_modules(workload, candidate.precision, share)
    if isinstance(model, FlatOutputs):
        kept = tuple(f"model.{name}" for name in kept)
    return apply_precision(model, candidate.precision, kept)


def prepared_model(workload: Workload, candidate: Candidate, *, trace: bool = False) -> Any:
    """The model a backend compiles for a candidate (see the module's list).

    The outputs are flattened inside the precision's wrapper, so that its cast back to fp32 maps
    over a tuple of tensors. Mapping over a library's classes there broke Dynamo on torch 2.11:
    ``torch.compile`` of GPT-2 (its outputs hold a ``DynamicCache``) in fp16, bf16 or under
    autocast failed with ``'LocalGeneratorObjectVariable' object has no attribute
    'remaining_items'`` on an H100 (experiments/results/2026-12-06-h100-levels-run4.md), where
    the model flattened first traces (checked on the CPU with torch 2.11).

    Args:
        workload: The workload.
        candidate: Its precision and :data:`~tuner.runtime.fallback.FP32_FALLBACK` apply.
        trace: The backend traces through Python (``torch.compile``, ``torch.export``): convert a
            TorchScript model first.

    Returns:
        The model, its outputs a tuple of tensors where they were another structure.

    Raises:
        RuntimeError: When ``trace`` and the TorchScript model cannot be converted.
    """
    model = traceable(workload) if trace else workload.model
    return in_precision(with_flat_outputs(model, workload.output_spec), workload, candidate)


__all__ = ["CHANNELS_LAST", "PAD_LINEAR", "in_precision", "prepared_model", "traceable", "untraceable_reason"]
