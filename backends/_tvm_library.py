"""Library dispatch for ``tvm``: matmuls run by the vendor BLAS (cuBLAS on the GPU) through torch.

The ``apache-tvm`` wheel is built without cuBLAS (``relax.ext.cublas`` and
``tvm.contrib.cublas.matmul`` are absent), so TVM's own ``partition_for_cublas`` cannot run here.
Instead :class:`DispatchMatmulToTorch` rewrites every floating-point ``R.matmul`` into a
destination-passing call of the packed function :data:`MATMUL_FUNC`, which this module registers:
it views TVM's buffers as torch tensors through DLPack (no copies) and calls ``torch.matmul``
with ``out=``, i.e. cuBLAS on a CUDA device and the CPU BLAS on the host. Both run on the legacy
default stream, as TVM's VM does, so the kernels stay ordered.

An artifact compiled with this dispatch calls :data:`MATMUL_FUNC` by name; the ``tvm`` backend's
loader registers it (importing this module) before it runs the library.

This module defines no backend; importing it registers nothing but the packed function.
"""

from __future__ import annotations

import functools
from typing import Any

#: Name of the packed function the rewritten matmuls call.
MATMUL_FUNC = "compile_tuner.torch_matmul"

_registered = False


def _torch_matmul(a: Any, b: Any, out: Any) -> None:
    """``out = a @ b`` by torch on TVM's buffers (DLPack views, no copies)."""
    import torch
    from torch.utils.dlpack import from_dlpack

    torch.matmul(from_dlpack(a), from_dlpack(b), out=from_dlpack(out))


def register() -> None:
    """Register :data:`MATMUL_FUNC` with TVM (idempotent)."""
    global _registered
    if _registered:
        return
    import tvm

    tvm.register_global_func(MATMUL_FUNC, _torch_matmul, override=True)
    _registered = True


@functools.cache
def _make_mutator() -> Any:
    import tvm
    from tvm import relax
    from tvm.relax.expr_functor import PyExprMutator, mutator

    matmul = tvm.ir.Op.get("relax.matmul")

    @mutator
    class _Rewriter(PyExprMutator):  # type: ignore[misc]
        def visit_call_(self, call: Any) -> Any:  # noqa: N802 - TVM's visitor naming
            call = self.builder_.normalize(super().visit_call_(call))
            if not call.op.same_as(matmul):
                return call
            sinfo = call.ty
            dtypes = {str(arg.ty.dtype) for arg in call.args} | {str(sinfo.dtype)}
            # Float matmuls only (torch.matmul has no integer GEMM on CUDA), operands of rank >= 2.
            if not dtypes <= {"float32", "float16", "bfloat16"} or len(dtypes) != 1:
                return call
            if any(arg.ty.ndim < 2 for arg in call.args):
                return call
            return relax.call_dps_packed(MATMUL_FUNC, relax.Tuple(list(call.args)), sinfo)

    return _Rewriter


def dispatch_module(mod: Any) -> Any:
    """Rewrite the float matmuls of every Relax function of ``mod`` into :data:`MATMUL_FUNC` calls.

    Args:
        mod: A Relax ``IRModule`` (before legalization).

    Returns:
        The rewritten module.
    """
    from tvm import relax

    register()
    rewriter = _make_mutator()(mod)
    for gvar, func in list(mod.functions_items()):
        if isinstance(func, relax.Function):
            rewriter.builder_.update_func(gvar, rewriter.visit_expr(func))
    return rewriter.builder_.get()


def DispatchMatmulToTorch() -> Any:  # noqa: N802 - named like TVM's pass constructors
    """The module pass form of :func:`dispatch_module`.

    Returns:
        A ``tvm.transform`` module pass.
    """
    import tvm

    @tvm.transform.module_pass(opt_level=0, name="DispatchMatmulToTorch")  # type: ignore[untyped-decorator]
    def _pass(mod: Any, _ctx: Any) -> Any:
        return dispatch_module(mod)

    return _pass


__all__ = ["MATMUL_FUNC", "DispatchMatmulToTorch", "dispatch_module", "register"]
