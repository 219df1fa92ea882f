"""Which modules a low-precision candidate keeps in fp32: those whose own error is largest.

BladeDISC's ``fp16_fallback_op_ratio`` keeps a share of the ops in fp32; here the share is a
search choice (``precision/fp32_fallback``: not under ``torch/``, the prefix of
:mod:`tuner.runtime.switches`, as it changes the model, not a flag around its calls) and the
modules are picked by a quick per-module comparison on the test data: during one fp32 pass, each
module with weights of its own also runs on the same inputs in the low precision, and its *local*
error (the relative L2 distance of its outputs from its fp32 outputs) ranks it. Local, so that a
module is not blamed for the error it was handed by the modules before it.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from tuner.core.workload import Workload
from tuner.runtime.errors import rel_l2
from tuner.runtime.precision import AUTOCAST, floats_to, low_dtype, tf32

#: The candidate option: the share of weighted modules kept in fp32 (0: none).
FP32_FALLBACK = "precision/fp32_fallback"

_RANKINGS: dict[tuple[str, str], tuple[str, ...]] = {}


def _weighted_leaves(model: nn.Module) -> dict[str, nn.Module]:
    return {name: m for name, m in model.named_modules()
            if name and not list(m.children()) and any(True for _ in m.parameters(recurse=False))}


def local_errors(model: nn.Module, samples: Any, precision: str) -> dict[str, float]:
    """Each weighted leaf module's largest local error over the samples, in ``precision``.

    Args:
        model: The fp32 model (not changed).
        samples: Test inputs, one tuple per sample, on the model's device.
        precision: A low precision (``fp16``, ``bf16``, ``amp-fp16``, ``amp-bf16``).

    Returns:
        ``{module name: relative L2 error}``.
    """
    amp, dtype = precision in AUTOCAST, low_dtype(precision)
    if dtype is None:
        raise ValueError(f"{precision} is not a 16-bit precision")
    errors: dict[str, float] = {}

    def hook(name: str, module: nn.Module, low: nn.Module) -> Any:
        def run(_: nn.Module, args: Any, kwargs: Any, out: Any) -> None:
            device = next(module.parameters()).device.type
            with torch.autocast(device, dtype=dtype, enabled=amp):
                # forward, not __call__: under autocast ``low`` is the module itself, whose hook this is.
                low_out = low.forward(*floats_to(args, dtype), **floats_to(kwargs, dtype))
            pairs = zip(torch.utils._pytree.tree_leaves(low_out), torch.utils._pytree.tree_leaves(out), strict=False)
            worst = max((rel_l2(a.float(), b) for a, b in pairs
                         if isinstance(b, torch.Tensor) and b.is_floating_point()), default=0.0)
            errors[name] = max(errors.get(name, 0.0), worst)
        return run

    leaves = _weighted_leaves(model)
    handles = [m.register_forward_hook(hook(n, m, m if amp else copy.deepcopy(m).to(dtype)), with_kwargs=True)
               for n, m in leaves.items()]
    try:
        with torch.no_grad(), tf32(False):
            for sample in samples:
                model(*sample)
    finally:
        for h in handles:
            h.remove()
    return errors


def keeps_modules(model: Any) -> bool:
    """Whether modules of ``model`` can be kept in fp32: not those of a ScriptModule (compiled code)."""
    return isinstance(model, nn.Module) and not isinstance(model, torch.jit.ScriptModule)


def fp32_modules(workload: Workload, precision: str, share: float) -> tuple[str, ...]:
    """The names of the ``share`` of weighted leaf modules with the largest local error (at least one).

    The ranking is computed once per workload and precision in a process.

    Args:
        workload: The model and its test data (a torch ``nn.Module``).
        precision: The candidate's low precision.
        share: The candidate's :data:`FP32_FALLBACK` (0 keeps none).

    Returns:
        Module names for :func:`tuner.runtime.precision.apply_precision`.
    """
    if share <= 0 or not keeps_modules(workload.model):
        return ()
    key = (workload.fingerprint, precision)
    if key not in _RANKINGS:
        errors = local_errors(workload.model, workload.samples, precision)
        _RANKINGS[key] = tuple(sorted(errors, key=lambda n: -errors[n]))
    ranking = _RANKINGS[key]
    return ranking[:max(1, math.ceil(share * len(ranking)))]


__all__ = ["FP32_FALLBACK", "fp32_modules", "keeps_modules", "local_errors"]
