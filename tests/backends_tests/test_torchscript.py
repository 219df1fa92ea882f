"""The torchscript backend against the conformance suite."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from backends import get_backend
from backends._jit_fuser import FuserCall
from tests.backends_tests import conformance
from tuner.core.accuracy import accuracy_rule
from tuner.core.records import Candidate
from tuner.runtime.correctness import check_outputs
from tuner.workloads.loading import make_workload

NAME = "torchscript"


def ts(method: str = "script", freeze: bool = False, optimize: bool = False, fuser: str = "none",
       precision: str = "fp32") -> Candidate:
    return Candidate(NAME, precision=precision, options={
        "torchscript/method": method, "torchscript/freeze": freeze,
        "torchscript/optimize_for_inference": optimize, "torchscript/fuser": fuser})


CANDIDATES = [
    ts("script", freeze=True),
    ts("script"),
    ts("trace", freeze=True),
    ts("trace", optimize=True),
]


def test_registered() -> None:
    conformance.check_registered(NAME)


@pytest.mark.parametrize("candidate", CANDIDATES, ids=lambda c: c.describe())
def test_candidate(candidate: Candidate) -> None:
    built, _ = conformance.check_candidate(NAME, candidate)
    # The fuser must wrap every call: fusion happens during the profiling runs.
    assert isinstance(built.fn, FuserCall) and built.fn.fuser == candidate.option("fuser")


@pytest.mark.parametrize("candidate", [ts("script", freeze=True), ts("trace", optimize=True)],
                         ids=lambda c: c.describe())
def test_export_load(candidate: Candidate, tmp_path: Path) -> None:
    built, _ = conformance.check_candidate(NAME, candidate)
    meta = conformance.check_export_load(NAME, built, candidate, tmp_path)
    assert meta["fuser"] == candidate.option("fuser")


@pytest.mark.parametrize("method", ["script", "trace"])
def test_bf16_o2(method: str) -> None:
    conformance.check_candidate(NAME, ts(method, freeze=True, precision="bf16"), level="o2")


def test_fuser1_on_cpu() -> None:
    # NNC needs LLVM for CPU code; the CPU wheels are built without it.
    candidate = ts("script", freeze=True, fuser="fuser1")
    if torch._C._llvm_enabled():
        built, _ = conformance.check_candidate(NAME, candidate)
        assert isinstance(built.fn, FuserCall) and built.fn.fuser == "fuser1"
    else:
        assert "LLVM" in conformance.check_failure_is_data(NAME, candidate)


def test_defaults_without_options() -> None:
    built, _ = conformance.check_candidate(NAME, Candidate(NAME))
    assert not isinstance(built.fn, FuserCall)


def test_model_that_raises_is_data() -> None:
    for method in ("script", "trace"):
        msg = conformance.check_failure_is_data(NAME, ts(method), conformance.broken_workload())
        # A scripted model's run-time error keeps its cause on the message's last line; measure()
        # reports the first one.
        assert "boom" in msg or "TorchScript interpreter" in msg


@pytest.mark.parametrize("options", [{"torchscript/method": "compile"}, {"torchscript/fuser": "fuser9"},
                                     {"torchscript/freeze": "yes"}, {"torchscript/freez": True}])
def test_invalid_option_is_data(options: dict[str, object]) -> None:
    msg = conformance.check_failure_is_data(NAME, Candidate(NAME, options=options))
    assert msg


@pytest.mark.gpu
def test_gpu(tmp_path: Path) -> None:
    conformance.check_registered(NAME, "gpu")
    conformance.check_candidate(NAME, ts("script", freeze=True, fuser="fuser1"), "gpu", export_dir=tmp_path)
    conformance.check_candidate(NAME, ts("trace", fuser="none"), "gpu")


def test_optimize_for_inference_with_conv_exports(tmp_path: Path) -> None:
    # On the CPU optimize_for_inference turns convs into MKLDNN ops whose constants save but do not
    # load back: the artifact keeps the module from before the pass and load() re-applies it.
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU()).eval()
    workload = make_workload(model, [(torch.randn(b, 3, 8, 8),) for b in (2, 3)], "cpu", name="conv")
    candidate = ts("trace", freeze=True, optimize=True)
    backend = get_backend(NAME)
    result = backend.build(workload, candidate)
    assert result.built is not None, result.error_msg
    measurement = backend.measure(result.built, workload, conformance.FAST)
    assert measurement.outputs is not None, measurement.error_msg
    assert check_outputs(measurement.outputs, workload.reference, accuracy_rule(None, "o1")).ok
    meta = backend.export(result.built, workload, candidate, tmp_path)
    assert meta["optimize_for_inference"] is True
    loaded = type(backend).load(tmp_path, meta, "cpu")
    assert check_outputs(conformance.outputs_of(loaded, workload), workload.reference, accuracy_rule(None, "o1")).ok


def test_a_model_script_refuses_fails_with_its_real_error_every_time() -> None:
    # A failed script leaves the class half-defined in TorchScript's compilation unit: without
    # the backend's memo the second build says "Can't redefine method: forward" instead.
    from tests.backends_tests.unscriptable import Unscriptable

    workload = make_workload(Unscriptable().eval(), [(torch.randn(2, 3),)], "cpu")
    backend = get_backend(NAME)
    messages = []
    for freeze in (False, True):
        res = backend.build(workload, Candidate(NAME, options={"torchscript/method": "script",
                                                              "torchscript/freeze": freeze}))
        assert res.built is None
        messages.append(res.error_msg or "")
    for msg in messages:
        assert "cannot be used as a tuple" in msg, msg
        assert "redefine" not in msg, msg
    # Tracing the same class still works in the same process.
    traced = backend.build(workload, Candidate(NAME, options={"torchscript/method": "trace"}))
    assert traced.built is not None, traced.error_msg
