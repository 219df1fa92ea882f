"""Dimension ``precision``: o1 keeps fp32 (TF32 off); o2 adds TF32, fp16 and bf16 casts and autocast.

At o2 fp16 and bf16 come both as whole-model casts and under autocast (``amp-``; TVM runs its own
mixed-precision pass instead).

fp16 is left out on the CPU, where most kernels lack it and it only runs slower.
"""

from __future__ import annotations

from collections.abc import Sequence

from search_space.base import Choice, Dimension, SpaceContext


def precisions_for(ctx: SpaceContext) -> tuple[str, ...]:
    """The precisions a study's level and device allow."""
    if ctx.level == "o1":
        return ("fp32",)
    casts = ("fp32", "tf32", "fp16", "bf16") if ctx.device == "gpu" else ("fp32", "bf16")
    if not ctx.mixed:
        return casts
    return (*casts, "amp-fp16", "amp-bf16") if ctx.device == "gpu" else (*casts, "amp-bf16")


def precisions_of(backend: str, ctx: SpaceContext) -> tuple[str, ...]:
    """The precisions searched for ``backend``: the level's and device's that the backend supports."""
    from backends import backend_class

    supported = backend_class(backend).precisions
    return tuple(p for p in precisions_for(ctx) if supported is None or p in supported)


class PrecisionDimension(Dimension):
    """``<backend>/precision`` over the level's precisions (every backend)."""

    name = "precision"
    order = 20
    field = "precision"

    def choices(self, backend: str, ctx: SpaceContext) -> Sequence[Choice]:
        """One choice over the allowed precisions."""
        return (Choice(f"{backend}/precision", precisions_of(backend, ctx), "numeric precision"),)
