"""ResNet-50 with random weights at batch 1 and 8: torchvision's where it imports, else transformers'.

``torchvision.models.resnet50(weights=None)`` returns the 1000 logits as a tensor. Where
torchvision does not import (its PyPI wheel fails beside the local CPU build of torch), the same
architecture comes from ``transformers.ResNetModel(ResNetConfig())``, which returns the library's
``BaseModelOutputWithPoolingAndNoAttention``. The small size is transformers' class with a tiny
config on either host, so that the CPU tests see the same model everywhere.
"""

from __future__ import annotations

import dataclasses
import importlib.util

import torch

from experiments.workloads._images import image_batches


@dataclasses.dataclass(frozen=True)
class Size:
    """The image side and each test sample's batch."""

    image: int
    batches: tuple[int, ...]


SIZES: dict[str, Size] = {"full": Size(224, (1, 8)), "small": Size(32, (1, 2))}


def torchvision_imports() -> bool:
    """Whether torchvision's models can be built here."""
    if importlib.util.find_spec("torchvision") is None:
        return False
    try:
        import torchvision.models  # noqa: F401
    except Exception:  # noqa: BLE001 - a wheel built for another torch fails at import in many ways
        return False
    return True


def make_model(size: str = "full", seed: int = 0) -> torch.nn.Module:
    """ResNet-50 (or, small, a two-stage basic-block ResNet) with seeded random weights, eval mode, CPU."""
    torch.manual_seed(seed)
    if size == "full" and torchvision_imports():
        from torchvision.models import resnet50

        return resnet50(weights=None).eval()
    from transformers import ResNetConfig, ResNetModel

    config = ResNetConfig() if size == "full" else ResNetConfig(
        embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], layer_type="basic")
    return ResNetModel(config).eval()


def make_samples(size: str = "full", seed: int = 1) -> list[tuple[torch.Tensor, ...]]:
    """``(images,)`` per sample, NCHW."""
    cfg = SIZES[size]
    return image_batches(cfg.image, cfg.batches, seed)


def make_full() -> tuple[torch.nn.Module, list[tuple[torch.Tensor, ...]]]:
    """Factory for ``tune --model experiments.workloads.resnet50:make_full`` (the benchmark's size)."""
    return make_model("full"), make_samples("full")


def make_tiny() -> tuple[torch.nn.Module, list[tuple[torch.Tensor, ...]]]:
    """Factory for ``tune --model experiments.workloads.resnet50:make_tiny`` (the small config)."""
    return make_model("small"), make_samples("small")
