"""Dimension ``inductor_options``: torch.compile's mode and Inductor's kernel tuning.

On the CPU the CUDA-graph modes equal their graph-less twins and coordinate-descent tuning only
tunes Triton kernels, so those choices are left out there (fewer identical candidates).
"""

from __future__ import annotations

from collections.abc import Sequence

from search_space.base import Choice, Dimension, SpaceContext

GPU_MODES: tuple[str, ...] = ("default", "reduce-overhead", "max-autotune-no-cudagraphs", "max-autotune")
CPU_MODES: tuple[str, ...] = ("default", "max-autotune-no-cudagraphs")


class InductorOptionsDimension(Dimension):
    """``inductor/mode`` and ``inductor/coordinate_descent_tuning``."""

    name = "inductor_options"
    order = 40

    def choices(self, backend: str, ctx: SpaceContext) -> Sequence[Choice]:
        """The mode (all four on GPU) and, on GPU, coordinate-descent tuning."""
        if backend != "inductor":
            return ()
        gpu = ctx.device == "gpu"
        return (
            Choice("inductor/mode", GPU_MODES if gpu else CPU_MODES, "torch.compile mode"),
            Choice("inductor/coordinate_descent_tuning", (False, True) if gpu else (False,),
                   "tune Triton launch parameters by coordinate descent"),
        )
