"""Dimension ``cuda_graph``: replay eager and TorchScript models from CUDA graphs, on the GPU.

A small model's call is launch-bound: its time goes to the host issuing one kernel after another
(the demo decoder: 327 kernels over its test data in eager mode). Captured in a CUDA graph per
input shape (:mod:`tuner.runtime.cuda_graphs`), the same kernels are issued in one launch. TVM has its own
choice of this (``tvm/cuda_graph``) and Inductor its ``reduce-overhead`` mode; this one covers the
two torch backends that run the model's own kernels, eager and TorchScript. It is a wrapper
around the built model, not part of it (``torch/`` options, :mod:`tuner.runtime.switches`), so the
backends need not know it. Left out on the CPU (no CUDA graphs), for TensorFlow models (their
GPU path here is TVM through ONNX), and in studies created before it existed
(:attr:`~search_space.base.SpaceContext.cuda_graphs`).
"""

from __future__ import annotations

from collections.abc import Sequence

from search_space.base import Choice, Dimension, SpaceContext
from tuner.runtime.switches import CUDA_GRAPH

#: The backends whose built model is a torch callable that a CUDA graph can capture. Inductor is
#: not among them: its ``reduce-overhead`` mode is the same idea inside the compiler, and a
#: graph captured around one would nest captures.
BACKENDS: frozenset[str] = frozenset({"eager", "torchscript"})


class CudaGraphDimension(Dimension):
    """``torch/cuda_graph`` (off, on) for eager and TorchScript on the GPU."""

    name = "cuda_graph"
    order = 46

    def choices(self, backend: str, ctx: SpaceContext) -> Sequence[Choice]:
        """Plain calls (torch's default) or CUDA-graph replay; nothing off the GPU or for TF models."""
        if backend not in BACKENDS or ctx.device != "gpu" or ctx.framework != "torch" or not ctx.cuda_graphs:
            return ()
        return (Choice(CUDA_GRAPH, (False, True),
                       "replay the model from a CUDA graph captured per input shape (one launch per call)"),)
