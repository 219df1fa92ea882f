"""The eager backend against the conformance suite."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from backends import get_backend
from backends._jit_fuser import FuserCall
from tests.backends_tests import conformance
from tuner.core.accuracy import accuracy_rule
from tuner.core.records import Candidate
from tuner.runtime.correctness import check_outputs

NAME = "eager"


def test_registered() -> None:
    conformance.check_registered(NAME)


def test_fp32_builds_runs_exports(tmp_path: Path) -> None:
    conformance.check_candidate(NAME, Candidate(NAME), export_dir=tmp_path)
    assert (tmp_path / "model.pt2").is_file()


def test_bf16_o2(tmp_path: Path) -> None:
    conformance.check_candidate(NAME, Candidate(NAME, precision="bf16"), level="o2", export_dir=tmp_path)


def test_model_that_raises_is_data() -> None:
    msg = conformance.check_failure_is_data(NAME, Candidate(NAME), conformance.broken_workload())
    assert "boom" in msg


def test_unknown_option_is_data() -> None:
    msg = conformance.check_failure_is_data(NAME, Candidate(NAME, options={"eager/speed": "fast"}))
    assert "eager/speed" in msg


def test_export_falls_back_to_torchscript(tmp_path: Path) -> None:
    # A ScriptModule cannot be captured by torch.export: the artifact is the TorchScript trace.
    workload = conformance.tiny_workload()
    scripted = dataclasses.replace(workload, model=torch.jit.script(workload.model))
    backend = get_backend(NAME)
    built = backend.build(scripted, Candidate(NAME)).built
    assert built is not None
    meta = backend.export(built, scripted, Candidate(NAME), tmp_path)
    assert meta["format"] == "torchscript" and meta["export_error"]
    loaded = type(backend).load(tmp_path, meta, "cpu")
    # As measured: eager fuses nothing, so neither does the profiling executor running its trace.
    assert isinstance(loaded, FuserCall) and loaded.fuser == "none"
    assert check_outputs(conformance.outputs_of(loaded, workload), workload.reference, accuracy_rule(None, "o1")).ok


@pytest.mark.gpu
def test_gpu(tmp_path: Path) -> None:
    conformance.check_registered(NAME, "gpu")
    conformance.check_candidate(NAME, Candidate(NAME), "gpu", export_dir=tmp_path)
