from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers import tiny_model, tiny_samples
from tuner.core.errors import UserError
from tuner.workloads.demo import DEMO_BATCHES, make_demo
from tuner.workloads.loading import load_model, load_test_data, load_workload, make_workload


def test_reference_outputs_come_from_the_model():
    model, samples = tiny_model(), tiny_samples()
    w = make_workload(model, samples, "cpu")
    assert len(w.reference) == len(samples)
    with torch.no_grad():
        expected = model(*samples[2])
    torch.testing.assert_close(w.reference[2][0], expected[0])
    torch.testing.assert_close(w.reference[2][1], expected[1])


def test_shapes_varying_dims_and_groups():
    w = make_workload(tiny_model(), tiny_samples((4, 4, 2)), "cpu")
    assert w.shape_counts() == {((4, 16), (4, 16)): 2, ((2, 16), (2, 16)): 1}
    assert w.varying_dims() == ((0,), (0,))
    # Both batch dims always agree: one symbolic dim for both.
    assert w.dim_groups() == {(0, 0): "d0", (1, 0): "d0"}
    assert w.example_index() == 0


def test_fingerprint_depends_on_weights_not_on_test_data():
    a = make_workload(tiny_model(), tiny_samples((4,)), "cpu")
    b = make_workload(tiny_model(), tiny_samples((2, 3)), "cpu")
    other = tiny_model()
    with torch.no_grad():
        other.fc1.weight.add_(1.0)
    c = make_workload(other, tiny_samples((4,)), "cpu")
    assert a.fingerprint == b.fingerprint
    assert a.fingerprint != c.fingerprint


def test_test_data_that_does_not_fit_is_a_user_error():
    bad = [(torch.randn(4, 7), torch.randn(4, 16))]
    with pytest.raises(UserError, match="test sample 0 .* does not fit the model"):
        make_workload(tiny_model(), bad, "cpu")


def test_pt_and_npz_test_data_round_trip(tmp_path):
    samples = tiny_samples((3, 2))
    torch.save(samples, tmp_path / "data.pt")
    loaded = load_test_data(str(tmp_path / "data.pt"))
    assert [tuple(t.shape) for t in loaded[1]] == [(2, 16), (2, 16)]
    np.savez(tmp_path / "data.npz", **{f"s{i}_{j}": t.numpy() for i, s in enumerate(samples) for j, t in enumerate(s)})
    loaded = load_test_data(str(tmp_path / "data.npz"))
    assert len(loaded) == 2
    torch.testing.assert_close(loaded[0][1], samples[0][1])


def test_bad_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_test_data(str(tmp_path / "missing.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="not a readable"):
        load_test_data(str(tmp_path / "junk.pt"))
    with pytest.raises(UserError, match="not a readable TorchScript"):
        load_model(str(tmp_path / "junk.pt"))
    with pytest.raises(UserError, match="does not exist"):
        load_model(str(tmp_path / "nope.pt2"))
    np.savez(tmp_path / "odd.npz", weird=np.zeros(3))
    with pytest.raises(UserError, match="array named 'weird'"):
        load_test_data(str(tmp_path / "odd.npz"))
    torch.save({"x": torch.zeros(1)}, tmp_path / "dict.pt")
    with pytest.raises(UserError, match="list of input tuples"):
        load_test_data(str(tmp_path / "dict.pt"))


def test_torchscript_and_export_files_load(tmp_path):
    model, samples = tiny_model(), tiny_samples()
    torch.jit.save(torch.jit.script(model), tmp_path / "m.pt")
    batch = torch.export.Dim("batch", min=1)
    torch.export.save(torch.export.export(model, samples[0], dynamic_shapes=({0: batch}, {0: batch})),
                      tmp_path / "m.pt2")
    torch.save(samples, tmp_path / "d.pt")
    for name in ("m.pt", "m.pt2"):
        w = load_workload(str(tmp_path / name), str(tmp_path / "d.pt"), "cpu")
        assert w.name == "m"
        torch.testing.assert_close(w.reference[0][0], model(*samples[0])[0])


def test_factory_with_its_own_test_data():
    w = load_workload("tests.helpers:make_tiny", None, "cpu")
    assert w.name == "tiny" and len(w.samples) == 3
    with pytest.raises(UserError, match="cannot import"):
        load_model("no_such_pkg.mod:make")
    with pytest.raises(UserError, match="has no function"):
        load_model("tests.helpers:nope")


def test_demo_matches_the_seed_shapes():
    model, data = make_demo()
    assert [s[0].shape[0] for s in data] == list(DEMO_BATCHES)
    b = DEMO_BATCHES[0]
    assert [tuple(t.shape) for t in data[0]] == [(b,), (b, 1, 256), (b, 448, 4, 50), (b, 1, 4, 50), (b, 1, 4, 50),
                                                (b, 4, 50)]
    out = model(*data[0])
    assert [tuple(t.shape) for t in out] == [(b, 112), (b, 1, 256), (b, 1, 4, 50), (b, 1, 4, 50)]
    # Attention weights are a distribution over the unmasked grid.
    torch.testing.assert_close(out[2].sum(dim=(1, 2, 3)), torch.ones(b))
