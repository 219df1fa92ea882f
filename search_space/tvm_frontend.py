"""Dimension ``tvm_frontend``: how a model reaches TVM Relax.

PyTorch models can be imported through ``torch.export`` (TVM's ``from_exported_program``) or
through ONNX (``torch.onnx.export`` and TVM's ONNX importer, the route TensorFlow models take);
the two importers produce different Relax graphs. A TensorFlow workload reaches TVM through ONNX
only.
"""

from __future__ import annotations

from collections.abc import Sequence

from search_space.base import Choice, Dimension, SpaceContext


class TvmFrontendDimension(Dimension):
    """``tvm/frontend``."""

    name = "tvm_frontend"
    order = 40

    def choices(self, backend: str, ctx: SpaceContext) -> Sequence[Choice]:
        """``torch.export`` and ``onnx`` for PyTorch workloads, ``onnx`` for the others."""
        if backend != "tvm":
            return ()
        values = ("torch.export", "onnx") if ctx.framework == "torch" else ("onnx",)
        return (Choice("tvm/frontend", values, "importer: torch.export or ONNX"),)
