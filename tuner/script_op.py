"""``torch.ops.tuner.run_artifact``: TorchScript that runs an artifact of any backend, registered by ``import tuner``.

``tuner.optimize`` returns a ScriptModule for a ScriptModule (the seed's ``torch.jit.save`` call
must work on it), but the fastest candidate is often no plain ScriptModule: an AOTInductor package,
a TVM library, TorchScript replayed from CUDA graphs. As PAI-Blade does, the returned module calls
a custom operator that ``import tuner`` registers, here one that runs the winner's artifact:
:func:`script_module` traces a call of the operator whose inputs are the model's, and keeps the
whole artifact folder inside the module (a ``uint8`` buffer), so that the saved file stands on its
own. In a fresh process, ``import tuner`` and ``torch.jit.load`` run it; the first call unpacks the
artifact into a cache folder (``$XDG_CACHE_HOME/compile-tuner/artifacts/<digest>``) and loads it
with :func:`tuner.load_optimized`.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import threading
from pathlib import Path
from typing import Any

import torch

#: Loaded artifacts by digest: one load per process.
_LOADED: dict[str, Any] = {}
_GUARD = threading.Lock()


def cache_root() -> Path:
    """Where artifacts carried by saved modules are unpacked."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "compile-tuner" / "artifacts"


def _loaded(blob: torch.Tensor, key: str) -> Any:
    with _GUARD:
        if key not in _LOADED:
            from tuner.core.files import write_dir_atomically
            from tuner.export.artifact import load_optimized

            folder = cache_root() / key
            if not (folder / "artifact.json").is_file():
                data = blob.detach().cpu().numpy().tobytes()
                write_dir_atomically(folder, lambda tmp: _untar(data, tmp))
            _LOADED[key] = load_optimized(folder)
        return _LOADED[key]


def _untar(data: bytes, folder: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(folder, filter="data")


@torch.library.custom_op("tuner::run_artifact", mutates_args=())
def run_artifact(blob: torch.Tensor, key: str, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Run the artifact packed in ``blob`` (digest ``key``) on ``inputs``; its output tensors, flat."""
    from tuner.core.outputs import flatten_outputs

    return list(flatten_outputs(_loaded(blob, key)(*inputs)))


class _ArtifactCall(torch.nn.Module):
    """What :func:`script_module` traces: the operator's call, and the outputs in the model's structure."""

    def __init__(self, blob: torch.Tensor, key: str, spec: Any) -> None:
        super().__init__()
        self.register_buffer("artifact", blob)
        self.key = key
        self.spec = spec

    def forward(self, *args: torch.Tensor) -> Any:
        out = torch.ops.tuner.run_artifact(self.artifact, self.key, list(args))
        return out[0] if self.spec is None else self.spec.rebuild(out)


def pack(folder: Path) -> tuple[torch.Tensor, str]:
    """An artifact folder as a ``uint8`` tensor (a tar), and its digest."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
    data = buffer.getvalue()
    return torch.frombuffer(bytearray(data), dtype=torch.uint8), hashlib.sha256(data).hexdigest()[:24]


def script_module(folder: Path, example: tuple[torch.Tensor, ...], spec: Any) -> torch.jit.ScriptModule:
    """A ScriptModule that runs the artifact in ``folder``, with the model's inputs and outputs.

    Args:
        folder: The artifact folder (``artifact.json`` and the backend's files).
        example: One sample's inputs (the trace's example; the call is traced, not the model).
        spec: The model's :class:`~tuner.core.outputs.OutputSpec`, or None for one tensor out.

    Returns:
        The traced module; ``torch.jit.save`` keeps the artifact inside it.
    """
    from tuner.export.artifact import load_optimized

    blob, key = pack(folder)
    with _GUARD:
        if key not in _LOADED:  # the trace calls the operator: from the folder, not unpacked again
            _LOADED[key] = load_optimized(folder)
    traced: torch.jit.ScriptModule = torch.jit.trace(  # type: ignore[no-untyped-call]
        _ArtifactCall(blob, key, spec), example, check_trace=False, strict=False)
    return traced


__all__ = ["cache_root", "pack", "run_artifact", "script_module"]
