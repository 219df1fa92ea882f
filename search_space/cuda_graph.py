"""Dimension ``cuda_graph``: replay eager, TorchScript and Inductor models from CUDA graphs, on the GPU.

A small model's call is launch-bound: its time goes to the host issuing one kernel after another
(the demo decoder: 327 kernels over its test data in eager mode). Captured in a CUDA graph per
input shape (:mod:`tuner.runtime.cuda_graphs`), the same kernels are issued in one launch. TVM has its own
choice of this (``tvm/cuda_graph``). It is a wrapper around the built model, not part of it
(``torch/`` options, :mod:`tuner.runtime.switches`), so the backends need not know it.

Inductor's ``reduce-overhead`` mode captures graphs too, behind Dynamo's guards and its graph
trees' bookkeeping: on an H100 the demo decoder ran at 0.59 ms per call in that mode and at 0.26
ms captured by hand (experiments/results/2026-11-24-h100-notes.md). So Inductor's graph-less
modes get this choice as well, which captures Inductor's fused kernels in a plain graph; its
graphed modes do not (:data:`~tuner.runtime.cuda_graphs.COMPILER_GRAPHED_MODES`: captures would
nest). Left out on the CPU (no CUDA graphs), for TensorFlow models (their GPU path here is TVM
through ONNX), and in studies created before it existed (:attr:`~search_space.base.SpaceContext.cuda_graphs`,
:attr:`~search_space.base.SpaceContext.inductor_graphs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from search_space.base import Choice, Dimension, SpaceContext, torch_on_gpu
from tuner.runtime.cuda_graphs import COMPILER_GRAPHED_MODES
from tuner.runtime.switches import CUDA_GRAPH


class CudaGraphDimension(Dimension):
    """``torch/cuda_graph`` (off, on) for eager, TorchScript and Inductor's graph-less modes on the GPU."""

    name = "cuda_graph"
    order = 46  # after inductor_options (its mode decides whether this is asked)

    def choices(self, backend: str, ctx: SpaceContext) -> Sequence[Choice]:
        """Plain calls (torch's default) or CUDA-graph replay; nothing off the GPU or for TF models."""
        if not torch_on_gpu(backend, ctx) or not ctx.cuda_graphs:
            return ()
        if backend == "inductor" and not ctx.inductor_graphs:
            return ()
        return (Choice(CUDA_GRAPH, (False, True),
                       "replay the model from a CUDA graph captured per input shape (one launch per call)"),)

    def asked(self, backend: str, params: dict[str, Any]) -> bool:
        """Not after an Inductor mode that replays graphs of its own."""
        return params.get(f"{backend}/mode") not in COMPILER_GRAPHED_MODES
