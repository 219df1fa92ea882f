"""A BERT-base-like encoder stack over token ids of variable sequence length (dynamic shapes).

Post-norm transformer layers (self-attention, GELU feed-forward, layer norm) as in BERT-base
(12 layers, hidden 768, 12 heads, FFN 3072) over word and position embeddings. The test data's
sequence lengths vary from sample to sample (a serving mix), so a static-shape compiler builds
once per length and a dynamic one once for all. Written out with plain ops (not
``nn.TransformerEncoderLayer``, whose eval fast path is a fused kernel that exporters refuse).
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn


@dataclasses.dataclass(frozen=True)
class BertSize:
    """Model dims, batch and the sequence lengths of the test samples."""

    layers: int
    hidden: int
    heads: int
    ffn: int
    vocab: int
    max_len: int
    batch: int
    lengths: tuple[int, ...]


SIZES: dict[str, BertSize] = {
    "full": BertSize(12, 768, 12, 3072, 30522, 512, 8, (128, 64, 256, 96, 192, 32, 160, 128)),
    "small": BertSize(2, 64, 4, 256, 1000, 64, 2, (16, 24, 32)),
}


class EncoderLayer(nn.Module):
    """One post-norm transformer encoder layer.

    Args:
        hidden: Model width.
        heads: Attention heads.
        ffn: Feed-forward width.
    """

    def __init__(self, hidden: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.norm1 = nn.LayerNorm(hidden)
        self.fc1 = nn.Linear(hidden, ffn)
        self.fc2 = nn.Linear(ffn, hidden)
        self.norm2 = nn.LayerNorm(hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, h = x.shape
        d = h // self.heads
        q, k, v = self.qkv(x).view(b, s, 3, self.heads, d).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
        ctx = (att @ v).transpose(1, 2).reshape(b, s, h)
        x = self.norm1(x + self.out(ctx))
        out: torch.Tensor = self.norm2(x + self.fc2(nn.functional.gelu(self.fc1(x))))
        return out


class Encoder(nn.Module):
    """Embeddings, a stack of :class:`EncoderLayer`, and the pooled first token (BERT's pooler).

    Args:
        layers: Encoder layers.
        hidden: Model width.
        heads: Attention heads.
        ffn: Feed-forward width.
        vocab: Vocabulary size.
        max_len: Positions of the position embedding.
    """

    def __init__(self, layers: int, hidden: int, heads: int, ffn: int, vocab: int, max_len: int) -> None:
        super().__init__()
        self.words = nn.Embedding(vocab, hidden)
        self.positions = nn.Embedding(max_len, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.layers = nn.ModuleList(EncoderLayer(hidden, heads, ffn) for _ in range(layers))
        self.pool = nn.Linear(hidden, hidden)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.norm(self.words(ids) + self.positions(pos)[None])
        for layer in self.layers:
            x = layer(x)
        return x, torch.tanh(self.pool(x[:, 0]))


def make_model(size: str = "full", seed: int = 0) -> Encoder:
    """The encoder with seeded random weights, in eval mode on the CPU.

    Args:
        size: ``full`` (BERT-base dims) or ``small``.
        seed: Seed of the weights.

    Returns:
        The model.
    """
    torch.manual_seed(seed)
    c = SIZES[size]
    return Encoder(c.layers, c.hidden, c.heads, c.ffn, c.vocab, c.max_len).eval()


def make_samples(size: str = "full", seed: int = 1) -> list[tuple[torch.Tensor, ...]]:
    """Test data: token ids ``(batch, length)`` at the sequence lengths of :data:`SIZES`.

    Args:
        size: ``full`` or ``small``.
        seed: Seed of the ids.

    Returns:
        One ``(ids,)`` per sample (int64).
    """
    c = SIZES[size]
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randint(0, c.vocab, (c.batch, n), generator=gen),) for n in c.lengths]
