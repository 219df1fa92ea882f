"""CUDA-graph replay (tuner.runtime.cuda_graphs): outputs as plain calls give, per shape, fresh; clear failures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from backends import get_backend
from tests.backends_tests.conformance import check_failure_is_data, tiny_workload
from tests.helpers import write_artifact
from tuner.core.records import Candidate
from tuner.export.artifact import load_optimized
from tuner.runtime import switches
from tuner.runtime.cuda_graphs import CaptureError, GraphedCall, _Graph, capture_failure, signature

ON = {switches.CUDA_GRAPH: True}


class TwoOut(nn.Module):
    """A few kernels, an integer input (an embedding) and two outputs, one a dict entry."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 8)
        self.lin = nn.Linear(8, 8)

    def forward(self, tokens: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        h = torch.tanh(self.lin(self.embed(tokens)) + x)
        return h, {"sum": h.sum(dim=1)}


class SyncsTheHost(nn.Module):
    """Branches on an input's value in host code: a host sync, not allowed while capturing."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x * 2
        return x


def test_the_candidate_key_is_known_and_wraps_the_model_inside_the_flags() -> None:
    assert switches.switches_of(ON) == ON
    assert switches.needed(ON) == ON and switches.any_on(ON)
    model = TwoOut()
    wrapped = switches.with_switches(model, ON)
    assert isinstance(wrapped, GraphedCall) and wrapped.fn is model
    both = switches.with_switches(model, {**ON, switches.CUDNN_BENCHMARK: True})
    assert isinstance(both, switches.SwitchedCall) and isinstance(both.fn, GraphedCall)
    assert switches.with_switches(model, {switches.CUDA_GRAPH: False}) is model
    with pytest.raises(ValueError, match="must be a bool"):
        switches.switches_of({switches.CUDA_GRAPH: "yes"})


def test_inputs_that_are_not_cuda_tensors_are_a_one_line_error_naming_the_fix() -> None:
    with pytest.raises(ValueError, match=r"CUDA tensors only; input 0 is a cpu tensor \(move the inputs") as e:
        signature((torch.zeros(2), torch.zeros(2)))
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="input 0 is int"):
        signature((3,))


def test_the_outputs_come_back_as_fresh_copies_in_the_captured_structure() -> None:
    # What a replay returns, checked without a GPU: the graph is not touched by the copy.
    outputs = (torch.ones(2), {"a": [torch.zeros(3), 7]}, None)
    graph = _Graph([], None, outputs)  # type: ignore[arg-type]
    fresh = graph.fresh_outputs()
    assert isinstance(fresh, tuple) and fresh[2] is None and fresh[1]["a"][1] == 7
    torch.testing.assert_close(fresh[0], outputs[0])
    torch.testing.assert_close(fresh[1]["a"][0], outputs[1]["a"][0])
    fresh[0].add_(1)  # the caller's own tensors: the graph's outputs stay as they were
    assert fresh[0].data_ptr() != outputs[0].data_ptr() and outputs[0].eq(1).all()


def test_on_the_cpu_such_a_candidate_fails_as_data_not_as_a_crash() -> None:
    message = check_failure_is_data("eager", Candidate("eager", options=ON), tiny_workload("cpu"))
    assert "CUDA tensors only" in message


def test_an_artifact_of_such_a_candidate_loads_wrapped_in_its_graphs(tmp_path: Path) -> None:
    # Built and exported on the CPU (the export is the plain model); load_optimized applies the
    # replay from the candidate that artifact.json keeps.
    workload = tiny_workload("cpu")
    candidate = Candidate("eager", options=ON)
    built = get_backend("eager").build(workload, candidate).built
    assert built is not None and isinstance(built.fn, GraphedCall)
    loaded = load_optimized(write_artifact(tmp_path / "best", workload, candidate, built))
    assert isinstance(loaded, GraphedCall) and not isinstance(loaded.fn, GraphedCall)
    with pytest.raises(ValueError, match="CUDA tensors only"):
        loaded(*workload.samples[0])


@pytest.mark.gpu
def test_replay_matches_plain_calls_for_each_shape_in_any_order_and_returns_fresh_tensors() -> None:
    torch.manual_seed(0)
    model = TwoOut().cuda().eval()
    graphed = GraphedCall(model)
    gen = torch.Generator().manual_seed(1)

    def sample(batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.randint(0, 10, (batch,), generator=gen).cuda(), torch.randn(batch, 8, generator=gen).cuda())

    # Shapes in alternation: the graphs share one memory pool, so a later capture's buffers may
    # sit where an earlier graph's intermediates were.
    calls = [sample(b) for b in (4, 2, 4, 1, 2, 4, 1)]
    outs = []
    for args in calls:
        h, d = graphed(*args)
        with torch.no_grad():
            ref_h, ref_d = model(*args)
        torch.testing.assert_close(h, ref_h)
        torch.testing.assert_close(d["sum"], ref_d["sum"])
        assert not h.requires_grad
        outs.append(h)
    assert len(graphed.graphs) == 3
    # Each call's outputs are the caller's: a later replay of the same shape does not change them.
    torch.testing.assert_close(outs[0], model(*calls[0])[0].detach())
    assert outs[0].data_ptr() != outs[2].data_ptr()


@pytest.mark.gpu
def test_a_model_that_syncs_the_host_fails_to_capture_and_the_process_goes_on() -> None:
    x = torch.ones(4, device="cuda")
    with pytest.raises(CaptureError, match="cannot be captured in a CUDA graph"):
        GraphedCall(SyncsTheHost())(x)
    # The CUDA context is still usable, for plain calls and for another capture.
    torch.testing.assert_close(GraphedCall(lambda t: t + 1)(x), x + 1)


def test_a_capture_failure_names_the_models_error_before_the_captures_end() -> None:
    # torch.cuda.graph's exit ends the capture, which fails after any error inside it; the error
    # raised is then the capture's, with the model's as its context.
    class EndsCapture:
        def __enter__(self) -> None:
            pass

        def __exit__(self, *exc: object) -> None:
            raise RuntimeError("CUDA error: operation failed due to a previous error during capture")

    try:
        with EndsCapture():
            raise RuntimeError("CUDA error: operation not permitted when stream is capturing")
    except RuntimeError as e:
        said = capture_failure(e)
    assert said.index("not permitted") < said.index("previous error during capture"), said
    plain = RuntimeError("cudaStreamBeginCapture failed")
    assert capture_failure(plain).startswith("RuntimeError: cudaStreamBeginCapture failed")
