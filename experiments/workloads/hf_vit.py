"""Hugging Face ViT-B/16 (``transformers.ViTModel``), random weights, at batch 1 and 8.

The library's own class built from its config (no download), 224x224 images in 16x16 patches;
it returns the library's ``BaseModelOutputWithPooling``.
"""

from __future__ import annotations

import dataclasses

import torch

from experiments.workloads._images import image_batches


@dataclasses.dataclass(frozen=True)
class Size:
    """The config's dims, the image side, and each test sample's batch."""

    layers: int
    hidden: int
    heads: int
    ffn: int
    image: int
    patch: int
    batches: tuple[int, ...]


SIZES: dict[str, Size] = {
    # ViT-B/16: ViTConfig()'s own defaults.
    "full": Size(12, 768, 12, 3072, 224, 16, (1, 8)),
    "small": Size(2, 64, 2, 128, 32, 8, (1, 3)),
}


def make_model(size: str = "full", seed: int = 0) -> torch.nn.Module:
    """``ViTModel`` with seeded random weights, in eval mode on the CPU."""
    from transformers import ViTConfig, ViTModel

    cfg = SIZES[size]
    torch.manual_seed(seed)
    config = ViTConfig(num_hidden_layers=cfg.layers, hidden_size=cfg.hidden, num_attention_heads=cfg.heads,
                       intermediate_size=cfg.ffn, image_size=cfg.image, patch_size=cfg.patch)
    return ViTModel(config).eval()


def make_samples(size: str = "full", seed: int = 1) -> list[tuple[torch.Tensor, ...]]:
    """``(pixel_values,)`` per sample, NCHW."""
    cfg = SIZES[size]
    return image_batches(cfg.image, cfg.batches, seed)


def make_full() -> tuple[torch.nn.Module, list[tuple[torch.Tensor, ...]]]:
    """Factory for ``tune --model experiments.workloads.hf_vit:make_full`` (the benchmark's size)."""
    return make_model("full"), make_samples("full")


def make_tiny() -> tuple[torch.nn.Module, list[tuple[torch.Tensor, ...]]]:
    """Factory for ``tune --model experiments.workloads.hf_vit:make_tiny`` (the small config)."""
    return make_model("small"), make_samples("small")
