"""The built-in demo workload (``tune`` with no ``--model``): a WAP-style attention decoder."""

from __future__ import annotations

import torch

from tuner.workloads.demo.decoder import WapDecoder, make_inputs

#: Batch sizes of the demo's test samples: mostly 8 (the seed's batch), some 4 and 1, so that
#: a static-shape candidate compiles three times and a dynamic one once.
DEMO_BATCHES: tuple[int, ...] = (8, 8, 8, 4, 1, 8, 4, 8)


def make_demo(seed: int = 0) -> tuple[WapDecoder, list[tuple[torch.Tensor, ...]]]:
    """The demo decoder with fixed random weights and its test data.

    Args:
        seed: Seed for the weights and the test data.

    Returns:
        ``(model, test_data)``, the model in eval mode on the CPU.
    """
    torch.manual_seed(seed)
    model = WapDecoder().eval()
    gen = torch.Generator().manual_seed(seed)
    return model, [make_inputs(b, gen) for b in DEMO_BATCHES]


__all__ = ["DEMO_BATCHES", "WapDecoder", "make_demo", "make_inputs"]
