"""Dimension ``torchscript_options``: how a model becomes TorchScript and what is done to it."""

from __future__ import annotations

from collections.abc import Sequence

from search_space.base import Choice, Dimension, SpaceContext


class TorchScriptOptionsDimension(Dimension):
    """``torchscript/method`` (script or trace), ``freeze`` and ``optimize_for_inference``."""

    name = "torchscript_options"
    order = 40

    def choices(self, backend: str, ctx: SpaceContext) -> Sequence[Choice]:
        """The three TorchScript choices; nothing for other backends."""
        if backend != "torchscript":
            return ()
        return (
            Choice("torchscript/method", ("script", "trace"), "torch.jit.script or torch.jit.trace"),
            Choice("torchscript/freeze", (True, False), "torch.jit.freeze (inline weights, fold constants)"),
            Choice("torchscript/optimize_for_inference", (False, True),
                   "torch.jit.optimize_for_inference (freezes, then conv/bn folding, MKLDNN layouts)"),
        )
