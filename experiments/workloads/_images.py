"""Test data shared by the image workloads (ViT, ResNet-50): random NCHW batches."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def image_batches(side: int, batches: Sequence[int], seed: int) -> list[tuple[torch.Tensor, ...]]:
    """``(images,)`` per batch size: seeded random ``(batch, 3, side, side)`` tensors."""
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(b, 3, side, side, generator=gen),) for b in batches]
