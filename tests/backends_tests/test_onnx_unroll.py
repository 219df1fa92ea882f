"""Unrolling ONNX loops of a fixed count for TVM's importer, and TVM on the TF ASR decoder's ONNX export."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from backends._onnx_unroll import unroll_loops

INT64_MAX = np.iinfo(np.int64).max


def _const(name: str, value: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value))


def _loop_model(stop: str) -> onnx.ModelProto:
    """``acc = x; for i < 5 (or while acc's sum < 100): acc = acc * 2 + x; scan acc``, in tf2onnx's form.

    Args:
        stop: ``count`` (a counter carried from 0, compared with a constant: the trip count follows
            from constants) or ``data`` (the condition reads the input: it does not).
    """
    # Body: inputs (iteration, cond, counter, acc); outputs (cond, counter, acc, scan of acc).
    body_nodes = [
        _const("one", np.asarray(1, np.int64)),
        _const("two", np.asarray(2.0, np.float32)),
        helper.make_node("Add", ["counter_in", "one"], ["counter_out"]),
        helper.make_node("Mul", ["acc_in", "two"], ["acc_twice"]),
        helper.make_node("Add", ["acc_twice", "x"], ["acc_out"]),  # x: the outer graph's input
        helper.make_node("Identity", ["acc_out"], ["acc_scan"]),
    ]
    if stop == "count":
        body_nodes.append(helper.make_node("Less", ["counter_out", "limit"], ["cond_out"]))
    else:
        body_nodes += [helper.make_node("ReduceSum", ["acc_out"], ["total"], keepdims=0),
                       helper.make_node("Less", ["total", "hundred"], ["cond_out"])]
    body = helper.make_graph(
        body_nodes, "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("counter_in", TensorProto.INT64, []),
         helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("counter_out", TensorProto.INT64, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [2]),
         helper.make_tensor_value_info("acc_scan", TensorProto.FLOAT, [2])],
        initializer=[numpy_helper.from_array(np.asarray(100.0, np.float32), "hundred")])
    nodes = [
        _const("max_trips", np.asarray(INT64_MAX, np.int64)),
        _const("limit", np.asarray(5, np.int64)),
        _const("zero", np.asarray(0, np.int64)),
        helper.make_node("Less", ["zero", "limit"], ["start_cond"]),
        helper.make_node("Loop", ["max_trips", "start_cond", "zero", "x"], ["counter_end", "acc_end", "scanned"],
                         body=body),
    ]
    graph = helper.make_graph(nodes, "loop", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("acc_end", TensorProto.FLOAT, [2]),
                               helper.make_tensor_value_info("scanned", TensorProto.FLOAT, ["trips", 2])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_loop_whose_count_follows_from_constants_is_unrolled_and_computes_the_same() -> None:
    model = _loop_model("count")
    unrolled = unroll_loops(model)
    assert [n.op_type for n in unrolled.graph.node].count("Loop") == 0
    onnx.checker.check_model(unrolled)
    x = np.asarray([0.5, -1.0], np.float32)
    want = ReferenceEvaluator(model).run(None, {"x": x})
    got = ReferenceEvaluator(unrolled).run(None, {"x": x})
    assert want[1].shape == (5, 2)  # five trips, one scanned row each
    for w, g in zip(want, got, strict=True):
        np.testing.assert_array_equal(w, g)


def test_a_loop_whose_condition_reads_the_input_is_left_as_it_is() -> None:
    model = _loop_model("data")
    assert unroll_loops(model) is model


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("tf2onnx") is None,
                    reason="needs TensorFlow and tf2onnx to export the TF workload")
def test_tvm_builds_the_tf_asr_decoders_onnx_export_and_matches_tensorflow(tmp_path: Path) -> None:
    # The GPU machine's route for the TF workload (no TensorFlow there): its ONNX export, whose
    # decoding loop is a Loop that TVM's importer lacks, unrolled; then the static shapes folded.
    from backends import get_backend
    from experiments.workloads import tf_asr
    from tuner.core.accuracy import accuracy_rule
    from tuner.core.records import Candidate, MeasureConfig
    from tuner.runtime.correctness import check_outputs

    tf_asr.prepare(tmp_path, times=(24, 40))
    assert "Loop" in {n.op_type for n in onnx.load(str(tmp_path / "model.onnx")).graph.node}
    workload = tf_asr.load_prepared(tmp_path, "cpu")
    backend = get_backend("tvm")
    built = backend.build(workload, Candidate("tvm", "static", "fp32", {"tvm/frontend": "onnx"}))
    assert built.built is not None, built.error_msg
    m = backend.measure(built.built, workload, MeasureConfig(warmup=1, repeats=2))
    assert m.ok and m.outputs is not None, m.error_msg
    verdict = check_outputs(m.outputs, workload.reference, accuracy_rule(None, "o1"))
    assert verdict.ok, verdict.detail
