"""Dimension ``fp32_fallback``: the share of modules a 16-bit candidate keeps in fp32.

BladeDISC's ``fp16_fallback_op_ratio``: the weighted modules with the largest local error in the
low precision (:mod:`tuner.runtime.fallback` ranks them on the test data) run in fp32. Asked only
of candidates whose precision is 16-bit, and only in studies that offer mixed precision
(:attr:`~search_space.base.SpaceContext.mixed`); for PyTorch models, where modules exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from search_space.base import Choice, Dimension, SpaceContext
from search_space.precision import precisions_for
from tuner.core.workload import Workload
from tuner.runtime.fallback import FP32_FALLBACK
from tuner.runtime.precision import low_dtype

#: Shares searched: none, the worst few, a fifth.
SHARES: tuple[float, ...] = (0.0, 0.05, 0.2)


def refused_shares(workload: Workload) -> dict[str, tuple[float, ...]]:
    """The shares left out for a model whose modules cannot be kept in fp32 (a TorchScript model).

    A ScriptModule's submodules are compiled code, so :func:`tuner.runtime.fallback.fp32_modules`
    keeps none, and every share would build the same candidate.
    """
    if isinstance(workload.model, torch.jit.ScriptModule):
        return {FP32_FALLBACK: SHARES[1:]}
    return {}


class Fp32FallbackDimension(Dimension):
    """``precision/fp32_fallback`` over :data:`SHARES`, for 16-bit candidates of PyTorch models."""

    name = "fp32_fallback"
    order = 22

    def choices(self, backend: str, ctx: SpaceContext) -> Sequence[Choice]:
        """The shares, where the study offers mixed precision and the backend a 16-bit precision."""
        from backends import backend_class

        supported = backend_class(backend).precisions
        low = [p for p in precisions_for(ctx) if low_dtype(p) and (supported is None or p in supported)]
        if not ctx.mixed or ctx.framework != "torch" or not low:
            return ()
        return (Choice(FP32_FALLBACK, SHARES, "share of weighted modules kept in fp32, largest local error first"),)

    def asked(self, backend: str, params: dict[str, Any]) -> bool:
        """Only after a 16-bit precision (TVM's own mixed precision keeps no modules)."""
        precision = params.get(f"{backend}/precision")
        return bool(precision and low_dtype(str(precision)) and not (backend == "tvm" and precision == "amp-fp16"))
