"""The tf_xla backend against the conformance suite; its artifacts keep the XLA compilation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("tensorflow")

from backends import get_backend  # noqa: E402
from experiments.workloads import tf_asr  # noqa: E402
from tests.backends_tests import conformance  # noqa: E402
from tests.backends_tests.tf_helpers import XLA_COMPILED, asr_workload, run_fresh, write_manifest  # noqa: E402
from tuner.core.records import Candidate  # noqa: E402
from tuner.workloads.loading import make_workload  # noqa: E402

NAME = "tf_xla"


def test_registered() -> None:
    conformance.check_registered(NAME, framework="tf")


def test_jit_compile_builds_runs_exports(tmp_path: Path) -> None:
    conformance.check_candidate(NAME, Candidate(NAME, "static"), export_dir=tmp_path,
                                workload=conformance.tiny_tf_workload())
    assert (tmp_path / "saved_model" / "saved_model.pb").is_file()


def test_auto_clustering_builds_runs_exports(tmp_path: Path) -> None:
    built, _ = conformance.check_candidate(NAME, Candidate(NAME, "static", options={f"{NAME}/clustering": "auto2"}),
                                           export_dir=tmp_path, workload=conformance.tiny_tf_workload())
    assert built.state["xla_launches"] >= 1


def _export_and_probe(candidate: Candidate, tmp_path: Path) -> tuple[dict[str, object], str]:
    workload = asr_workload()
    backend = get_backend(NAME)
    result = backend.build(workload, candidate)
    assert result.built is not None, result.error_msg
    directory = tmp_path / "artifact"
    directory.mkdir()
    meta = backend.export(result.built, workload, candidate, directory)
    write_manifest(directory, NAME, candidate.to_dict(), meta)
    probe, stderr = run_fresh(directory, workload, tmp_path)
    for outs, ref in zip(probe["outputs"], workload.reference, strict=True):  # type: ignore[arg-type]
        torch.testing.assert_close(torch.tensor(outs[0]), ref[0], rtol=1e-4, atol=1e-4)
        assert torch.equal(torch.tensor(outs[1], dtype=torch.int32), ref[1])
    return probe, stderr


def test_saved_model_compiles_with_xla_in_a_fresh_process(tmp_path: Path) -> None:
    # Plain TF loads the SavedModel; its function still carries jit_compile: XLA compiles it.
    _, stderr = _export_and_probe(Candidate(NAME, "static"), tmp_path)
    assert XLA_COMPILED in stderr


def test_auto_clustered_graph_launches_xla_in_a_fresh_process(tmp_path: Path) -> None:
    probe, stderr = _export_and_probe(Candidate(NAME, "static", options={f"{NAME}/clustering": "auto4"}), tmp_path)
    assert probe["xla_launches"] and XLA_COMPILED in stderr


def test_what_xla_cannot_take_is_data() -> None:
    # A TF1 graph (Enter/Exit loop frames) is not functional control flow: jit_compile refuses it.
    v1 = make_workload(tf_asr.build_graph_def(control_flow_v1=True), tf_asr.make_samples((8,)), "cpu",
                       inputs=list(tf_asr.INPUTS), outputs=list(tf_asr.OUTPUTS))
    msg = conformance.check_failure_is_data(NAME, Candidate(NAME, "static"), v1)
    assert "Enter" in msg
    # A minimum cluster size no cluster reaches: nothing would be compiled, so it is not XLA.
    msg = conformance.check_failure_is_data(NAME, Candidate(NAME, "static", options={f"{NAME}/clustering": "auto999"}),
                                            conformance.tiny_tf_workload())
    assert "formed no cluster" in msg
    msg = conformance.check_failure_is_data(NAME, Candidate(NAME, "static", options={f"{NAME}/clustering": "most"}),
                                            conformance.tiny_tf_workload())
    assert "not 'jit_compile' or 'auto<N>'" in msg
