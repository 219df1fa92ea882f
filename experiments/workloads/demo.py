"""The demo WAP decoder (``tuner.workloads.demo``): an attention decoder over batches 8, 4 and 1."""

from __future__ import annotations

import torch
from torch import nn

from tuner.workloads.demo import make_demo

#: Indices of the demo's samples that the ``small`` size keeps (batches 8, 4 and 1).
SMALL: tuple[int, ...] = (0, 3, 4)


def make_model(size: str = "full", seed: int = 0) -> nn.Module:
    """The demo decoder with its fixed random weights (the same at both sizes).

    Args:
        size: ``full`` or ``small`` (only the test data differs).
        seed: Seed of the weights.

    Returns:
        The model, in eval mode on the CPU.
    """
    return make_demo(seed)[0]


def make_samples(size: str = "full", seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    """The demo's test data (``small``: one sample of each batch size).

    Args:
        size: ``full`` or ``small``.
        seed: Seed of the data.

    Returns:
        The samples.
    """
    samples = make_demo(seed)[1]
    return samples if size == "full" else [samples[i] for i in SMALL]
