"""Linear layers padded to an aligned width: their GEMMs run on the GPU's fast kernels.

cuBLAS picks its Hopper tensor-core kernels only where a matrix's leading dimension is a multiple
of 8 elements (16 bytes in fp16). GPT-2's LM head has 50257 outputs: on an H100 its fp16 GEMM ran
an sm75 kernel for 0.42 ms of a 1.7 ms prefill, in eager and in ``torch.compile`` alike
(experiments/results/2026-12-07-h100-gpu-profile.md). Padding the weight with zero rows to a
multiple of :data:`MULTIPLE` and slicing the output back gives the same values from an aligned
GEMM (the nanoGPT vocabulary trick, done on the model instead of its config).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

#: Output features are padded up to a multiple of this (a tensor-core tile's width).
MULTIPLE = 64
#: cuBLAS's alignment in elements: a width that is not a multiple of it is padded.
ALIGNMENT = 8


def unaligned(module: nn.Module) -> bool:
    """Whether ``module`` is a Linear layer whose output width misses :data:`ALIGNMENT`."""
    return isinstance(module, nn.Linear) and module.out_features % ALIGNMENT != 0


def has_unaligned(model: object) -> bool:
    """Whether ``model`` (any model a workload holds) is a torch module with an unaligned Linear layer."""
    return isinstance(model, nn.Module) and any(unaligned(m) for m in model.modules())


class PaddedLinear(nn.Module):
    """A Linear layer computed on zero-padded weights, its output sliced to the original width.

    Args:
        linear: The layer to pad (not changed).
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        padded = -(-linear.out_features // MULTIPLE) * MULTIPLE
        extra = padded - linear.out_features
        self.weight = nn.Parameter(F.pad(linear.weight.detach(), (0, 0, 0, extra)), requires_grad=False)
        bias = None if linear.bias is None else F.pad(linear.bias.detach(), (0, extra))
        self.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``linear(x)``, from the padded GEMM."""
        return F.linear(x, self.weight, self.bias)[..., : self.out_features]


def pad_linears(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with each unaligned Linear layer replaced by a :class:`PaddedLinear`.

    Args:
        model: The model (not changed).

    Returns:
        The copy; ``model`` itself when no layer needs padding.
    """
    if not has_unaligned(model):
        return model
    if isinstance(model, nn.Linear):
        return PaddedLinear(model)
    model = copy.deepcopy(model)
    for name, module in list(model.named_modules()):
        if unaligned(module):
            parent, _, attr = name.rpartition(".")
            assert isinstance(module, nn.Linear)
            setattr(model.get_submodule(parent) if parent else model, attr, PaddedLinear(module))
    return model


__all__ = ["ALIGNMENT", "MULTIPLE", "PaddedLinear", "has_unaligned", "pad_linears", "unaligned"]
