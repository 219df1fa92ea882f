"""A base for test-only backends that build and run but never ship an artifact."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from backends.base import Backend
from tuner.core.records import Built, Candidate
from tuner.core.workload import Workload


class UnexportedBackend(Backend):
    """Test-only: a subclass gives ``name`` and ``compile``; export and load are never reached."""

    test_only = True

    def export(self, built: Built, workload: Workload, candidate: Candidate, directory: Path) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any], device: str) -> Callable[..., Any]:
        raise NotImplementedError
