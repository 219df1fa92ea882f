"""Shared test set-up: the ``gpu`` marker skips without a CUDA GPU; small workloads for fast tests."""

from __future__ import annotations

import os

# One OpenMP (and TVM runtime) thread per process, set before torch loads OpenMP; the test
# processes, their tune workers and fresh-process checks inherit it. The suite runs two test
# processes, each starting more, on CI's two cores, and OpenMP's idle threads spin: three
# 2-thread processes there ran a small model 10 times slower than with one thread each
# (experiments/omp_oversubscription.py). A variable already set is left alone.
for _name in ("OMP_NUM_THREADS", "TVM_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import pytest  # noqa: E402
import torch  # noqa: E402


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Slow tests first (a stable sort). The test command runs two processes with ``--dist
    # loadscope --no-loadscope-reorder``: each module goes where its first test goes, in this
    # order, so the real-model module (about 10 minutes) starts at once instead of last, when the
    # other process would sit idle at the end (about 2 minutes, 2026-12-07).
    items.sort(key=lambda item: "slow" not in item.keywords)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
