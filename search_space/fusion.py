"""Dimension ``fusion``: how operators are grouped into kernels.

Inductor: its scheduler's fusion options, applied with ``torch._inductor.config.patch`` (the keys
are Inductor's own; a test checks that each exists). TorchScript: which JIT fuser runs (``none``,
or NNC, ``fuser1``). TVM: operator fusion (FuseOps + FuseTIR) on or off, and Relax's pattern
fusions (parallel matmuls combined, transposes folded into matmuls) before it. TensorFlow:
Grappler's remapper (``tf_graph``: MatMul+BiasAdd+activation into one fused op) on or off, and
how ``tf_xla`` groups ops into XLA clusters: the whole graph as one (``jit_compile``), or XLA
auto-clustering with a minimum cluster size (``auto<N>``: clusters of fewer than N ops stay in
TensorFlow; TF's default is 4).
"""

from __future__ import annotations

from collections.abc import Sequence

from search_space.base import Choice, Dimension, SpaceContext

#: Inductor config keys and the values searched; Inductor's default is listed first.
INDUCTOR_FUSION: tuple[Choice, ...] = (
    # Largest number of nodes one fused kernel may hold (default 64).
    Choice("inductor/max_fusion_size", (64, 8, 256), "largest fused group"),
    # Fuse pointwise epilogues into matmul/conv templates.
    Choice("inductor/epilogue_fusion", (True, False), "fuse epilogues into templates"),
    # Fuse nodes even when they share no memory access.
    Choice("inductor/aggressive_fusion", (False, True), "fuse without shared reads"),
    # Pattern-matcher rewrites (e.g. fused attention, mm+bias) before fusion.
    Choice("inductor/pattern_matcher", (True, False), "pattern rewrites"),
)

#: TorchScript fusers (``torch.jit.fuser`` names): none, or NNC (tensor-expression fuser). NNC
#: generates CPU code only through LLVM, which PyTorch's released wheels leave out, so on the CPU
#: it would only ever fail: it is searched on the GPU.
TORCHSCRIPT_FUSERS: dict[str, tuple[str, ...]] = {"gpu": ("none", "fuser1"), "cpu": ("none",)}


#: TVM's fusion passes; TVM's default pipeline (FuseOps on, no pattern fusion) first.
TVM_FUSION: tuple[Choice, ...] = (
    Choice("tvm/fuse_ops", (True, False), "FuseOps + FuseTIR: fuse operators into kernels"),
    Choice("tvm/fuse_patterns", (False, True), "CombineParallelMatmul + FuseTransposeMatmul first"),
)


#: Grappler's remapper (op fusion) for ``tf_graph``.
TF_GRAPH_FUSION = Choice("tf_graph/remapping", ("on", "off"), "Grappler remapper: fuse MatMul/Conv with bias "
                         "and activation")
#: ``tf_xla``'s clustering: whole-graph jit_compile first, then auto-clustering by minimum cluster size
#: (``--tf_xla_min_cluster_size``; TF's default 4 first among them).
TF_XLA_CLUSTERING = Choice("tf_xla/clustering", ("jit_compile", "auto4", "auto2", "auto8", "auto16", "auto64"),
                           "XLA: whole graph (jit_compile) or auto-clustering with this minimum cluster size")


class FusionDimension(Dimension):
    """Fusion choices of the backends that expose them."""

    name = "fusion"
    order = 30

    def choices(self, backend: str, ctx: SpaceContext) -> Sequence[Choice]:
        """Inductor's fusion options, or TorchScript's fuser; nothing for other backends."""
        if backend == "inductor":
            return INDUCTOR_FUSION
        if backend == "tvm":
            return TVM_FUSION
        if backend == "tf_graph":
            return (TF_GRAPH_FUSION,)
        if backend == "tf_xla":
            return (TF_XLA_CLUSTERING,)
        if backend == "torchscript":
            return (Choice("torchscript/fuser", TORCHSCRIPT_FUSERS[ctx.device], "JIT fuser"),)
        return ()

