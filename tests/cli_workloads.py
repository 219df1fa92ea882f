"""Factories for ``tune --model tests.cli_workloads:...`` in CLI tests (run in a subprocess).

Importing this module also registers ``test_always_fails``, a test-only backend whose compiler
always raises: a study that searches only it ends with no successful trial.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from backends.base import Backend
from tests.helpers import tiny_model, tiny_samples
from tuner.core.records import Built, Candidate
from tuner.core.workload import Workload


class AlwaysFailsBackend(Backend):
    """Test-only: every build raises, as a compiler that cannot handle the model would."""

    name = "test_always_fails"
    test_only = True

    def compile(self, workload: Workload, candidate: Candidate) -> Built:
        raise RuntimeError("this compiler cannot build the model")

    def export(self, built: Built, workload: Workload, candidate: Candidate, directory: Path) -> dict[str, Any]:
        raise AssertionError("never built, so never exported")

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any], device: str) -> Callable[..., Any]:
        raise AssertionError("never exported, so never loaded")


def make_tiny() -> tuple[torch.nn.Module, list[tuple[torch.Tensor, ...]]]:
    """The tiny model and its test data (the same as ``tests.helpers:make_tiny``)."""
    return tiny_model(), tiny_samples()


def make_other_tiny() -> tuple[torch.nn.Module, list[tuple[torch.Tensor, ...]]]:
    """Another model of the same architecture (other weights): a different workload."""
    model = tiny_model()
    with torch.no_grad():
        model.fc2.bias.add_(1.0)
    return model, tiny_samples()
