"""Hugging Face causal masks under ``torch.export``: skipped where the input shapes alone decide, as in eager.

Eager transformers passes no mask to SDPA where none is needed (no padding mask, and one query
token or as many as keys, or an empty cache), and SDPA then runs its flash kernel with
``is_causal``. While exporting, transformers always builds the mask instead
(``masking_utils._ignore_causal_mask_sdpa`` returns False under tracing), because a trace without
guards would bake one prompt's choice into every call (pytorch#108108). A ``torch.export``
program has guards on its symbolic shapes, and :func:`backends._export_cover.export_covering`
exports another program for the shapes a guard leaves out, so the shape-only decision is sound
there.

The built mask cost GPT-2's exported program 16 more kernels per step and the masked SDPA
kernel in place of the flash one: the graphed eager artifact ran at 91 % of the candidate's
speed on an H100 (experiments/results/2026-12-06-h100-levels-run5.md;
experiments/export_op_count.py counts the ops). Only export is patched, never ``torch.compile``:
Dynamo guards on the module global it reads, so a patch removed after compiling would recompile.

This module defines no :class:`~backends.base.Backend`, so importing it registers nothing.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
from collections.abc import Callable, Iterator
from typing import Any

import torch

#: The parameters of transformers' skip rule that the shape-only decision reads (4.5x and 5.x).
_RULE_PARAMS = ("padding_mask", "q_length", "kv_length", "q_offset", "local_attention_size")


def _shape_decided(original: Callable[..., bool], signature: inspect.Signature) -> Callable[..., bool]:
    """The skip rule of transformers, deciding from shapes where no tensor has to be read; else the rule itself."""

    @functools.wraps(original)
    def ignore_causal_mask(*args: Any, **kwargs: Any) -> bool:
        given = signature.bind(*args, **kwargs)
        given.apply_defaults()
        a = given.arguments
        if a["padding_mask"] is not None or isinstance(a["q_offset"], torch.Tensor):
            # Padding values, or a static cache's tensor offset: only a read tells; the rule builds the mask.
            return original(*args, **kwargs)
        q_length, kv_length, window = a["q_length"], a["kv_length"], a["local_attention_size"]
        if window is not None and kv_length >= window:
            return False
        return bool(q_length == 1 or kv_length == q_length or a["q_offset"] == 0)

    return ignore_causal_mask


@contextlib.contextmanager
def shape_decided_causal_masks() -> Iterator[None]:
    """While active, an export skips Hugging Face causal masks as eager does (see the module's docstring).

    Does nothing where transformers is not imported (the model is not one of its) or where its
    rule has other parameters than the ones this decision reads (a version it was not checked on).
    """
    masking = sys.modules.get("transformers.masking_utils")
    original = getattr(masking, "_ignore_causal_mask_sdpa", None)
    signature = None if original is None else inspect.signature(original)
    if original is None or signature is None or not set(_RULE_PARAMS) <= set(signature.parameters):
        yield
        return
    masking._ignore_causal_mask_sdpa = _shape_decided(original, signature)  # type: ignore[union-attr]
    try:
        yield
    finally:
        masking._ignore_causal_mask_sdpa = original  # type: ignore[union-attr]
