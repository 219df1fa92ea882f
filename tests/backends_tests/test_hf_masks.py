"""Hugging Face causal masks under torch.export (tuner.runtime.hf_masks): skipped where shapes decide, else built."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from backends._export_cover import export_covering, takes
from backends.eager import EagerBackend
from tuner.core.records import Candidate
from tuner.runtime.hf_masks import shape_decided_masks
from tuner.workloads.loading import make_workload

transformers = pytest.importorskip("transformers")
masking_utils = pytest.importorskip("transformers.masking_utils")


def _sdpa_masks(program: torch.export.ExportedProgram) -> list[bool]:
    """Per SDPA call in the program, whether it is given a mask."""
    found = []
    for node in program.graph.nodes:
        if node.op == "call_function" and "scaled_dot_product" in str(node.target):
            mask = node.kwargs.get("attn_mask", node.args[3] if len(node.args) > 3 else None)
            found.append(mask is not None)
    return found


class _Padded(nn.Module):
    """A tiny GPT-2 called with an attention mask (the padding mask transformers reads)."""

    def __init__(self) -> None:
        super().__init__()
        config = transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64, n_positions=64)
        self.gpt2 = transformers.GPT2Model(config).eval()

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden: torch.Tensor = self.gpt2(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
        return hidden


def test_gpt2_prefill_and_decode_export_without_a_built_mask_and_match_eager() -> None:
    hf_gpt2 = pytest.importorskip("experiments.workloads.hf_gpt2")
    model, samples = hf_gpt2.make_tiny()
    workload = make_workload(model, samples, "cpu", name="gpt2")
    # In bf16 the empty past is specialized to 0 (a size-oblivious export of the cast fails, see
    # backends._export_cover._export_one), so the prefill's program knows its cache is empty. An
    # fp32 prefill is exported size-oblivious, for any past, and keeps the mask it then needs.
    model = EagerBackend().compile(workload, Candidate("eager", precision="bf16")).state["model"]
    covering = export_covering(model, workload)
    assert len(covering) == 2  # the prefill's program and the decode step's
    for program, _ in covering:
        masks = _sdpa_masks(program)
        assert masks and not any(masks), "an SDPA call was given a built mask"
    with torch.no_grad():
        for sample in samples:
            program = next(p for p, shapes in covering if takes(shapes, sample))
            torch.testing.assert_close(program.module()(*sample)[0], model(*sample)[0])


def test_a_padding_mask_keeps_the_built_mask_since_only_its_values_tell() -> None:
    model = _Padded()
    ids = torch.randint(0, 64, (2, 8))
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[1, 6:] = 0
    workload = make_workload(model, [(ids, mask)], "cpu", name="padded")
    ((program, _),) = export_covering(model, workload)
    assert all(_sdpa_masks(program))
    with torch.no_grad():
        torch.testing.assert_close(program.module()(ids, mask), model(ids, mask))


def test_the_rule_is_transformers_own_outside_the_context_and_after_an_error() -> None:
    original = masking_utils._ignore_causal_mask_sdpa
    with pytest.raises(RuntimeError), shape_decided_masks():
        assert masking_utils._ignore_causal_mask_sdpa is not original
        # No padding mask: decided by shapes, as eager decides (one query, or as many as keys).
        assert masking_utils._ignore_causal_mask_sdpa(None, 1, 9, 8, 0)
        assert masking_utils._ignore_causal_mask_sdpa(None, 8, 8, 0, 0)
        assert not masking_utils._ignore_causal_mask_sdpa(None, 4, 12, 8, 0)
        assert not masking_utils._ignore_causal_mask_sdpa(None, 8, 8, 0, 0, local_attention_size=4)
        raise RuntimeError("export failed")
    assert masking_utils._ignore_causal_mask_sdpa is original


def test_a_bidirectional_mask_is_skipped_without_a_padding_mask_even_while_transformers_traces(monkeypatch) -> None:
    # transformers counts a CUDA-graph capture as tracing; some versions then build an all-True
    # mask for a model without padding (ViT), which sends SDPA to its math backend.
    monkeypatch.setattr(masking_utils, "is_tracing", lambda *args: True)
    original = masking_utils._ignore_bidirectional_mask_sdpa
    padding = torch.ones(2, 8, dtype=torch.bool)
    padding[1, 6:] = False
    with shape_decided_masks():
        rule = masking_utils._ignore_bidirectional_mask_sdpa
        assert rule is not original
        assert rule(None, 197)
        # A padding mask's values decide, and a window longer than the keys: transformers' own rule.
        assert not rule(padding, 8) and rule(padding, 8) == original(padding, 8)
        if "local_attention_size" in __import__("inspect").signature(original).parameters:
            assert not rule(None, 16, 8)
    assert masking_utils._ignore_bidirectional_mask_sdpa is original



def test_the_older_one_argument_rule_is_decided_too(monkeypatch) -> None:
    # transformers 5.17 (the GPU image's) has the rule with the padding mask alone, and answers
    # False under any tracing, a capture included: it built an all-True mask for ViT in a graph.
    def rule_517(padding_mask):
        return not masking_utils.is_tracing(padding_mask) and (padding_mask is None or bool(padding_mask.all()))

    monkeypatch.setattr(masking_utils, "_ignore_bidirectional_mask_sdpa", rule_517)
    monkeypatch.setattr(masking_utils, "is_tracing", lambda *args: True)
    assert not masking_utils._ignore_bidirectional_mask_sdpa(None)
    with shape_decided_masks():
        assert masking_utils._ignore_bidirectional_mask_sdpa(None)
        assert not masking_utils._ignore_bidirectional_mask_sdpa(torch.ones(2, 8, dtype=torch.bool))
    assert masking_utils._ignore_bidirectional_mask_sdpa is rule_517


def test_a_trace_takes_the_bidirectional_decision_only() -> None:
    causal, bidirectional = masking_utils._ignore_causal_mask_sdpa, masking_utils._ignore_bidirectional_mask_sdpa
    with shape_decided_masks(causal=False):
        # No guards in a trace: the causal decision, which reads shapes, stays transformers' own.
        assert masking_utils._ignore_causal_mask_sdpa is causal
        assert masking_utils._ignore_bidirectional_mask_sdpa is not bidirectional
    assert masking_utils._ignore_bidirectional_mask_sdpa is bidirectional
