"""Constants moved once at build time in traced TorchScript (backends._ts_passes)."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from backends import get_backend
from backends._ts_passes import drop_scalar_moves, fold_module_constant_moves
from tuner.core.records import Candidate
from tuner.workloads.loading import make_workload


class MadeInForward(nn.Module):
    """Makes tensors in forward on the input's device, as Hugging Face's DynamicCache does."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        empty = torch.tensor([], dtype=x.dtype, device=x.device)
        scale = torch.tensor([2.0, 3.0], dtype=x.dtype, device=x.device)
        return torch.cat([empty, x * scale], dim=-2)


class Accumulates(nn.Module):
    """Adds into a tensor made in forward: an in-place use, which a shared constant would carry over."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = torch.tensor([0.0, 0.0], device=x.device)
        total.add_(x.sum(0))
        return total * 1


class MovesEveryWay(nn.Module):
    """Constants moved through several ``aten::to`` overloads (device, dtype, another tensor's)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.tensor([1.0, 2.0]).to(dtype=torch.float64, device=x.device)
        b = torch.tensor([3.0, 4.0]).to(x.device, torch.float32)
        c = torch.tensor([5.0, 6.0]).to(x)
        d = torch.tensor([7.0, 8.0]).to(torch.float16)
        return x * a.float() + b + c + d.float()


class AddsAnOffset(nn.Module):
    """Adds a shape to positions on the input's device, as transformers' masks add the past's length."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset = x.shape[1]
        if isinstance(offset, torch.Tensor):  # under the tracer: a CPU scalar (prim::NumToTensor)
            offset = offset.to(x.device)
        return x + (torch.arange(x.shape[0], device=x.device)[:, None] + offset)


def _scalar_moves(module: torch.jit.ScriptModule) -> list[torch.Node]:
    return [n for m in module.modules() if isinstance(m, torch.jit.ScriptModule) and m._c._has_method("forward")
            for n in m.graph.nodes() if n.kind() == "aten::to" and n.inputsAt(0).node().kind() == "prim::NumToTensor"]


def _moves(module: torch.jit.ScriptModule) -> int:
    return sum(1 for n in module.graph.nodes() if n.kind() == "aten::to")


def _traced(model: nn.Module, x: torch.Tensor) -> torch.jit.ScriptModule:
    traced: torch.jit.ScriptModule = torch.jit.trace(model, (x,), check_trace=False)  # type: ignore[no-untyped-call]
    return traced


def test_moves_of_constants_are_folded_and_the_module_computes_and_saves_the_same() -> None:
    x = torch.randn(3, 2)
    traced = _traced(MadeInForward(), x)
    assert _moves(traced) == 2
    assert fold_module_constant_moves(traced) == 2
    assert _moves(traced) == 0
    for y in (x, torch.randn(5, 2)):
        torch.testing.assert_close(traced(y), MadeInForward()(y))
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer)
    buffer.seek(0)
    torch.testing.assert_close(torch.jit.load(buffer)(x), MadeInForward()(x))  # type: ignore[no-untyped-call]


def test_each_overload_of_a_move_is_run_with_its_own_arguments() -> None:
    x = torch.randn(3, 2)
    traced = _traced(MovesEveryWay(), x)
    assert fold_module_constant_moves(traced) >= 4
    torch.testing.assert_close(traced(x), MovesEveryWay()(x))


def test_a_constant_changed_in_place_through_an_alias_is_left_to_be_made_anew_on_each_call() -> None:
    # The trace gives the move's result to aten::detach, then aten::add_ takes that.
    traced = _traced(Accumulates(), torch.ones(4, 2))
    assert _moves(traced) == 1
    assert fold_module_constant_moves(traced) == 0


def test_a_shape_scalar_moved_for_an_elementwise_op_stays_on_the_host_and_follows_the_shape() -> None:
    traced = _traced(AddsAnOffset(), torch.zeros(3, 5))
    assert len(_scalar_moves(traced)) == 1
    assert fold_module_constant_moves(traced) == 1 and not _scalar_moves(traced)
    # The scalar is still read from the input's shape on every call, not baked in.
    x = torch.zeros(2, 7)
    torch.testing.assert_close(traced(x), AddsAnOffset()(x))
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer)  # type: ignore[no-untyped-call]
    buffer.seek(0)
    torch.testing.assert_close(torch.jit.load(buffer)(x), AddsAnOffset()(x))  # type: ignore[no-untyped-call]


def test_a_move_that_changes_a_shape_scalars_dtype_is_kept() -> None:
    class Halves(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            n = x.shape[1]
            return x + (n.to(x.device, torch.float32) if isinstance(n, torch.Tensor) else float(n))

    traced = _traced(Halves(), torch.zeros(3, 5))
    moves = _scalar_moves(traced)
    assert len(moves) == 1 and drop_scalar_moves(traced.graph) == 0 and len(_scalar_moves(traced)) == 1


def test_the_torchscript_backend_folds_gpt2s_cache_constants() -> None:
    hf_gpt2 = pytest.importorskip("experiments.workloads.hf_gpt2")
    pytest.importorskip("transformers")
    model, samples = hf_gpt2.make_tiny()
    workload = make_workload(model, samples, "cpu", name="gpt2")
    candidate = Candidate("torchscript", options={"torchscript/method": "trace"})
    built = get_backend("torchscript").build(workload, candidate).built
    assert built is not None
    module = built.state["module"]
    graphs = [m.graph for m in module.modules()
              if isinstance(m, torch.jit.ScriptModule) and m._c._has_method("forward")]
    moves = [n for g in graphs for n in g.nodes() if n.kind() == "aten::to"]
    assert moves and not [n for n in moves if n.inputsAt(0).node().kind() == "prim::Constant"]
    # The past's length that transformers' mask code moves to the device stays a host scalar (a
    # capture refuses the copy: GPT-2's graphed TorchScript trials on an H100, run 8).
    assert not _scalar_moves(module)
