"""Hugging Face BERT-base (``transformers.BertModel``), random weights, over padded batches of variable length.

The model is the library's own class built from its config (no download). Each test sample is a
batch of token ids with an attention mask that pads the shorter sequences, as a tokenizer would
give them; batches and lengths vary between samples (a serving mix). The model returns the
library's ``BaseModelOutputWithPoolingAndCrossAttentions``.
"""

from __future__ import annotations

import dataclasses

import torch


@dataclasses.dataclass(frozen=True)
class Size:
    """The config's dims, and each test sample's ``(batch, sequence length)``."""

    layers: int
    hidden: int
    heads: int
    ffn: int
    vocab: int
    shapes: tuple[tuple[int, int], ...]


SIZES: dict[str, Size] = {
    # BERT-base: BertConfig()'s own defaults.
    "full": Size(12, 768, 12, 3072, 30522, ((1, 32), (8, 128), (4, 64), (2, 96), (8, 48), (1, 128))),
    "small": Size(2, 64, 2, 128, 1000, ((1, 8), (3, 16), (2, 12))),
}


def make_model(size: str = "full", seed: int = 0) -> torch.nn.Module:
    """``BertModel`` with seeded random weights, in eval mode on the CPU."""
    from transformers import BertConfig, BertModel

    cfg = SIZES[size]
    torch.manual_seed(seed)
    config = BertConfig(num_hidden_layers=cfg.layers, hidden_size=cfg.hidden, num_attention_heads=cfg.heads,
                        intermediate_size=cfg.ffn, vocab_size=cfg.vocab)
    return BertModel(config).eval()


def make_samples(size: str = "full", seed: int = 1) -> list[tuple[torch.Tensor, ...]]:
    """``(input_ids, attention_mask)`` per sample; each row of a batch has its own length, padded."""
    cfg = SIZES[size]
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for batch, length in cfg.shapes:
        ids = torch.randint(1, cfg.vocab, (batch, length), generator=gen)
        lengths = torch.randint(max(1, length // 2), length + 1, (batch,), generator=gen)
        lengths[0] = length  # the longest row sets the batch's length, as a tokenizer pads
        mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
        samples.append((ids * mask, mask))
    return samples


def make_full() -> tuple[torch.nn.Module, list[tuple[torch.Tensor, ...]]]:
    """Factory for ``tune --model experiments.workloads.hf_bert:make_full`` (the benchmark's size)."""
    return make_model("full"), make_samples("full")


def make_tiny() -> tuple[torch.nn.Module, list[tuple[torch.Tensor, ...]]]:
    """Factory for ``tune --model experiments.workloads.hf_bert:make_tiny`` (the small config)."""
    return make_model("small"), make_samples("small")
