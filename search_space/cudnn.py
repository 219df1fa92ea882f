"""Dimension ``cudnn``: cuDNN's benchmark mode for the torch backends, on the GPU, for conv models.

Without benchmark mode cuDNN picks each convolution's algorithm by heuristics; with it, the first
call of each input shape times every algorithm the convolution allows and keeps the fastest for
that shape (that first call lands in the compile time, :mod:`tuner.runtime.measure`). At fp32 the
heuristics' choice is often not the fastest: on a ResNet-18 the tuner's best TorchScript
candidates on an H200 ran at 3.1x the fp32 floor (``experiments/bench.py``; see
``experiments/results/2026-11-30-h200-notes.md``). The mode is a process-wide switch, set around
each call (:mod:`tuner.runtime.switches`), so the choice is offered for the backends whose convolutions
run through torch's cuDNN calls: eager, TorchScript and Inductor (whose convolutions are
``aten.convolution`` calls unless max-autotune's templates replace them). It is left out on the
CPU (no cuDNN) and for models without convolution modules (it would change nothing, and the
sampler would spend trials telling identical candidates apart).
"""

from __future__ import annotations

from collections.abc import Sequence

from search_space.base import Choice, Dimension, SpaceContext, torch_on_gpu
from tuner.runtime.switches import CUDNN_BENCHMARK


class CudnnDimension(Dimension):
    """``torch/cudnn_benchmark`` (off, on) for eager, TorchScript and Inductor."""

    name = "cudnn"
    order = 45

    def choices(self, backend: str, ctx: SpaceContext) -> Sequence[Choice]:
        """Benchmark mode off (torch's default) or on; nothing off the GPU or without convolutions."""
        if not torch_on_gpu(backend, ctx) or not ctx.convolutions:
            return ()
        return (Choice(CUDNN_BENCHMARK, (False, True),
                       "cuDNN benchmark mode: time every convolution algorithm per input shape, keep the fastest"),)
