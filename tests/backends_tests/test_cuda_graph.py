"""CUDA-graph replay (``torch/cuda_graph``) on every backend that offers it, via the conformance suite."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from search_space.base import TORCH_BUILDERS
from tests.backends_tests import conformance
from tuner.core.records import Candidate
from tuner.core.workload import Workload
from tuner.runtime.switches import CUDA_GRAPH
from tuner.workloads.demo import make_demo
from tuner.workloads.loading import make_workload


@functools.cache
def demo_workload() -> Workload:
    # The demo decoder: launch-bound, six inputs (one integer), four outputs, three batch sizes.
    model, samples = make_demo()
    by_batch = {s[0].shape[0]: s for s in samples}
    return make_workload(model, [by_batch[b] for b in sorted(by_batch)] * 2, "gpu", name="demo")


@pytest.mark.gpu
@pytest.mark.parametrize("backend", sorted(TORCH_BUILDERS))
def test_a_cuda_graph_candidate_builds_runs_exports_and_loads_on_the_gpu(backend: str, tmp_path: Path) -> None:
    built, _ = conformance.check_candidate(backend, Candidate(backend, options={CUDA_GRAPH: True}), "gpu",
                                           export_dir=tmp_path, workload=demo_workload())
    assert len(built.fn.graphs) == 3  # type: ignore[attr-defined]
    assert not torch.cuda.is_current_stream_capturing()


@pytest.mark.gpu
def test_gpt2s_traced_torchscript_in_half_precision_captures_and_is_right() -> None:
    # Its trace moved the past's length to the GPU on every call, which a capture refuses (an H100,
    # run 8: "Cannot copy between CPU and CUDA tensors during CUDA graph capture").
    hf_gpt2 = pytest.importorskip("experiments.workloads.hf_gpt2")
    from tuner.core.accuracy import accuracy_rule
    from tuner.core.records import MeasureConfig
    from tuner.runner.evaluate import evaluate

    model, samples = hf_gpt2.make_tiny()
    workload = make_workload(model, samples, "gpu", name="gpt2")
    candidate = Candidate("torchscript", precision="fp16",
                          options={CUDA_GRAPH: True, "torchscript/method": "trace", "torchscript/freeze": True})
    outcome = evaluate(candidate, workload, accuracy_rule(None, "o2"), MeasureConfig(warmup=1, repeats=3))
    assert outcome.ok, outcome.failure_reason
