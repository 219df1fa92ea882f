"""Hugging Face GPT-2 (``transformers.GPT2LMHeadModel``), random weights: one prefill and one cached decode step.

The model is the library's own class built from its config (no download), called as a serving
loop calls it: with a ``DynamicCache`` of past keys and values, returning the library's
``CausalLMOutputWithCrossAttentions`` (logits and the grown cache). Test data must be tensors,
so :class:`CachedStep` takes the past as two stacked tensors and builds the cache from them;
the prefill sample has an empty past (length 0), the decode sample one token and the prefill's
length of past.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import torch
from torch import nn


@dataclasses.dataclass(frozen=True)
class Size:
    """The config's dims, the batch, and the prefill's length."""

    layers: int
    hidden: int
    heads: int
    vocab: int
    batch: int
    prompt: int


SIZES: dict[str, Size] = {
    # GPT-2 small: GPT2Config()'s own defaults.
    "full": Size(12, 768, 12, 50257, 4, 128),
    "small": Size(2, 64, 2, 1000, 2, 8),
}


class CachedStep(nn.Module):
    """``model(input_ids, past_key_values=DynamicCache(past), use_cache=True)`` with the past as tensors.

    Args:
        model: A ``GPT2LMHeadModel``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        # transformers 5.2x renamed ``past_key_values`` to ``cache`` (the old name warns until 5.40).
        self.cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    def forward(self, input_ids: torch.Tensor, past_keys: torch.Tensor, past_values: torch.Tensor) -> Any:
        """One step: ``past_keys``/``past_values`` are (layers, batch, heads, past length, head dim)."""
        from transformers import DynamicCache

        cache = DynamicCache(ddp_cache_data=[(past_keys[i], past_values[i]) for i in range(past_keys.shape[0])])
        return self.model(input_ids, use_cache=True, **{self.cache_arg: cache})


def _config(size: str) -> Any:
    from transformers import GPT2Config

    cfg = SIZES[size]
    return GPT2Config(n_layer=cfg.layers, n_embd=cfg.hidden, n_head=cfg.heads, vocab_size=cfg.vocab,
                      bos_token_id=cfg.vocab - 1, eos_token_id=cfg.vocab - 1)


def make_model(size: str = "full", seed: int = 0) -> nn.Module:
    """:class:`CachedStep` over a ``GPT2LMHeadModel`` with seeded random weights, eval mode, CPU."""
    from transformers import GPT2LMHeadModel

    torch.manual_seed(seed)
    return CachedStep(GPT2LMHeadModel(_config(size)).eval()).eval()


def make_samples(size: str = "full", seed: int = 1) -> list[tuple[torch.Tensor, ...]]:
    """A prefill (the prompt, no past) and a decode step (one token after the prompt's past)."""
    cfg = SIZES[size]
    gen = torch.Generator().manual_seed(seed)
    head = cfg.hidden // cfg.heads

    def past(length: int) -> torch.Tensor:
        return torch.randn(cfg.layers, cfg.batch, cfg.heads, length, head, generator=gen)

    prompt = torch.randint(0, cfg.vocab, (cfg.batch, cfg.prompt), generator=gen)
    token = torch.randint(0, cfg.vocab, (cfg.batch, 1), generator=gen)
    return [(prompt, past(0), past(0)), (token, past(cfg.prompt), past(cfg.prompt))]


def make_full() -> tuple[nn.Module, list[tuple[torch.Tensor, ...]]]:
    """Factory for ``tune --model experiments.workloads.hf_gpt2:make_full`` (the benchmark's size)."""
    return make_model("full"), make_samples("full")


def make_tiny() -> tuple[nn.Module, list[tuple[torch.Tensor, ...]]]:
    """Factory for ``tune --model experiments.workloads.hf_gpt2:make_tiny`` (the small config)."""
    return make_model("small"), make_samples("small")
