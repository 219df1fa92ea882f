"""Output structures: flattened for the backends, rebuilt from an artifact's spec, errors that name the leaf."""

from __future__ import annotations

import collections
import json

import pytest
import torch

from tuner.core.outputs import FlatOutputs, OutputSpec, flatten_outputs, with_flat_outputs

Pair = collections.namedtuple("Pair", "logits extra")


def roundtrip(out: object) -> object:
    spec = OutputSpec.from_dict(json.loads(json.dumps(OutputSpec.of(out).to_dict())))
    return spec.rebuild(flatten_outputs(out))


def test_a_tensor_or_a_tuple_of_tensors_is_flat_and_needs_no_wrapper() -> None:
    model = torch.nn.Linear(2, 2)
    for out in (torch.zeros(2), (torch.zeros(2), torch.ones(1))):
        spec = OutputSpec.of(out)
        assert spec.flat and with_flat_outputs(model, spec) is model


def test_dicts_named_tuples_and_plain_values_come_back_in_their_structure() -> None:
    out = {"a": Pair(torch.ones(2), None), "b": [torch.zeros(1), 3], "c": "label"}
    spec = OutputSpec.of(out)
    assert not spec.flat and f"{__name__}.Pair" in spec.types
    back = roundtrip(out)
    assert isinstance(back, dict) and isinstance(back["a"], Pair) and back["a"].extra is None
    assert back["b"][1] == 3 and back["c"] == "label" and torch.equal(back["a"].logits, out["a"].logits)


def test_flat_outputs_give_the_tensors_in_the_specs_order() -> None:
    class Model(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"y": x + 1, "z": x * 2}

    model, x = Model(), torch.arange(3.0)
    spec = OutputSpec.of(model(x))
    flat = with_flat_outputs(model, spec)
    assert isinstance(flat, FlatOutputs)
    tensors = flat(x)
    assert isinstance(tensors, tuple) and len(tensors) == 2
    assert torch.equal(spec.rebuild(tensors)["z"], x * 2)


def test_a_leaf_that_cannot_be_shipped_is_named() -> None:
    with pytest.raises(ValueError, match="hold a object"):
        OutputSpec.of((torch.zeros(1), object()))


def test_rebuilding_from_the_wrong_number_of_tensors_fails() -> None:
    spec = OutputSpec.of({"a": torch.zeros(1), "b": torch.zeros(1)})
    with pytest.raises(ValueError, match="another number of outputs"):
        spec.rebuild((torch.zeros(1),))
