"""Small models and test data for fast tests (the demo decoder is too slow to compile often)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from tuner.core.records import Built, Candidate
    from tuner.core.workload import Workload


class TinyNet(nn.Module):
    """A few ops that every backend compiles in seconds: linear, GELU, layer norm, softmax."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, 32)
        self.fc2 = nn.Linear(32, width)
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.norm(self.fc2(torch.nn.functional.gelu(self.fc1(x))) + y)
        return torch.softmax(h, dim=-1), h.sum(dim=-1)


def tiny_model() -> TinyNet:
    torch.manual_seed(0)
    return TinyNet().eval()


def tiny_samples(batches: tuple[int, ...] = (4, 4, 2)) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(1)
    return [(torch.randn(b, 16, generator=gen), torch.randn(b, 16, generator=gen)) for b in batches]


def make_tiny() -> tuple[TinyNet, list[tuple[torch.Tensor, torch.Tensor]]]:
    """Factory for ``--model tests.helpers:make_tiny`` (returns the model and its test data)."""
    return tiny_model(), tiny_samples()


def write_artifact(directory: Path, workload: Workload, candidate: Candidate, built: Built,
                   device: str = "cpu") -> Path:
    """Export a built candidate as ``tune`` emits it (its files and ``artifact.json``), atomically.

    Args:
        directory: The artifact folder to create.
        workload: The workload it was built for.
        candidate: The candidate, kept in ``artifact.json`` (what ``load_optimized`` wraps it by).
        built: What the candidate's backend built.
        device: ``"cpu"`` or ``"gpu"``.

    Returns:
        ``directory``.
    """
    # Imported here: ``tune`` subprocesses import this module for its models alone.
    from backends import get_backend
    from tuner.core.files import write_dir_atomically, write_json
    from tuner.export.artifact import MANIFEST

    backend = get_backend(candidate.backend)

    def fill(tmp: Path) -> None:
        meta = backend.export(built, workload, candidate, tmp)
        write_json(tmp / MANIFEST, {"backend": candidate.backend, "device": device,
                                    "candidate": candidate.to_dict(), "meta": meta})

    write_dir_atomically(directory, fill)
    return directory
