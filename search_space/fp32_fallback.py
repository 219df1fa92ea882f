"""Dimension ``fp32_fallback``: the share of modules a 16-bit candidate keeps in fp32.

BladeDISC's ``fp16_fallback_op_ratio``: the weighted modules with the largest local error in the
low precision (:mod:`tuner.runtime.fallback` ranks them on the test data) run in fp32. Asked only
of candidates whose precision is 16-bit, and only in studies that offer mixed precision
(:attr:`~search_space.base.SpaceContext.mixed`); for PyTorch models, where modules exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from search_space.base import Choice, Dimension, SpaceContext
from search_space.precision import precisions_of
from tuner.core.workload import Workload
from tuner.runtime.fallback import FP32_FALLBACK, keeps_modules
from tuner.runtime.precision import low_dtype

#: Shares searched: none, the worst few, a fifth.
SHARES: tuple[float, ...] = (0.0, 0.05, 0.2)


def refused_shares(workload: Workload) -> dict[str, tuple[float, ...]]:
    """The shares left out for a model whose modules cannot be kept in fp32 (a TorchScript model).

    :func:`tuner.runtime.fallback.fp32_modules` keeps none of such a model's modules, so every
    share would build the same candidate.
    """
    if workload.framework == "torch" and not keeps_modules(workload.model):
        return {FP32_FALLBACK: SHARES[1:]}
    return {}


class Fp32FallbackDimension(Dimension):
    """``precision/fp32_fallback`` over :data:`SHARES`, for 16-bit candidates of PyTorch models."""

    name = "fp32_fallback"
    order = 22

    def choices(self, backend: str, ctx: SpaceContext) -> Sequence[Choice]:
        """The shares, where the study offers mixed precision and the backend a 16-bit precision."""
        if not ctx.mixed or ctx.framework != "torch" or not any(low_dtype(p) for p in precisions_of(backend, ctx)):
            return ()
        return (Choice(FP32_FALLBACK, SHARES, "share of weighted modules kept in fp32, largest local error first"),)

    def asked(self, backend: str, params: dict[str, Any]) -> bool:
        """Only after a 16-bit precision that the model computes in (not one the backend computes itself)."""
        from backends import backend_class

        precision = str(params.get(f"{backend}/precision", ""))
        return bool(low_dtype(precision)) and precision not in backend_class(backend).own_precisions
