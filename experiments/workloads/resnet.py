"""A ResNet-style conv net (ResNet-18 layout: basic blocks, batch norm, global pooling) at batch 1 and 32.

Static shapes: the test data holds two shapes only, batch 1 (latency-bound serving) and batch
32 (throughput), at one image size, so a static-shape compiler builds twice and no symbolic dim
is needed.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn


@dataclasses.dataclass(frozen=True)
class ResNetSize:
    """Channels of the four stages, blocks per stage, image size and the batches of the samples."""

    widths: tuple[int, ...]
    blocks: tuple[int, ...]
    image: int
    batches: tuple[int, ...]


SIZES: dict[str, ResNetSize] = {
    "full": ResNetSize((64, 128, 256, 512), (2, 2, 2, 2), 224, (1, 32)),
    "small": ResNetSize((8, 16, 32, 64), (1, 1, 1, 1), 32, (1, 8)),
}


class BasicBlock(nn.Module):
    """Two 3x3 convs with batch norm and a residual (projected when the shape changes).

    Args:
        cin: Input channels.
        cout: Output channels.
        stride: Stride of the first conv.
    """

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.short(x))


class ResNet(nn.Module):
    """Stem (7x7 conv, max pool), four stages of basic blocks, global average pool, linear head.

    Args:
        widths: Channels of the four stages.
        blocks: Blocks per stage.
        classes: Output classes.
    """

    def __init__(self, widths: tuple[int, ...], blocks: tuple[int, ...], classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 7, 2, 3, bias=False), nn.BatchNorm2d(widths[0]),
                                  nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        stages: list[nn.Module] = []
        cin = widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks, strict=True)):
            for j in range(n):
                stages.append(BasicBlock(cin, w, 2 if (j == 0 and i > 0) else 1))
                cin = w
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stages(self.stem(x))
        out: torch.Tensor = self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))
        return out


def make_model(size: str = "full", seed: int = 0) -> ResNet:
    """The net with seeded random weights and batch-norm statistics, in eval mode on the CPU.

    Args:
        size: ``full`` (ResNet-18's widths, 224x224 images) or ``small``.
        seed: Seed of the weights.

    Returns:
        The model.
    """
    torch.manual_seed(seed)
    cfg = SIZES[size]
    model = ResNet(cfg.widths, cfg.blocks)
    # Non-trivial running statistics, so that folding batch norm into the convs is really tested.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert m.running_mean is not None and m.running_var is not None
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def make_samples(size: str = "full", seed: int = 1) -> list[tuple[torch.Tensor, ...]]:
    """Test data: images at the batch sizes of :data:`SIZES` (1 and 32 at full size).

    Args:
        size: ``full`` or ``small``.
        seed: Seed of the images.

    Returns:
        One ``(images,)`` per sample, NCHW.
    """
    cfg = SIZES[size]
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(b, 3, cfg.image, cfg.image, generator=gen),) for b in cfg.batches]
