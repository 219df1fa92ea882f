"""Unaligned Linear layers padded (tuner.runtime.padding): same values, and every exporter takes them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tuner.core.records import Candidate
from tuner.runtime.models import PAD_LINEAR, prepared_model
from tuner.runtime.padding import MULTIPLE, PaddedLinear, has_unaligned, pad_linears
from tuner.workloads.loading import make_workload


@pytest.mark.parametrize("bias", [True, False])
def test_a_padded_layer_computes_the_layers_values_from_an_aligned_weight(bias: bool) -> None:
    torch.manual_seed(0)
    linear = nn.Linear(24, 1001, bias=bias)
    padded = PaddedLinear(linear)
    assert padded.weight.shape == (1024, 24) and 1024 % MULTIPLE == 0
    assert torch.count_nonzero(padded.weight[1001:]) == 0
    x = torch.randn(2, 5, 24)
    with torch.no_grad():
        torch.testing.assert_close(padded(x), linear(x))
    assert padded(x).shape == (2, 5, 1001)


def test_only_unaligned_layers_are_replaced_and_the_model_is_not_changed() -> None:
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 10))
    assert has_unaligned(model) and not has_unaligned(model[:2]) and not has_unaligned("not a module")
    padded = pad_linears(model)
    assert isinstance(padded[0], nn.Linear) and isinstance(padded[2], PaddedLinear)
    assert isinstance(model[2], nn.Linear)  # the user's model is left as it was
    aligned = model[:2]
    assert pad_linears(aligned) is aligned


@pytest.fixture(scope="module")
def gpt2_odd_vocab():
    """GPT-2 with an odd vocabulary, as GPT-2's own 50257: its tied LM head is unaligned."""
    transformers = pytest.importorskip("transformers")
    hf_gpt2 = pytest.importorskip("experiments.workloads.hf_gpt2")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=2, vocab_size=1001, bos_token_id=1000, eos_token_id=1000)
    model = hf_gpt2.CachedStep(transformers.GPT2LMHeadModel(cfg).eval()).eval()
    samples = hf_gpt2.make_samples("small")
    return make_workload(model, samples, "cpu", name="gpt2-odd")


def test_gpt2s_tied_lm_head_is_padded_and_traces_and_exports_with_the_same_logits(gpt2_odd_vocab) -> None:
    workload = gpt2_odd_vocab
    assert has_unaligned(workload.model)
    model = prepared_model(workload, Candidate("eager", options={PAD_LINEAR: True}))
    assert isinstance(model.model.model.lm_head, PaddedLinear)
    # The embedding it was tied to keeps its own rows.
    assert model.model.model.transformer.wte.weight.shape == (1001, 64)
    sample = workload.samples[1]
    with torch.no_grad():
        expected = workload.model(*sample).logits
        torch.testing.assert_close(model(*sample)[0], expected, atol=1e-5, rtol=1e-5)
        traced = torch.jit.trace(model, sample, check_trace=False)
        torch.testing.assert_close(traced(*sample)[0], expected, atol=1e-5, rtol=1e-5)
    program = torch.export.export(model, sample, strict=False)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(*sample)[0], expected, atol=1e-5, rtol=1e-5)
