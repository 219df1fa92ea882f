"""The onnxruntime backend (TF graphs through tf2onnx) against the conformance suite."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("onnxruntime")

from search_space.onnxruntime_options import LEVELS  # noqa: E402
from tests.backends_tests import conformance  # noqa: E402
from tests.backends_tests.tf_helpers import asr_workload  # noqa: E402
from tuner.core.records import Candidate  # noqa: E402
from tuner.runtime.onnx_providers import providers_for  # noqa: E402

NAME = "onnxruntime"


def test_registered() -> None:
    conformance.check_registered(NAME, framework="tf")
    assert providers_for("cpu")[0] == "CPUExecutionProvider"


@pytest.mark.parametrize("level", LEVELS)
def test_dynamic_levels(level: str, tmp_path: Path) -> None:
    conformance.check_candidate(NAME, Candidate(NAME, options={f"{NAME}/graph_optimization_level": level}),
                                export_dir=tmp_path, workload=conformance.tiny_tf_workload())


def test_static_one_session_per_shape(tmp_path: Path) -> None:
    built, _ = conformance.check_candidate(NAME, Candidate(NAME, "static"), export_dir=tmp_path,
                                           workload=conformance.tiny_tf_workload())
    assert len(built.state["models"]) == 2  # two distinct batch sizes
    assert sorted(p.name for p in tmp_path.glob("*.onnx")) == ["model_0.onnx", "model_1.onnx"]


def test_seed_like_decoder_with_its_loop(tmp_path: Path) -> None:
    conformance.check_candidate(NAME, Candidate(NAME), export_dir=tmp_path, workload=asr_workload())


def test_bad_choices_are_data() -> None:
    msg = conformance.check_failure_is_data(NAME, Candidate(NAME, options={f"{NAME}/execution_provider": "FooEP"}),
                                            conformance.tiny_tf_workload())
    assert "FooEP" in msg
    msg = conformance.check_failure_is_data(NAME, Candidate(NAME, options={f"{NAME}/graph_optimization_level": "max"}),
                                            conformance.tiny_tf_workload())
    assert "max" in msg
