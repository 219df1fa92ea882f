"""Dimension ``inductor_options``: torch.compile's mode and Inductor's kernel tuning.

On the CPU the CUDA-graph modes equal their graph-less twins and coordinate-descent tuning only
tunes Triton kernels, so those choices are left out there (fewer identical candidates).

Freezing (``torch._inductor.config.freezing``) treats the weights as constants: Inductor folds
them (batch norm into the convolution before it, for one) and may change their layout, which a
user's ``torch.compile`` call does not do (it is off by default). It applies to inference graphs,
compiled under ``torch.no_grad()`` as every build and measurement here is, and AOTInductor
compiles the artifact with it. It is a choice, not a default: on an H100 (torch 2.11, o2, fp16)
``reduce-overhead`` with freezing ran BERT-base at 27.5 ms against 4.7 without it, about the
time of Inductor without CUDA graphs (experiments/results/2026-12-06-h100-o2-real-run4.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from search_space.base import Choice, Dimension, SpaceContext

GPU_MODES: tuple[str, ...] = ("default", "reduce-overhead", "max-autotune-no-cudagraphs", "max-autotune")
#: GPU modes searched without ``--expensive``: on an H100 a max-autotune candidate of the demo
#: decoder ran for over 7 minutes (GEMM autotuning per static shape), against about 28 s for the
#: others, so 200 trials could not finish in any reasonable time with them in the default space
#: (``experiments/results/2026-11-24-h100-notes.md``).
GPU_QUICK_MODES: tuple[str, ...] = ("default", "reduce-overhead")
#: On the CPU max-autotune's C++ GEMM templates cost seconds (2-15 s seen on the demo).
CPU_MODES: tuple[str, ...] = ("default", "max-autotune-no-cudagraphs")
#: Inductor's freezing: off (torch's default) or on.
FREEZING = Choice("inductor/freezing", (False, True), "treat the weights as constants: fold them (batch norm "
                  "into convolutions) and choose their layout")


class InductorOptionsDimension(Dimension):
    """``inductor/mode``, ``inductor/coordinate_descent_tuning`` and ``inductor/freezing``."""

    name = "inductor_options"
    order = 40

    def choices(self, backend: str, ctx: SpaceContext) -> Sequence[Choice]:
        """The mode (all four on GPU), on GPU coordinate-descent tuning, and freezing where the study offers it."""
        if backend != "inductor":
            return ()
        gpu = ctx.device == "gpu"
        modes = (GPU_MODES if ctx.expensive else GPU_QUICK_MODES) if gpu else CPU_MODES
        return (
            Choice("inductor/mode", modes, "torch.compile mode"),
            Choice("inductor/coordinate_descent_tuning", (False, True) if gpu else (False,),
                   "tune Triton launch parameters by coordinate descent"),
            *((FREEZING,) if ctx.weights else ()),
        )
