"""Programs that together take every test shape (backends._export_cover), through the eager and Inductor artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from backends import get_backend
from backends._export_cover import export_covering, takes
from backends._torch_export import cxx_compiler_available
from tests.helpers import write_artifact
from tuner.core.records import Candidate
from tuner.core.workload import Workload
from tuner.export.artifact import load_optimized
from tuner.runtime.models import prepared_model
from tuner.workloads.loading import make_workload


class Branchy(nn.Module):
    """Takes another path for a single step than for several (as GPT-2's attention does)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > 1:
            return x.cumsum(1)
        return x * 2


def _branchy_workload() -> Workload:
    gen = torch.Generator().manual_seed(0)
    samples = [(torch.randn(4, n, generator=gen),) for n in (1, 8, 5)]
    return make_workload(Branchy().eval(), samples, "cpu", name="branchy")


def test_a_model_branching_on_a_varying_size_gets_a_program_per_branch() -> None:
    workload = _branchy_workload()
    covering = export_covering(workload.model, workload)
    assert len(covering) == 2
    (_, several), (_, single) = covering  # the largest sample's first
    assert single == [[4, 1]] and several[0][0] == 4
    seq = several[0][1]
    assert isinstance(seq, list) and (seq[0] or 0) <= 5
    assert takes(several, (torch.ones(4, 3),)) and not takes(single, (torch.ones(4, 3),))
    assert not takes(several, (torch.ones(4, 3, 1),))


def test_one_program_where_one_takes_every_shape() -> None:
    model = nn.Sequential(nn.Linear(3, 3)).eval()
    workload = make_workload(model, [(torch.randn(n, 3),) for n in (2, 6)], "cpu", name="mlp")
    assert len(export_covering(workload.model, workload)) == 1


def test_the_eager_artifact_picks_the_program_by_shape_and_names_shapes_none_takes(tmp_path: Path) -> None:
    workload = _branchy_workload()
    built = get_backend("eager").build(workload, Candidate("eager")).built
    assert built is not None
    loaded = load_optimized(write_artifact(tmp_path / "best", workload, Candidate("eager"), built))
    assert sorted(p.name for p in (tmp_path / "best").glob("*.pt2")) == ["model.pt2", "model_1.pt2"]
    for x in (torch.randn(4, 1), torch.randn(4, 8), torch.randn(4, 3)):
        torch.testing.assert_close(loaded(x), Branchy()(x))
    with pytest.raises(ValueError, match=r"no program of this artifact takes input shapes 3x1; .*tune again"):
        loaded(torch.randn(3, 1))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_gpt2_prefill_and_decode_reload_from_one_eager_artifact(tmp_path: Path, precision: str) -> None:
    hf_gpt2 = pytest.importorskip("experiments.workloads.hf_gpt2")
    pytest.importorskip("transformers")
    model, samples = hf_gpt2.make_tiny()
    workload = make_workload(model, samples, "cpu", name="gpt2")
    candidate = Candidate("eager", precision=precision)
    built = get_backend("eager").build(workload, candidate).built
    assert built is not None
    best = write_artifact(tmp_path / "best", workload, candidate, built)
    # Exported, not traced: a half-precision wrapper's cast of the empty past once failed every try
    # (and a trace of GPT-2 copies a CPU scalar per call, which a CUDA graph cannot capture).
    assert json.loads((best / "artifact.json").read_text())["meta"]["format"] == "torch.export"
    loaded = load_optimized(best)
    with torch.no_grad():
        for sample in samples:  # the empty-past prefill and the one-token decode step
            torch.testing.assert_close(loaded(*sample)[0], built.fn(*sample)[0])


def test_gpt2_programs_skip_the_causal_mask_as_the_candidate_does() -> None:
    # The empty-past prefill is exported for that past only (the candidate specializes it too), so
    # transformers' shape-decided skip holds and SDPA gets is_causal, not a built mask, in fp32 as
    # in fp16; a program for any past length built the mask (30 more ops per call).
    hf_gpt2 = pytest.importorskip("experiments.workloads.hf_gpt2")
    pytest.importorskip("transformers")
    model, samples = hf_gpt2.make_tiny()
    workload = make_workload(model, samples, "cpu", name="gpt2")
    covering = export_covering(prepared_model(workload, Candidate("eager"), trace=True), workload)
    assert len(covering) == 2  # the decode step's and the prefill's
    for program, _ in covering:
        calls = [n for n in program.graph.nodes if n.target == torch.ops.aten.scaled_dot_product_attention.default]
        assert calls
        for call in calls:
            mask = call.args[3] if len(call.args) > 3 else call.kwargs.get("attn_mask")
            assert mask is None, f"{call.format_node()}"


@pytest.mark.slow
@pytest.mark.skipif(not cxx_compiler_available(), reason="AOTInductor needs a C++ compiler")
def test_the_inductor_artifact_packages_each_program(tmp_path: Path) -> None:
    workload = _branchy_workload()
    candidate = Candidate("inductor", shape_mode="dynamic")
    built = get_backend("inductor").build(workload, candidate).built
    assert built is not None
    loaded = load_optimized(write_artifact(tmp_path / "best", workload, candidate, built))
    for x in (torch.randn(4, 1), torch.randn(4, 8)):
        torch.testing.assert_close(loaded(x), Branchy()(x))
