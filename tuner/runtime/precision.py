"""Numeric precision of a candidate: TF32 flags, whole-model casts, autocast and fp32 islands.

Level ``o1`` keeps float32 semantics (TF32 off everywhere); ``o2`` may also search TF32, whole-model
fp16/bf16 casts and ``torch.autocast`` in fp16/bf16 (``amp-fp16``/``amp-bf16``: fp32 kept where
autocast keeps it, for LayerNorm, softmax and reductions), each judged against the fp32 reference by
the study's accuracy rule. Either low precision may keep some modules in fp32
(:func:`keep_in_fp32`, chosen by :mod:`tuner.runtime.fallback`).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

#: dtype each whole-model cast casts floating inputs and weights to.
DTYPES: dict[str, torch.dtype] = {"fp16": torch.float16, "bf16": torch.bfloat16}
#: dtype each autocast precision computes its autocast-eligible ops in (weights stay fp32).
AUTOCAST: dict[str, torch.dtype] = {"amp-fp16": torch.float16, "amp-bf16": torch.bfloat16}


def low_dtype(precision: str) -> torch.dtype | None:
    """The 16-bit dtype a precision computes in, or None for fp32/tf32."""
    return DTYPES.get(precision) or AUTOCAST.get(precision)


def _device_type(tree: Any) -> str:
    """The device type of the first tensor in ``tree`` (``cpu`` when none).

    A plain loop: Dynamo, tracing this inside ``torch.compile``, fails on ``next()`` over a
    generator (seen on torch 2.11: ``'LocalGeneratorObjectVariable' object has no attribute
    'remaining_items'``).
    """
    for leaf in torch.utils._pytree.tree_leaves(tree):
        if isinstance(leaf, torch.Tensor):
            return leaf.device.type
    return "cpu"


def floats_to(tree: Any, dtype: torch.dtype) -> Any:
    """``tree`` with its floating-point tensors cast to ``dtype`` (other leaves as they are)."""
    return torch.utils._pytree.tree_map(
        lambda t: t.to(dtype) if isinstance(t, torch.Tensor) and t.is_floating_point() else t, tree)


def holds(model: Any, *types: type) -> bool:
    """Whether ``model`` is, or contains, a module of one of ``types`` (a precision wrapper, say)."""
    return isinstance(model, nn.Module) and any(isinstance(m, types) for m in model.modules())


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
        return floats_to(self.model(*floats_to(args, self.dtype)), torch.float32)


class AutocastWrapper(nn.Module):
    """Runs ``model`` under ``torch.autocast`` in ``dtype``; floating outputs come back as fp32.

    The autocast cache is off: a traced or exported model must record each cast, not reuse one
    made at trace time.
    """

    def __init__(self, model: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.model = model
        self.dtype = dtype

    def forward(self, *args: Any) -> Any:
        """Run the model under autocast on the inputs' device; floating outputs come back as fp32."""
        with torch.autocast(_device_type(args), dtype=self.dtype, cache_enabled=False):
            out = self.model(*args)
        return floats_to(out, torch.float32)


class Fp32Island(nn.Module):
    """One module kept in fp32 inside a low-precision model: inputs go up to fp32, outputs go back.

    Args:
        module: The module (cast to fp32 here).
        out_dtype: dtype of its floating outputs: the cast model's (its next module expects it),
            or None to leave them in fp32 (under autocast, which casts them where needed).
    """

    def __init__(self, module: nn.Module, out_dtype: torch.dtype | None) -> None:
        super().__init__()
        self.module = module.float()
        self.out_dtype = out_dtype

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Run the module in fp32 with autocast off."""
        up_args, up_kwargs = floats_to((args, kwargs), torch.float32)
        with torch.autocast(_device_type((up_args, up_kwargs)), enabled=False):
            out = self.module(*up_args, **up_kwargs)
        return out if self.out_dtype is None else floats_to(out, self.out_dtype)


def keep_in_fp32(model: nn.Module, names: Sequence[str], out_dtype: torch.dtype | None,
                 source: nn.Module) -> nn.Module:
    """Replace each named submodule of ``model`` (in place) by an :class:`Fp32Island`.

    Args:
        model: The model in its low precision (or under autocast).
        names: Submodules to keep in fp32.
        out_dtype: See :class:`Fp32Island`.
        source: The fp32 model ``model`` was made from: the islands take their weights from it
            (weights already cast to 16 bits and back would have lost what the island keeps).
    """
    for name in names:
        parent_name, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(parent_name), leaf, Fp32Island(copy.deepcopy(source.get_submodule(name)),
                                                                 out_dtype))
    return model


def apply_precision(model: nn.Module, precision: str, fp32_modules: Sequence[str] = ()) -> nn.Module:
    """The model as it runs in ``precision`` (a copy where weights change; the original is kept).

    Args:
        model: The user's model (eval mode).
        precision: One of :data:`tuner.core.records.PRECISIONS`.
        fp32_modules: Names of submodules kept in fp32 (low precisions only).

    Returns:
        ``model`` itself for fp32/tf32, else a :class:`CastWrapper` around a cast copy or an
        :class:`AutocastWrapper` around the model (a copy where modules are kept in fp32).
    """
    # TF32 off for the process, whatever the precision: torch leaves cuDNN's on by default, which
    # o1's fp32 must not have. A tf32 candidate turns it on around each of its calls
    # (tuner.runtime.switches), so that candidates built one after another each run under their own.
    set_tf32(False)
    if precision in DTYPES:
        wrapper = CastWrapper(copy.deepcopy(model), DTYPES[precision])
        keep_in_fp32(wrapper.model, fp32_modules, DTYPES[precision], model)
        return wrapper.eval()
    if precision in AUTOCAST:
        inner = keep_in_fp32(copy.deepcopy(model), fp32_modules, None, model) if fp32_modules else model
        return AutocastWrapper(inner, AUTOCAST[precision]).eval()
    return model
