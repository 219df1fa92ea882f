"""An Inductor graph pass: ``aten.cat`` without the legacy empty inputs that torch 2.11's lowering refuses.

Eager ``torch.cat`` skips 1-D tensors of size 0 among inputs of more dims (legacy behaviour), and
Hugging Face's ``DynamicCache`` relies on it: an empty layer starts as ``torch.tensor([])`` and
grows by ``torch.cat([keys, new], dim=-2)``. Inductor's ``cat`` lowering in torch 2.11 checks the
dim against the first input's rank and fails (``LoweringException: AssertionError`` in
``_validate_dim``): every Inductor candidate of GPT-2 and the user's own
``torch.compile(model.half(), mode="reduce-overhead")`` failed so on an H100
(experiments/results/2026-12-06-h100-levels-run6.md; on the CPU too, torch 2.13 compiles it:
experiments/results/2026-12-06-cpu-gpt2-compile-probe.txt). The pass drops those inputs before
lowering, where eager would skip them, so the graph computes what eager does.

This module defines no :class:`~backends.base.Backend`, so importing it registers nothing.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

#: Names the pass in Inductor's cache keys: a change to what it does needs a new one.
PASS_UUID = "tuner-legacy-empty-cat-1"


def _legacy_empty(value: Any, out: torch.Tensor) -> bool:
    """Whether eager ``cat`` skips this input: 1-D, of static size 0, where the output has more dims."""
    return (isinstance(value, torch.Tensor) and value.dim() == 1 and isinstance(value.shape[0], int)
            and value.shape[0] == 0 and out.dim() > 1)


def drop_legacy_empty_cat_inputs(graph: torch.fx.Graph) -> int:
    """Drop the inputs of each ``aten.cat`` that eager would skip.

    Left alone where the kept inputs' dtype is not the output's: the skipped input still takes
    part in type promotion (``cat([tensor([]), half])`` is float32).

    Args:
        graph: An aten-level FX graph with ``meta["val"]`` on its nodes (Inductor's post-grad graph).

    Returns:
        How many inputs were dropped.
    """
    dropped = 0
    for node in graph.find_nodes(op="call_function", target=torch.ops.aten.cat.default):
        out = node.meta.get("val")
        inputs = list(node.args[0])
        if not isinstance(out, torch.Tensor):
            continue
        keep = [n for n in inputs if not _legacy_empty(getattr(n, "meta", {}).get("val"), out)]
        if not keep or len(keep) == len(inputs) or any(n.meta["val"].dtype != out.dtype for n in keep):
            continue
        node.args = (keep, *node.args[1:])
        dropped += len(inputs) - len(keep)
    return dropped


@functools.cache
def legacy_empty_cat_pass() -> Any:
    """The pass as Inductor's ``post_grad_custom_pre_pass`` takes it (a ``CustomGraphPass``, which caches can key).

    Made on first use: ``torch._inductor.custom_graph_pass`` takes 1.5 s to import.
    """
    from torch._inductor.custom_graph_pass import CustomGraphPass

    class LegacyEmptyCat(CustomGraphPass):
        def __call__(self, graph: torch.fx.Graph) -> None:
            drop_legacy_empty_cat_inputs(graph)

        def uuid(self) -> str:
            return PASS_UUID

    return LegacyEmptyCat()
