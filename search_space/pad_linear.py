"""Dimension ``pad_linear``: Linear layers of unaligned width padded to an aligned one, on the GPU.

cuBLAS runs a GEMM on its fast tensor-core kernels only where the output width is a multiple of
8; a layer with another width (GPT-2's 50257-token LM head) gets an older, slower kernel in every
backend that calls cuBLAS, ``torch.compile`` included. The padded layer computes the same values
(:mod:`tuner.runtime.padding`). It is applied to the model before the backend builds it
(:func:`tuner.runtime.models.in_precision`), so the artifacts carry it. Offered only where the
model has such a layer (:attr:`~search_space.base.SpaceContext.unaligned_linears`), on the GPU.
"""

from __future__ import annotations

from collections.abc import Sequence

from search_space.base import Choice, Dimension, SpaceContext, torch_on_gpu
from tuner.runtime.models import PAD_LINEAR


class PadLinearDimension(Dimension):
    """``layout/pad_linear`` (off, on) for eager, TorchScript and Inductor on the GPU."""

    name = "pad_linear"
    order = 47

    def choices(self, backend: str, ctx: SpaceContext) -> Sequence[Choice]:
        """The layers as given, or padded; only for models with an unaligned Linear layer, on the GPU."""
        if not torch_on_gpu(backend, ctx) or not ctx.unaligned_linears:
            return ()
        return (Choice(PAD_LINEAR, (False, True),
                       "pad Linear layers of unaligned width so that cuBLAS runs them on its fast kernels"),)
