"""Dimension ``tvm_cuda_graph``: capture the VM's static kernel sequences in CUDA graphs (GPU only).

Sets ``relax.backend.use_cuda_graph``, which ``RewriteCUDAGraph`` in the CUDA pipeline reads;
TVM's default, off, comes first.
"""

from __future__ import annotations

from collections.abc import Sequence

from search_space.base import Choice, Dimension, SpaceContext


class TvmCudaGraphDimension(Dimension):
    """``tvm/cuda_graph`` on the GPU."""

    name = "tvm_cuda_graph"
    order = 44

    def choices(self, backend: str, ctx: SpaceContext) -> Sequence[Choice]:
        """On or off, on the GPU; nothing on the CPU."""
        if backend != "tvm" or ctx.device != "gpu":
            return ()
        return (Choice("tvm/cuda_graph", (False, True), "launch kernels through CUDA graphs"),)
