"""Dimension ``fused_attention``: SDPA's math backend off for the torch backends, on the GPU.

torch's ``scaled_dot_product_attention`` picks a kernel per call: cuDNN's fused one, flash,
memory-efficient, or the math backend, which runs 16-bit inputs in fp32 as separate GEMMs. Inside
CUDA graphs and under ``torch.compile`` an fp16 ViT-B/16's attention took the math backend on an
H100, though eager's own calls took cuDNN's (:mod:`tuner.runtime.switches` says how much it
cost). With the switch on, the math backend is off: the attention runs fused, or the candidate
fails and the sampler learns to leave it. Offered for models with attention modules
(:attr:`~search_space.base.SpaceContext.attention`), on the GPU.
"""

from __future__ import annotations

from collections.abc import Sequence

from search_space.base import Choice, Dimension, SpaceContext
from tuner.runtime.switches import FUSED_ATTENTION

#: The backends whose attention is torch's SDPA call.
BACKENDS: frozenset[str] = frozenset({"eager", "torchscript", "inductor"})


class FusedAttentionDimension(Dimension):
    """``torch/fused_attention`` (off, on) for eager, TorchScript and Inductor on the GPU."""

    name = "fused_attention"
    order = 48

    def choices(self, backend: str, ctx: SpaceContext) -> Sequence[Choice]:
        """SDPA as torch picks (its default) or fused kernels only; only for attention models on the GPU."""
        if backend not in BACKENDS or ctx.device != "gpu" or ctx.framework != "torch" or not ctx.attention:
            return ()
        return (Choice(FUSED_ATTENTION, (False, True),
                       "attention on SDPA's fused kernels only (its math backend computes fp16 in fp32)"),)
