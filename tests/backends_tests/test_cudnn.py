"""cuDNN's benchmark mode (``torch/cudnn_benchmark``) on every backend that offers it, via the conformance suite.

The switch is searched on the GPU only; on the CPU it is a no-op for the model, but the build,
measurement, export and fresh-process load still run under it, so the plumbing is checked here too.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
from torch import nn

from search_space.cudnn import BACKENDS
from tests.backends_tests import conformance
from tuner.core.records import Candidate
from tuner.core.workload import Workload
from tuner.runtime.switches import CUDNN_BENCHMARK
from tuner.workloads.loading import make_workload


class ConvNet(nn.Module):
    """Conv + batch norm + ReLU + 1x1 conv + pooling: what cuDNN runs in a ResNet block."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.conv(x)))
        return nn.functional.adaptive_avg_pool2d(self.head(y), 1).flatten(1)


@functools.cache
def conv_workload(device: str) -> Workload:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    samples = [(torch.randn(b, 3, 16, 16, generator=gen),) for b in (1, 4, 1)]
    return make_workload(ConvNet().eval(), samples, device, name="conv")


def _candidate(backend: str) -> Candidate:
    return Candidate(backend, options={CUDNN_BENCHMARK: True})


@pytest.mark.parametrize("backend", ["eager", "torchscript"])
def test_a_benchmark_mode_candidate_builds_runs_exports_and_loads_on_the_cpu(backend: str, tmp_path: Path) -> None:
    conformance.check_candidate(backend, _candidate(backend), "cpu", export_dir=tmp_path,
                                workload=conv_workload("cpu"))
    assert torch.backends.cudnn.benchmark is False


@pytest.mark.gpu
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_benchmark_mode_candidate_builds_runs_exports_and_loads_on_the_gpu(backend: str, tmp_path: Path) -> None:
    conformance.check_candidate(backend, _candidate(backend), "gpu", export_dir=tmp_path,
                                workload=conv_workload("gpu"))
    assert torch.backends.cudnn.benchmark is False
