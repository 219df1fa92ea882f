"""Dimension ``tvm_cublas``: matmuls by cuBLAS instead of TVM-generated kernels (GPU only).

TVM's wheel has no cuBLAS integration, so the dispatch goes through torch
(``backends/_tvm_library.py``); TVM's default, off, comes first.
"""

from __future__ import annotations

from collections.abc import Sequence

from search_space.base import Choice, Dimension, SpaceContext


class TvmCublasDimension(Dimension):
    """``tvm/cublas`` on the GPU."""

    name = "tvm_cublas"
    order = 43

    def choices(self, backend: str, ctx: SpaceContext) -> Sequence[Choice]:
        """On or off, on the GPU; nothing on the CPU."""
        if backend != "tvm" or ctx.device != "gpu":
            return ()
        return (Choice("tvm/cublas", (False, True), "dispatch matmuls to cuBLAS"),)
