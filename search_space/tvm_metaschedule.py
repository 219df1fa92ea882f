"""Dimension ``tvm_metaschedule``: MetaSchedule's budget and which kernels get it.

A value is ``"off"`` (DLight only) or ``"<trials per task>@top<k>"``: the k kernels of highest
estimated cost (FLOPs times calls) are tuned with that many measured schedules each. One value
holds both numbers so that "off" is one candidate, not one per k. The tuning database persists
in the output dir, so a budget spent once is reused by every later trial and study.

On the CPU tuning is slow (minutes per kernel on two cores), so its budgets are smaller. Budgets
that cost minutes per candidate are searched only with ``--expensive``.
"""

from __future__ import annotations

from collections.abc import Sequence

from search_space.base import Choice, Dimension, SpaceContext

GPU_BUDGETS: tuple[str, ...] = ("off", "16@top2", "64@top2", "256@top2", "64@top8")
CPU_BUDGETS: tuple[str, ...] = ("off", "16@top2", "64@top2")
#: Budgets searched without ``--expensive``. Measured per candidate on the demo decoder: on the
#: H100 machine a static candidate took 414-431 s at 16@top2 and 300-380 s or more at 64@top2
#: (four study workers on 16 cores; MetaSchedule's evolutionary search dominates), against 10-45 s
#: untuned; on two CPU cores 64@top2 took 285-322 s and 16@top2 34-50 s. A spent budget is free
#: afterwards, but its first candidate pays in full. (``experiments/results/2026-11-25-h100-tune200.md``
#: and ``2026-11-25-cpu-tvm.md`` give the commands.) Those figures predate the smaller search
#: population (``backends._tvm_tuning.SMALL_BUDGET_POPULATION``), which halved the tuning time at
#: 16 and 64 on the CPU; the sets were not measured again.
GPU_QUICK_BUDGETS: tuple[str, ...] = ("off",)
CPU_QUICK_BUDGETS: tuple[str, ...] = ("off", "16@top2")


class TvmMetaScheduleDimension(Dimension):
    """``tvm/metaschedule``: the tuning budget."""

    name = "tvm_metaschedule"
    order = 42

    def choices(self, backend: str, ctx: SpaceContext) -> Sequence[Choice]:
        """The budgets of the study's device."""
        if backend != "tvm":
            return ()
        if ctx.device == "gpu":
            values = GPU_BUDGETS if ctx.expensive else GPU_QUICK_BUDGETS
        else:
            values = CPU_BUDGETS if ctx.expensive else CPU_QUICK_BUDGETS
        return (Choice("tvm/metaschedule", values, "MetaSchedule trials per task @ top-k tasks"),)
