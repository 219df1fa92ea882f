"""Channels-last weights (``layout/channels_last``) on every backend that offers it, via the conformance suite.

The choice is searched on the GPU only; the CPU runs the same model transform, so the build,
measurement, export and fresh-process load are checked here too, and that the artifact keeps
the layout.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from search_space.base import TORCH_BUILDERS
from tests.backends_tests import conformance
from tests.backends_tests.conformance import conv_workload
from tuner.core.records import Candidate
from tuner.runtime.models import CHANNELS_LAST, in_precision


def _candidate(backend: str, precision: str = "fp32") -> Candidate:
    return Candidate(backend, precision=precision, options={CHANNELS_LAST: True})


@pytest.mark.parametrize("precision", ["fp32", "bf16", "amp-bf16"])
def test_the_weights_of_the_prepared_model_are_channels_last_and_the_users_model_is_untouched(precision: str) -> None:
    workload = conv_workload("cpu")
    model = in_precision(workload.model, workload, _candidate("eager", precision))
    four_d = [p for p in model.parameters() if p.dim() == 4]
    assert four_d and all(p.is_contiguous(memory_format=torch.channels_last) for p in four_d)
    assert all(p.is_contiguous() for p in workload.model.parameters())
    with torch.no_grad():
        torch.testing.assert_close(model(*workload.samples[1]).float(), workload.model(*workload.samples[1]),
                                   atol=0.05, rtol=0.05)


@pytest.mark.parametrize("backend", ["eager", "torchscript"])
def test_a_channels_last_candidate_builds_runs_exports_and_loads_on_the_cpu(backend: str, tmp_path: Path) -> None:
    conformance.check_candidate(backend, _candidate(backend), "cpu", export_dir=tmp_path,
                                workload=conv_workload("cpu"))
    # The artifact holds the weights channels-last (an exported program's state, a trace's constants).
    held = [t for t in _saved_tensors(tmp_path) if t.dim() == 4]
    assert held and all(t.is_contiguous(memory_format=torch.channels_last) for t in held)


def _saved_tensors(directory: Path) -> list[torch.Tensor]:
    """The tensors of the programs (``*.pt2``) and TorchScript modules (``*.ts``) in an artifact folder."""
    out: list[torch.Tensor] = []
    for path in directory.glob("*.pt2"):
        program = torch.export.load(path)
        out += [*program.state_dict.values(), *program.constants.values()]
    for path in directory.glob("*.ts"):
        module = torch.jit.load(str(path))
        out += list(module.state_dict().values())
        out += [n.t("value") for n in module.graph.findAllNodes("prim::Constant")
                if n.hasAttribute("value") and n.kindOf("value") == "t"]
    return [t for t in out if isinstance(t, torch.Tensor)]


@pytest.mark.gpu
@pytest.mark.parametrize("backend", sorted(TORCH_BUILDERS))
def test_a_channels_last_half_candidate_builds_runs_exports_and_loads_on_the_gpu(backend: str,
                                                                                tmp_path: Path) -> None:
    conformance.check_candidate(backend, _candidate(backend, "fp16"), "gpu", level="o2", export_dir=tmp_path,
                                workload=conv_workload("gpu"))
