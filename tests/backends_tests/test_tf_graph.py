"""The tf_graph backend (Grappler rewriters) against the conformance suite, and its GraphDef artifact."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
import torch

pytest.importorskip("tensorflow")

from backends import get_backend  # noqa: E402
from backends.tf_graph import REWRITERS, optimize_graph, rewrites_of  # noqa: E402
from tests.backends_tests import conformance  # noqa: E402
from tests.backends_tests.tf_helpers import XLA_COMPILED, asr_workload, run_fresh, write_manifest  # noqa: E402
from tuner.core.records import Candidate  # noqa: E402

NAME = "tf_graph"


def _ops(graph_def: object) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter(n.op for n in graph_def.node)  # type: ignore[attr-defined]
    for f in graph_def.library.function:  # type: ignore[attr-defined]
        counts.update(n.op for n in f.node_def)
    return counts


def test_registered() -> None:
    conformance.check_registered(NAME, framework="tf")


def test_default_builds_runs_exports(tmp_path: Path) -> None:
    conformance.check_candidate(NAME, Candidate(NAME), export_dir=tmp_path, workload=conformance.tiny_tf_workload())
    assert (tmp_path / "model.pb").is_file() and (tmp_path / "session_config.pb").is_file()


def test_every_rewriter_off(tmp_path: Path) -> None:
    off = {f"{NAME}/{k}": "off" for k in REWRITERS}
    conformance.check_candidate(NAME, Candidate(NAME, options=off), export_dir=tmp_path,
                                workload=conformance.tiny_tf_workload())


def test_remapper_choice_changes_the_graph() -> None:
    # The remapper fuses MatMul+BiasAdd(+activation) into _FusedMatMul; off, the MatMuls stay.
    model = asr_workload().model
    on = _ops(optimize_graph(model, rewrites_of(Candidate(NAME))))
    off = _ops(optimize_graph(model, rewrites_of(Candidate(NAME, options={f"{NAME}/remapping": "off"}))))
    assert on["_FusedMatMul"] >= 1 and off["_FusedMatMul"] == 0
    assert off["MatMul"] > on["MatMul"]


def test_asr_graph_reloads_in_a_fresh_process(tmp_path: Path) -> None:
    workload = asr_workload()
    candidate = Candidate(NAME)
    backend = get_backend(NAME)
    built = backend.build(workload, candidate).built
    assert built is not None
    directory = tmp_path / "artifact"
    directory.mkdir()
    meta = backend.export(built, workload, candidate, directory)
    write_manifest(directory, NAME, candidate.to_dict(), meta)
    probe, stderr = run_fresh(directory, workload, tmp_path)
    for outs, ref in zip(probe["outputs"], workload.reference, strict=True):  # type: ignore[arg-type]
        torch.testing.assert_close(torch.tensor(outs[0]), ref[0], rtol=1e-4, atol=1e-4)
        assert torch.equal(torch.tensor(outs[1], dtype=torch.int32), ref[1])
    # Grappler only: no XLA anywhere.
    assert probe["xla_launches"] == [] and XLA_COMPILED not in stderr


def test_unknown_option_and_torch_workload_are_data() -> None:
    msg = conformance.check_failure_is_data(NAME, Candidate(NAME, options={f"{NAME}/speed": "on"}),
                                            conformance.tiny_tf_workload())
    assert "tf_graph/speed" in msg or "speed" in msg
    msg = conformance.check_failure_is_data(NAME, Candidate(NAME), conformance.tiny_workload())
    assert "TensorFlow workloads" in msg
