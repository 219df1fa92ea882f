"""cuDNN's benchmark mode (``torch/cudnn_benchmark``) on every backend that offers it, via the conformance suite.

The switch is searched on the GPU only; on the CPU it is a no-op for the model, but the build,
measurement, export and fresh-process load still run under it, so the plumbing is checked here too.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from search_space.base import TORCH_BUILDERS
from tests.backends_tests import conformance
from tests.backends_tests.conformance import conv_workload
from tuner.core.records import Candidate
from tuner.runtime.switches import CUDNN_BENCHMARK


def _candidate(backend: str) -> Candidate:
    return Candidate(backend, options={CUDNN_BENCHMARK: True})


@pytest.mark.parametrize("backend", ["eager", "torchscript"])
def test_a_benchmark_mode_candidate_builds_runs_exports_and_loads_on_the_cpu(backend: str, tmp_path: Path) -> None:
    conformance.check_candidate(backend, _candidate(backend), "cpu", export_dir=tmp_path,
                                workload=conv_workload("cpu"))
    assert torch.backends.cudnn.benchmark is False


@pytest.mark.gpu
@pytest.mark.parametrize("backend", sorted(TORCH_BUILDERS))
def test_a_benchmark_mode_candidate_builds_runs_exports_and_loads_on_the_gpu(backend: str, tmp_path: Path) -> None:
    conformance.check_candidate(backend, _candidate(backend), "gpu", export_dir=tmp_path,
                                workload=conv_workload("gpu"))
    assert torch.backends.cudnn.benchmark is False
