"""Dimension ``tvm_dispatch``: how a GPU module's kernels run (GPU only).

One choice of three, because two of the combinations cannot be built together:

* ``kernels``: TVM's generated kernels, launched one by one (TVM's default, first);
* ``cublas``: matmuls by cuBLAS instead of generated kernels. TVM's wheel has no cuBLAS
  integration, so the dispatch goes through torch (``backends/_tvm_library.py``);
* ``cuda_graph``: the VM's static kernel sequences captured in CUDA graphs
  (``relax.backend.use_cuda_graph``, read by ``RewriteCUDAGraph``).

cuBLAS through torch cannot run inside TVM's CUDA graph (torch's call is not captured on TVM's
stream; seen on an H100 as CUBLAS_STATUS_INTERNAL_ERROR). As two on/off choices that pair was a
quarter of the tvm space and 13 of the first 46 trials of a GPU study were spent refusing it.
The candidate keeps the backend's two options, ``tvm/cublas`` and ``tvm/cuda_graph``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna

from search_space.base import Choice, Dimension, SpaceContext

DISPATCH: tuple[str, ...] = ("kernels", "cublas", "cuda_graph")


class TvmDispatchDimension(Dimension):
    """``tvm/dispatch`` on the GPU, decoded into ``tvm/cublas`` and ``tvm/cuda_graph``."""

    name = "tvm_dispatch"
    order = 43

    def choices(self, backend: str, ctx: SpaceContext) -> Sequence[Choice]:
        """The three dispatch modes, on the GPU; nothing on the CPU."""
        if backend != "tvm" or ctx.device != "gpu":
            return ()
        return (Choice("tvm/dispatch", DISPATCH, "generated kernels, cuBLAS matmuls, or CUDA graphs"),)

    def suggest(self, trial: optuna.trial.BaseTrial, backend: str, ctx: SpaceContext) -> dict[str, Any]:
        """Suggest the dispatch mode and return it as the backend's two options.

        Args:
            trial: The trial (a ``FixedTrial`` when rebuilding a stored config).
            backend: The chosen backend.
            ctx: The study's fixed context.

        Returns:
            ``{"tvm/cublas": bool, "tvm/cuda_graph": bool}`` on the GPU, else nothing.
        """
        mode = super().suggest(trial, backend, ctx).get("tvm/dispatch")
        if mode is None:
            return {}
        return {"tvm/cublas": mode == "cublas", "tvm/cuda_graph": mode == "cuda_graph"}
