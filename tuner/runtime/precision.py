"""Numeric precision of a candidate: TF32 flags and low-precision casting.

Level ``o1`` keeps float32 semantics (TF32 off everywhere); ``o2`` may also search TF32, fp16 and
bf16, each judged against the fp32 reference under the looser o2 tolerance.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

#: dtype each low precision casts floating inputs and weights to.
DTYPES: dict[str, torch.dtype] = {"fp16": torch.float16, "bf16": torch.bfloat16}


def tf32_flags() -> tuple[bool, bool]:
    """TF32 for matmuls and for cuDNN's convolutions, as they are now (torch's defaults differ: cuDNN's on)."""
    return bool(torch.backends.cuda.matmul.allow_tf32), bool(torch.backends.cudnn.allow_tf32)


def set_tf32(enabled: bool | tuple[bool, bool]) -> None:
    """Set TF32 for the whole process (builds leave it off; :mod:`tuner.runtime.switches` turns it on per call).

    Args:
        enabled: One value for both flags, or ``(matmul, cudnn)`` as :func:`tf32_flags` gives them.
    """
    matmul, cudnn = (enabled, enabled) if isinstance(enabled, bool) else enabled
    torch.backends.cuda.matmul.allow_tf32 = matmul
    torch.backends.cudnn.allow_tf32 = cudnn


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """Turn TF32 matmuls and convolutions on or off for the duration (restored afterwards)."""
    old = tf32_flags()
    set_tf32(enabled)
    try:
        yield
    finally:
        set_tf32(old)


class CastWrapper(nn.Module):
    """Runs ``model`` in a low precision: floating inputs are cast down, outputs cast back to fp32.

    The wrapper keeps the model's signature and output structure, so it can stand in for the
    model in every backend (scripted, traced, compiled or exported).
    """

    def __init__(self, model: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.model = model.to(dtype)
        self.dtype = dtype

    def forward(self, *args: Any) -> Any:
        """Run the model in the low precision; floating outputs come back as fp32."""
        cast = [a.to(self.dtype) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args]
        out = self.model(*cast)
        return torch.utils._pytree.tree_map(
            lambda t: t.float() if isinstance(t, torch.Tensor) and t.is_floating_point() else t, out
        )


def apply_precision(model: nn.Module, precision: str) -> nn.Module:
    """The model as it runs in ``precision`` (a copy where weights change; the original is kept).

    Args:
        model: The user's model (eval mode).
        precision: ``fp32``, ``tf32``, ``fp16`` or ``bf16``.

    Returns:
        ``model`` itself for fp32/tf32, else a :class:`CastWrapper` around a cast copy.
    """
    # TF32 off for the process, whatever the precision: torch leaves cuDNN's on by default, which
    # o1's fp32 must not have. A tf32 candidate turns it on around each of its calls
    # (tuner.runtime.switches), so that candidates built one after another each run under their own.
    set_tf32(False)
    if precision in DTYPES:
        return CastWrapper(copy.deepcopy(model), DTYPES[precision]).eval()
    return model
