"""A model that ``torch.jit.script`` refuses (in a file of its own: TorchScript reads its source)."""

from __future__ import annotations

import torch
from torch import nn


class Unscriptable(nn.Module):
    """Traces fine; scripting fails: a tensor is unpacked as a tuple."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.pair(x)
        return a + b

    def pair(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2
