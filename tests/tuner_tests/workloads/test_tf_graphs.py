"""TensorFlow workloads: GraphDef / .pb / SavedModel with feed-dict test data, and their one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("tensorflow")

from experiments.workloads import tf_asr  # noqa: E402
from tuner.core.errors import UserError  # noqa: E402
from tuner.core.tf_model import tensor_name  # noqa: E402
from tuner.workloads.loading import load_workload, make_workload  # noqa: E402
from tuner.workloads.tf_graphs import load_feed_dicts  # noqa: E402

INPUTS = list(tf_asr.INPUTS)
OUTPUTS = list(tf_asr.OUTPUTS)


@pytest.fixture(scope="module")
def asr_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return tf_asr.write_files(tmp_path_factory.mktemp("tf_asr"))


def test_tensor_names_accept_bytes_and_indices() -> None:
    assert tensor_name("x") == "x:0"
    assert tensor_name(b"x") == "x:0"
    assert tensor_name("x:1") == "x:1"


def test_seed_style_files_make_a_tf_workload(asr_files: dict[str, Path]) -> None:
    # As the seed loads it: a pickled dict, read with encoding='bytes'.
    seed_feed = np.load(asr_files["test_bc4"], allow_pickle=True, encoding="bytes").item()
    assert set(seed_feed) == set(INPUTS)
    w = load_workload(str(asr_files["model"]), [str(asr_files["test_bc4"]), str(asr_files["samples"])], "cpu",
                      inputs=",".join(INPUTS), outputs=",".join(OUTPUTS))
    assert w.framework == "tf" and len(w.samples) == len(tf_asr.TIMES)
    assert w.samples[0][0].shape == (tf_asr.BATCH, tf_asr.TIMES[0], tf_asr.DIM)
    assert w.samples[0][1].dtype == torch.int32
    # The memory's time dim varies; the batch does not.
    assert w.varying_dims() == ((1,), ())
    score, seq_id = w.reference[0]
    assert score.shape == (tf_asr.BATCH,) and seq_id.shape == (tf_asr.BATCH, tf_asr.STEPS)
    assert seq_id.dtype == torch.int32


def test_graph_def_object_bytes_keys_and_tensor_suffixes(asr_files: dict[str, Path]) -> None:
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(asr_files["model"].read_bytes())
    feeds = tf_asr.make_samples((8, 12))
    mixed = [{INPUTS[0].encode(): f[INPUTS[0]], f"{INPUTS[1]}:0": f[INPUTS[1]]} for f in feeds]
    a = make_workload(graph_def, mixed, "cpu", name="asr", inputs=INPUTS, outputs=OUTPUTS)
    b = load_workload(str(asr_files["model"]), str(asr_files["test_bc4"]), "cpu", inputs=INPUTS, outputs=OUTPUTS)
    assert a.fingerprint == b.fingerprint  # same graph and signature: one study
    assert a.source == "GraphDef object"


def test_saved_model_signature(tmp_path: Path) -> None:
    import tensorflow as tf

    class Scale(tf.Module):
        def __init__(self) -> None:
            self.w = tf.Variable(np.arange(6, dtype=np.float32).reshape(3, 2))

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def __call__(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": tf.nn.relu(x @ self.w), "total": tf.reduce_sum(x, -1)}

    tf.saved_model.save(Scale(), str(tmp_path / "sm"))
    x = np.ones((2, 3), np.float32)
    w = make_workload(str(tmp_path / "sm"), [{"x": x}], "cpu", name="sm", outputs=["y", "total"])
    torch.testing.assert_close(w.reference[0][0], torch.tensor([[6.0, 9.0]] * 2))
    torch.testing.assert_close(w.reference[0][1], torch.tensor([3.0, 3.0]))
    with pytest.raises(UserError, match="'nope' is not an output of signature"):
        make_workload(str(tmp_path / "sm"), [{"x": x}], "cpu", outputs=["nope"])


def test_wrong_tensor_names_are_one_line_user_errors(asr_files: dict[str, Path]) -> None:
    feeds = tf_asr.make_samples((8,))
    with pytest.raises(UserError, match="input 'memory' is not a node of the graph.*encoder_memory_placeholder"):
        make_workload(str(asr_files["model"]), feeds, "cpu", inputs=["memory", INPUTS[1]], outputs=OUTPUTS)
    with pytest.raises(UserError, match="output 'logits' is not a node of the graph"):
        make_workload(str(asr_files["model"]), feeds, "cpu", inputs=INPUTS, outputs=["logits"])
    with pytest.raises(UserError, match="needs its inputs tensor names"):
        make_workload(str(asr_files["model"]), feeds, "cpu", outputs=OUTPUTS)


def test_test_data_that_does_not_fit_is_a_user_error(asr_files: dict[str, Path]) -> None:
    good = tf_asr.make_samples((8,))[0]
    wrong_width = {INPUTS[0]: np.zeros((4, 8, 7), np.float32), INPUTS[1]: good[INPUTS[1]]}
    with pytest.raises(UserError, match="test sample 0 .* does not fit the graph"):
        make_workload(str(asr_files["model"]), [wrong_width], "cpu", inputs=INPUTS, outputs=OUTPUTS)
    with pytest.raises(UserError, match="has no value for input encoder_memory_length_placeholder:0"):
        make_workload(str(asr_files["model"]), [{INPUTS[0]: good[INPUTS[0]]}], "cpu", inputs=INPUTS, outputs=OUTPUTS)
    with pytest.raises(UserError, match="feeds extra:0, which is not among the inputs"):
        make_workload(str(asr_files["model"]), [{**good, "extra": good[INPUTS[1]]}], "cpu", inputs=INPUTS,
                      outputs=OUTPUTS)


def test_npz_and_bad_files(tmp_path: Path) -> None:
    feed = tf_asr.make_samples((8,))[0]
    np.savez(tmp_path / "one.npz", **feed)
    assert set(load_feed_dicts(str(tmp_path / "one.npz"))[0]) == set(INPUTS)
    with pytest.raises(UserError, match="does not exist"):
        load_feed_dicts(str(tmp_path / "missing.npy"))
    np.save(tmp_path / "plain.npy", np.zeros(3))
    with pytest.raises(UserError, match="not feed dicts"):
        load_feed_dicts(str(tmp_path / "plain.npy"))
    (tmp_path / "junk.pb").write_bytes(b"\xff\x00 not a graph")
    with pytest.raises(UserError, match="not a readable GraphDef"):
        make_workload(str(tmp_path / "junk.pb"), [feed], "cpu", inputs=INPUTS, outputs=OUTPUTS)


def test_cli_wrong_input_name_is_one_line_exit_2(asr_files: dict[str, Path], tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "tuner.api.cli", "--model", str(asr_files["model"]), "--inputs", "nope",
           "--outputs", "score", "--test-data", str(asr_files["test_bc4"]), "--device", "cpu",
           "--output-dir", str(tmp_path / "out"), "--no-mlflow"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("tune: error:")]
    assert len(errors) == 1 and "input 'nope' is not a node of the graph" in errors[0]
    assert not (tmp_path / "out").exists()


def test_a_tf_study_measures_its_candidates_in_worker_processes(asr_files: dict[str, Path], tmp_path: Path) -> None:
    # Worker start-up once called the model for a warm-up pass, which a frozen TF graph is not:
    # every TF study then ran its candidates in the study process, without isolation.
    import json

    cmd = [sys.executable, "-m", "tuner.api.cli", "--model", str(asr_files["model"]), "--inputs", ",".join(INPUTS),
           "--outputs", ",".join(OUTPUTS), "--test-data", str(asr_files["test_bc4"]), "--device", "cpu",
           "--backends", "tf_graph", "--trials", "2", "--workers", "1", "--study-name", "tf",
           "--output-dir", str(tmp_path / "out"), "--no-mlflow"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "without isolation" not in proc.stderr
    report = json.loads((tmp_path / "out" / "tf" / "best" / "report.json").read_text())
    workers = report["search"]["workers"]
    assert workers["isolated"] is True and workers["starts"] >= 1, workers

