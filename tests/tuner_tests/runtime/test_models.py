"""The model a backend compiles (tuner.runtime.models): precision, fp32 islands and flat outputs, in that nesting."""

from __future__ import annotations

import pytest
import torch

from tuner.core.outputs import FlatOutputs
from tuner.core.records import Candidate
from tuner.runtime.fallback import FP32_FALLBACK
from tuner.runtime.precision import AutocastWrapper, CastWrapper, Fp32Island
from tuner.workloads.loading import make_workload


@pytest.fixture(scope="module")
def gpt2():
    hf_gpt2 = pytest.importorskip("experiments.workloads.hf_gpt2")
    pytest.importorskip("transformers")
    model, samples = hf_gpt2.make_tiny()
    return make_workload(model, samples, "cpu", name="gpt2")


@pytest.mark.parametrize(("precision", "wrapper"), [("bf16", CastWrapper), ("amp-bf16", AutocastWrapper)])
def test_outputs_are_flattened_inside_the_precision_wrapper_with_its_fp32_islands(gpt2, precision, wrapper) -> None:
    from tuner.runtime.models import prepared_model

    candidate = Candidate("inductor", shape_mode="mark_dynamic", precision=precision, options={FP32_FALLBACK: 0.2})
    model = prepared_model(gpt2, candidate, trace=True)
    # The wrapper's cast back to fp32 maps over flat tensors, not over the model's DynamicCache
    # (which broke Dynamo on torch 2.11).
    assert isinstance(model, wrapper) and isinstance(model.model, FlatOutputs)
    islands = [name for name, m in model.named_modules() if isinstance(m, Fp32Island)]
    assert islands and all(name.startswith("model.model.") for name in islands)
    with torch.no_grad():
        for sample in gpt2.samples:
            out = model(*sample)
            assert isinstance(out, tuple) and all(isinstance(t, torch.Tensor) for t in out)
            assert out[0].dtype == torch.float32
            torch.testing.assert_close(out[0], gpt2.model(*sample).logits, atol=0.1, rtol=0.1)
        # Dynamo traces it whole with its graph breaks (torch 2.11 failed here before the nesting).
        torch._dynamo.reset()
        torch.compile(model, backend="eager")(*gpt2.samples[0])
