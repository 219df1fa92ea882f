"""Process-wide torch switches (tuner.runtime.switches): set around each call, kept in the artifact, never leaked."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from backends import get_backend
from tests.helpers import write_artifact
from tuner.core.records import Candidate
from tuner.export.artifact import load_optimized
from tuner.runtime import switches
from tuner.workloads.loading import make_workload

ON = {switches.CUDNN_BENCHMARK: True}


class Recorder(nn.Module):
    """Records cuDNN's benchmark flag at each call (an eager model sees the process's flags)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(bool(torch.backends.cudnn.benchmark))
        return x * 2


class TF32Recorder(nn.Module):
    """Records whether TF32 matmuls and convolutions are on at each call."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((bool(torch.backends.cuda.matmul.allow_tf32), bool(torch.backends.cudnn.allow_tf32)))
        return x * 2


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


def test_only_known_boolean_torch_switches_are_accepted() -> None:
    assert switches.switches_of({"inductor/mode": "default", **ON}) == ON
    with pytest.raises(ValueError, match="unknown torch switch 'torch/cudnn_bench'"):
        switches.switches_of({"torch/cudnn_bench": True})
    with pytest.raises(ValueError, match="must be a bool"):
        switches.switches_of({switches.CUDNN_BENCHMARK: "yes"})
    assert switches.any_on(ON) and not switches.any_on({switches.CUDNN_BENCHMARK: False})


def test_a_switch_holds_for_the_call_and_is_restored_even_when_the_call_fails() -> None:
    assert torch.backends.cudnn.benchmark is False

    def boom(x: torch.Tensor) -> None:
        assert torch.backends.cudnn.benchmark is True
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        switches.with_switches(boom, ON)(torch.ones(1))
    assert torch.backends.cudnn.benchmark is False
    assert switches.with_switches(boom, {"eager/x": 1}) is boom


def test_a_built_candidate_runs_under_its_switches_and_leaves_the_process_as_it_was() -> None:
    model = Recorder()
    workload = make_workload(model, [(torch.ones(2, 3),)], "cpu", name="recorder")
    model.seen.clear()
    backend = get_backend("eager")
    on = backend.build(workload, Candidate("eager", options=ON))
    off = backend.build(workload, Candidate("eager", options={switches.CUDNN_BENCHMARK: False}))
    assert on.built is not None and off.built is not None
    on.built.fn(torch.ones(2, 3))
    off.built.fn(torch.ones(2, 3))
    on.built.fn(torch.ones(2, 3))
    assert model.seen == [True, False, True]
    assert torch.backends.cudnn.benchmark is False


def test_an_unknown_switch_is_a_failed_build_not_a_crash() -> None:
    workload = make_workload(Recorder(), [(torch.ones(2, 3),)], "cpu", name="recorder")
    result = get_backend("eager").build(workload, Candidate("eager", options={"torch/cudnn_bench": True}))
    assert result.built is None and "unknown torch switch" in str(result.error_msg)


def test_a_loaded_artifact_runs_under_the_switches_of_its_candidate(tmp_path: Path) -> None:
    workload = make_workload(ConvNet().eval(), [(torch.randn(1, 3, 8, 8),)], "cpu", name="conv")
    candidate = Candidate("eager", options=ON)
    built = get_backend("eager").build(workload, candidate).built
    assert built is not None
    loaded = load_optimized(write_artifact(tmp_path / "best", workload, candidate, built))
    assert isinstance(loaded, switches.SwitchedCall) and loaded.switches == ON  # TF32 is pinned on a GPU only
    torch.testing.assert_close(loaded(*workload.samples[0]), workload.model(*workload.samples[0]))


def test_a_model_with_convolution_modules_is_told_apart_scripted_or_not() -> None:
    conv = make_workload(ConvNet().eval(), [(torch.randn(1, 3, 8, 8),)], "cpu", name="conv")
    scripted = make_workload(torch.jit.script(ConvNet().eval()), [(torch.randn(1, 3, 8, 8),)], "cpu", name="s")
    plain = make_workload(nn.Sequential(nn.Linear(3, 3)).eval(), [(torch.randn(2, 3),)], "cpu", name="mlp")
    assert conv.has_convolutions() and scripted.has_convolutions()
    assert not plain.has_convolutions()


def test_each_candidate_runs_under_its_own_tf32_whichever_was_built_last() -> None:
    # The finalists are built one after another, then measured in alternating rounds: a TF32 flag
    # set at build time would hold for all of them.
    model = TF32Recorder()
    workload = make_workload(model, [(torch.ones(2, 3),)], "cpu", name="tf32")
    model.seen.clear()
    backend = get_backend("eager")
    tf32 = backend.build(workload, Candidate("eager", precision="tf32")).built
    fp32 = backend.build(workload, Candidate("eager")).built
    assert tf32 is not None and fp32 is not None
    for fn in (tf32.fn, fp32.fn, tf32.fn):
        fn(torch.ones(2, 3))
    assert model.seen == [(True, True), (False, False), (True, True)]
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (False, False)
    assert not isinstance(fp32.fn, switches.SwitchedCall)  # nothing to switch: no wrapper, no cost


def test_a_call_restores_both_tf32_flags_as_they_were() -> None:
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = False, True  # torch's defaults
        switches.with_switches(lambda: None, {}, "tf32")()
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (False, True)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def test_a_loaded_fp32_model_runs_with_tf32_off_in_a_process_at_torch_defaults() -> None:
    # A fresh process has cuDNN's TF32 on; the fp32 candidate was measured with it off (on an
    # H100, ResNet-50's reloaded logits were off by 0.044 at o1 before this).
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    seen: list[tuple[bool, bool]] = []
    try:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = False, True  # torch's defaults
        fn = switches.with_switches(lambda: seen.append(switches.tf32_flags()), {}, "fp32", loaded=True)
        fn()
        assert seen == [(False, False)]
        assert switches.tf32_flags() == (False, True)
        assert switches.with_switches(fn, {}, "fp32") is fn  # a build's own state needs no wrapper
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
