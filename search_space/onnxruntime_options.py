"""Dimension ``onnxruntime_options``: ONNX Runtime's graph optimization level and execution provider.

The level's default (``all``) comes first. The providers are those the installed ONNX Runtime
offers for the study's device (fixed when the study is created: Optuna needs fixed choices).
"""

from __future__ import annotations

from collections.abc import Sequence

from search_space.base import Choice, Dimension, SpaceContext
from tuner.runtime.onnx_providers import providers_for

LEVELS: tuple[str, ...] = ("all", "extended", "basic", "disabled")


class OnnxRuntimeOptionsDimension(Dimension):
    """``onnxruntime/graph_optimization_level`` and ``onnxruntime/execution_provider``."""

    name = "onnxruntime_options"
    order = 40

    def choices(self, backend: str, ctx: SpaceContext) -> Sequence[Choice]:
        """The two choices, for ``onnxruntime``; nothing for other backends."""
        if backend != "onnxruntime":
            return ()
        return (
            Choice("onnxruntime/graph_optimization_level", LEVELS, "ONNX Runtime graph optimizations"),
            Choice("onnxruntime/execution_provider", providers_for(ctx.device) or ("CPUExecutionProvider",),
                   "execution provider"),
        )
