"""Dimension ``tvm_dlight``: which DLight rules schedule the kernels MetaSchedule did not tune, in order.

On the GPU every kernel needs a schedule that binds it to threads, so each rule set ends in
``Fallback``; the sets are the subsets of TVM's default rules (Matmul, GEMV, Reduction,
GeneralReduction) in the default order, plus two reorderings. On the CPU TVM's default applies
no rule at all (LLVM compiles the loops as they are); the CPU rules are GEMV and Reduction.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from search_space.base import Choice, Dimension, SpaceContext

#: The rules of TVM's default CUDA pipeline that the GPU sets are drawn from, in its order.
GPU_BASE: tuple[str, ...] = ("Matmul", "GEMV", "Reduction", "GeneralReduction")


def gpu_rule_sets() -> tuple[str, ...]:
    """The GPU rule sets: TVM's default first, then every subset in order, then two reorderings."""
    sets = []
    for n in range(len(GPU_BASE), -1, -1):
        for subset in itertools.combinations(GPU_BASE, n):
            sets.append(",".join((*subset, "Fallback")))
    sets += ["GEMV,Matmul,Reduction,GeneralReduction,Fallback", "Matmul,GEMV,GeneralReduction,Reduction,Fallback"]
    return tuple(sets)


#: CPU rule sets; TVM's default CPU pipeline (no rule) first.
CPU_RULE_SETS: tuple[str, ...] = ("none", "GEMV,Reduction", "Reduction,GEMV", "GEMV", "Reduction")


class TvmDlightDimension(Dimension):
    """``tvm/dlight``: the DLight rule set."""

    name = "tvm_dlight"
    order = 41

    def choices(self, backend: str, ctx: SpaceContext) -> Sequence[Choice]:
        """The rule sets of the study's device."""
        if backend != "tvm":
            return ()
        values = gpu_rule_sets() if ctx.device == "gpu" else CPU_RULE_SETS
        return (Choice("tvm/dlight", values, "DLight rules tried in order on each untuned kernel"),)
