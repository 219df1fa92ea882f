"""A small MLP at batch 1: a launch-bound workload (a few tiny GEMMs, microseconds of arithmetic).

Every test sample has the same shape ``(1, WIDTH)``: what decides its latency is the number of
kernels launched and the framework's per-call overhead, not arithmetic or memory traffic.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn


@dataclasses.dataclass(frozen=True)
class MlpSize:
    """Layer width and depth, and how many test samples."""

    width: int
    depth: int
    samples: int


#: ``full``: the benchmark's size; ``small``: the CPU smoke run's.
SIZES: dict[str, MlpSize] = {"full": MlpSize(512, 4, 8), "small": MlpSize(256, 3, 4)}


class Mlp(nn.Module):
    """Linear -> ReLU, ``depth`` times, then a Linear head to 10 classes.

    Args:
        width: Width of every hidden layer (and of the input).
        depth: Hidden layers.
    """

    def __init__(self, width: int, depth: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [nn.Linear(width, width), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.body(x))
        return out


def make_model(size: str = "full", seed: int = 0) -> Mlp:
    """The MLP with seeded random weights, in eval mode on the CPU.

    Args:
        size: ``full`` or ``small`` (see :data:`SIZES`).
        seed: Seed of the weights.

    Returns:
        The model.
    """
    torch.manual_seed(seed)
    cfg = SIZES[size]
    return Mlp(cfg.width, cfg.depth).eval()


def make_samples(size: str = "full", seed: int = 1) -> list[tuple[torch.Tensor, ...]]:
    """Test data: batch-1 inputs, all of one shape.

    Args:
        size: ``full`` or ``small``.
        seed: Seed of the inputs.

    Returns:
        One ``(x,)`` per sample.
    """
    cfg = SIZES[size]
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(1, cfg.width, generator=gen),) for _ in range(cfg.samples)]
