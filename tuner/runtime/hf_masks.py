"""Hugging Face attention masks skipped where the input shapes alone decide, as eager skips them.

Eager transformers passes no mask to SDPA where none is needed (no padding mask, and for a causal
model one query token or as many as keys, or an empty cache), and SDPA then runs a fused kernel.
While tracing, transformers builds the mask instead (its skip rules answer False under
``is_tracing``), because a trace without guards would bake one prompt's choice into every call
(pytorch#108108). Where a decision is sound, it is made as eager makes it:

- a ``torch.export`` program has guards on its symbolic shapes, and
  :func:`backends._export_cover.export_covering` exports another program for the shapes a guard
  leaves out;
- a CUDA graph (:class:`tuner.runtime.cuda_graphs.GraphedCall`) is captured per input signature.
  transformers counts a stream capture as tracing (5.17 on an H100): an fp16 ViT-B/16 then got an
  all-True (1, 1, 197, 197) mask, which sent SDPA to its math backend, fp32 GEMMs and casts that
  took 1.0-1.8 ms of a 3.3 ms batch of 8 (experiments/results/2026-12-07-h100-gpu-profile.md,
  ``...-sdpa-args.log``);
- a TorchScript trace takes the bidirectional decision only, which reads no shape.

The built causal mask cost GPT-2's exported program 16 more kernels per step and the masked SDPA
kernel in place of the flash one: the graphed eager artifact ran at 91 % of the candidate's
speed on an H100 (experiments/results/2026-12-06-h100-levels-run5.md;
experiments/export_op_count.py counts the ops). ``torch.compile`` is never patched: Dynamo guards
on the module global it reads, so a patch removed after compiling would recompile.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
from collections.abc import Callable, Iterator
from typing import Any

import torch

#: The parameters of transformers' causal skip rule that the shape-only decision reads (4.5x and 5.x).
_CAUSAL_PARAMS = ("padding_mask", "q_length", "kv_length", "q_offset", "local_attention_size")
#: The bidirectional rule's: only its padding mask (its window, where it has one, is read if given).
_BIDIRECTIONAL_PARAMS = ("padding_mask",)


#: A decision from a skip rule's bound arguments: skip the mask (True), build it (False), or None
#: where only the rule itself can tell (it must read a tensor's values).
Decision = Callable[[dict[str, Any]], "bool | None"]


def _causal_by_shape(a: dict[str, Any]) -> bool | None:
    """The causal rule's answer from shapes, as eager decides; None where a tensor must be read."""
    if a["padding_mask"] is not None or isinstance(a["q_offset"], torch.Tensor):
        # Padding values, or a static cache's tensor offset: only a read tells; the rule builds the mask.
        return None
    q_length, kv_length, window = a["q_length"], a["kv_length"], a["local_attention_size"]
    if window is not None and kv_length >= window:
        return False
    return bool(q_length == 1 or kv_length == q_length or a["q_offset"] == 0)


def _bidirectional_without_padding(a: dict[str, Any]) -> bool | None:
    """The bidirectional rule's answer: no padding mask and no window over the keys, no mask; else None."""
    window, kv_length = a.get("local_attention_size"), a.get("kv_length")
    if a["padding_mask"] is not None or (window is not None and (kv_length is None or kv_length >= window)):
        return None
    return True


def _decided(original: Callable[..., bool], signature: inspect.Signature, decide: Decision) -> Callable[..., bool]:
    """The skip rule ``original`` of transformers, answered by ``decide`` where it can; else the rule itself."""

    @functools.wraps(original)
    def rule(*args: Any, **kwargs: Any) -> bool:
        given = signature.bind(*args, **kwargs)
        given.apply_defaults()
        answer = decide(given.arguments)
        return original(*args, **kwargs) if answer is None else answer

    return rule


@contextlib.contextmanager
def _patched(name: str, params: tuple[str, ...], decide: Decision) -> Iterator[None]:
    """The rule ``name`` of transformers answered by ``decide`` while active, where it has ``params``."""
    masking = sys.modules.get("transformers.masking_utils")
    original = getattr(masking, name, None)
    signature = None if original is None else inspect.signature(original)
    if original is None or signature is None or not set(params) <= set(signature.parameters):
        yield
        return
    setattr(masking, name, _decided(original, signature, decide))
    try:
        yield
    finally:
        setattr(masking, name, original)


@contextlib.contextmanager
def shape_decided_masks(causal: bool = True) -> Iterator[None]:
    """While active, causal and bidirectional masks are skipped as eager skips them (see the module's docstring).

    Does nothing where transformers is not imported (the model is not one of its) or where a rule
    has other parameters than the ones its decision reads (a version it was not checked on).

    Args:
        causal: Decide causal masks too. A TorchScript trace has no guards, so it takes only the
            bidirectional decision, which reads no shape (no padding mask: no mask, for any input).
    """
    causal_rule = (_patched("_ignore_causal_mask_sdpa", _CAUSAL_PARAMS, _causal_by_shape) if causal
                   else contextlib.nullcontext())
    bidirectional_rule = _patched("_ignore_bidirectional_mask_sdpa", _BIDIRECTIONAL_PARAMS,
                                  _bidirectional_without_padding)
    with causal_rule, bidirectional_rule:
        yield

