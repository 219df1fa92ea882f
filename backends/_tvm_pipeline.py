"""The Relax compilation pipeline assembled from a candidate's choices, and the TVM targets.

TVM's default pipelines (``tvm/relax/backend/{cuda,cpu_generic}/pipeline.py``) are four stages:
library dispatch, legalization (LegalizeOps, FuseOps, FuseTIR, DLight), dataflow lowering and
finalization. Here the same stages are built from :class:`PipelineOptions`, and split in two so
that MetaSchedule can tune the fused kernels between them:

* :func:`prepare_passes`: library dispatch, pattern fusion, legalization, operator fusion; what
  comes out holds the PrimFuncs that MetaSchedule extracts as tasks;
* :func:`finish_pipeline`: tuned schedules from the database, DLight rules for the rest, lowering
  and finalization (CUDA-graph rewriting where ``relax.backend.use_cuda_graph`` is set).

This module defines no backend; importing it registers nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from tuner.core.devices import usable_cores

#: DLight rules per device, by name (``tvm.s_tir.dlight.gpu.<Name>`` / ``.cpu.<Name>``). Tests add
#: rules here (a rule that crashes, say) to inject faults.
GPU_RULES: tuple[str, ...] = ("Matmul", "GEMV", "LowBatchGEMV", "Reduction", "GeneralReduction", "Transpose",
                              "RMSNorm", "Fallback")
CPU_RULES: tuple[str, ...] = ("GEMV", "Reduction")
#: Extra rules registered at run time: name -> factory (used by the tests' fault injection).
EXTRA_RULES: dict[str, Callable[[], Any]] = {}

#: The rule set of TVM's default CUDA pipeline; on the CPU TVM's default pipeline applies none.
DEFAULT_GPU_RULES = "Matmul,GEMV,Reduction,GeneralReduction,Fallback"
DEFAULT_CPU_RULES = "none"


@dataclasses.dataclass(frozen=True)
class PipelineOptions:
    """What a ``tvm`` candidate chooses about the pipeline.

    Attributes:
        fuse_ops: Run FuseOps + FuseTIR (operator fusion); off, every operator is its own kernel.
        fuse_patterns: Run Relax's pattern fusions first (FuseTransposeMatmul,
            CombineParallelMatmul).
        dlight: Comma-separated DLight rule names in the order they are tried, or ``"none"``.
        library: Dispatch matmuls to the vendor BLAS through torch (cuBLAS on the GPU).
        cuda_graph: Capture the static parts of the VM program in CUDA graphs (GPU only).
    """

    fuse_ops: bool = True
    fuse_patterns: bool = False
    dlight: str = DEFAULT_CPU_RULES
    library: bool = False
    cuda_graph: bool = False

    def rule_names(self) -> tuple[str, ...]:
        """The DLight rule names, in order (empty for ``"none"``)."""
        if self.dlight in ("", "none"):
            return ()
        return tuple(n.strip() for n in self.dlight.split(",") if n.strip())


def gpu_target(arch: str | None = None) -> Any:
    """The CUDA target of the current GPU, with what MetaSchedule needs to know about it.

    Args:
        arch: ``sm_XY``; by default read from ``torch.cuda.get_device_capability()``.

    Returns:
        A ``tvm.target.Target`` (``cuda`` with an ``llvm`` host).
    """
    import torch
    import tvm

    if arch is None:
        major, minor = torch.cuda.get_device_capability()
        arch = f"sm_{major}{minor}"
        props = torch.cuda.get_device_properties(0)
        smem = int(getattr(props, "shared_memory_per_block", 49152))
    else:
        smem = 49152
    # MetaSchedule on CUDA refuses a target without these three.
    return tvm.target.Target({"kind": "cuda", "arch": arch, "max_threads_per_block": 1024,
                              "max_shared_memory_per_block": smem, "thread_warp_size": 32,
                              "host": {"kind": "llvm"}})


def cpu_target() -> Any:
    """The LLVM target of this host, with its core count (TVM's thread pool uses it).

    Returns:
        A ``tvm.target.Target``.
    """
    import tvm

    return tvm.target.Target({"kind": "llvm", "num-cores": usable_cores()})


def target_for(device: str) -> Any:
    """The target of ``device`` (``"cpu"`` or ``"gpu"``)."""
    return gpu_target() if device == "gpu" else cpu_target()


def dlight_rules(names: tuple[str, ...], device: str) -> list[Any]:
    """Instantiate DLight rules by name.

    Args:
        names: Rule names, in order.
        device: ``"cpu"`` or ``"gpu"`` (which rule family).

    Returns:
        The rule objects.

    Raises:
        ValueError: For a name that is no rule of that device's family.
    """
    from tvm.s_tir import dlight

    family, known = (dlight.gpu, GPU_RULES) if device == "gpu" else (dlight.cpu, CPU_RULES)
    rules = []
    for name in names:
        if name in EXTRA_RULES:
            rules.append(EXTRA_RULES[name]())
        elif name in known:
            rules.append(getattr(family, name)())
        else:
            raise ValueError(f"tvm/dlight rule {name!r} is not one of {device} rules {known}")
    return rules


def prepare_passes(opts: PipelineOptions) -> list[Any]:
    """Passes up to and including operator fusion (the module MetaSchedule extracts tasks from).

    Args:
        opts: The candidate's pipeline choices.

    Returns:
        The passes, in order.
    """
    from tvm import relax

    from backends._tvm_library import DispatchMatmulToTorch

    passes: list[Any] = [relax.backend.DispatchSampling(), relax.backend.DispatchSortScan()]
    if opts.library:
        passes.append(DispatchMatmulToTorch())
    if opts.fuse_patterns:
        passes += [relax.transform.CombineParallelMatmul(), relax.transform.FuseTransposeMatmul()]
    passes += [relax.transform.LegalizeOps(), relax.transform.AnnotateTIROpPattern(),
               relax.transform.FoldConstant()]
    if opts.fuse_ops:
        passes += [relax.transform.FuseOps(), relax.transform.FuseTIR()]
    return passes


def prepare(mod: Any, opts: PipelineOptions, target: Any) -> Any:
    """Run :func:`prepare_passes` on ``mod`` under ``target``.

    Args:
        mod: The imported ``IRModule``.
        opts: The candidate's pipeline choices.
        target: The target.

    Returns:
        The fused, legalized module.
    """
    import tvm

    with target:
        return tvm.transform.Sequential(prepare_passes(opts))(mod)


def finish_pipeline(opts: PipelineOptions, device: str, database: Any | None) -> Any:
    """The rest of the pipeline: schedules (database, then DLight), lowering and finalization.

    Args:
        opts: The candidate's pipeline choices.
        device: ``"cpu"`` or ``"gpu"``.
        database: A MetaSchedule database whose records are applied first, or None.

    Returns:
        A module pass for ``tvm.compile(..., relax_pipeline=...)``.

    Raises:
        ValueError: For an unknown DLight rule.
    """
    import tvm
    from tvm import relax
    from tvm.s_tir import dlight

    rules = dlight_rules(opts.rule_names(), device)
    if device == "gpu":
        from tvm.relax.backend.cuda import pipeline as stages
    else:
        from tvm.relax.backend.cpu_generic import pipeline as stages

    @tvm.transform.module_pass(opt_level=0, name="TunerFinishPipeline")  # type: ignore[untyped-decorator]
    def _pipeline(mod: Any, _ctx: Any) -> Any:
        target = tvm.target.Target.current(allow_none=False)
        passes: list[Any] = []
        if database is not None:
            passes.append(relax.transform.MetaScheduleApplyDatabase(enable_warning=False))
        if rules:
            passes.append(dlight.ApplyDefaultSchedule(*rules))
        passes += stages.dataflow_lower_passes(target) + stages.finalize_passes(target)
        seq = tvm.transform.Sequential(passes)
        if database is not None:
            with database:
                return seq(mod)
        return seq(mod)

    return _pipeline


def compile_prepared(mod: Any, opts: PipelineOptions, device: str, target: Any, database: Any | None) -> Any:
    """``tvm.compile`` a prepared module with the rest of the pipeline.

    Args:
        mod: What :func:`prepare` returned.
        opts: The candidate's pipeline choices.
        device: ``"cpu"`` or ``"gpu"``.
        target: The target.
        database: Tuning records to apply, or None.

    Returns:
        The ``relax.VMExecutable``.

    Raises:
        Exception: Whatever TVM raises (a DLight rule that fails on a kernel, say).
    """
    import tvm

    config = {"relax.backend.use_cuda_graph": bool(opts.cuda_graph and device == "gpu")}
    with tvm.transform.PassContext(opt_level=3, config=config), target:
        return tvm.compile(mod, target=target, relax_pipeline=finish_pipeline(opts, device, database))


__all__ = ["CPU_RULES", "DEFAULT_CPU_RULES", "DEFAULT_GPU_RULES", "EXTRA_RULES", "GPU_RULES", "PipelineOptions",
           "compile_prepared", "cpu_target", "dlight_rules", "finish_pipeline", "gpu_target", "prepare",
           "prepare_passes", "target_for", "usable_cores"]
