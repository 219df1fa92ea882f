"""The emitted model: written atomically, read back by ``load_optimized``.

``<output>/<study>/best/`` holds the backend's artifact files, ``artifact.json`` (which backend
wrote them and what its ``load`` needs), ``report.json`` and ``best_config.json``. The folder is
filled under a temporary name beside it and swapped in with renames, so a reader sees the old
folder or the new one, never a half-written one.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backends import Backend, backend_class
from tuner.errors import UserError, error_line

MANIFEST = "artifact.json"


def write_json(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and a rename (atomic on POSIX)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=False, default=str)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_dir_atomically(target: Path, fill: Callable[[Path], None]) -> None:
    """Fill a fresh folder and put it at ``target`` in place of what was there.

    Args:
        target: The folder to (re)place, e.g. ``<output>/<study>/best``.
        fill: Writes the folder's content into the path it is given.

    Raises:
        Exception: Whatever ``fill`` raises; ``target`` is then left as it was.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        fill(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def load_optimized(directory: str | os.PathLike[str], device: str | None = None) -> Any:
    """Load an optimized model written by ``tune`` or saved by ``tuner.save``.

    Args:
        directory: The artifact folder (``<output>/<study>/best``), the study folder above it, or
            a folder ``tuner.save`` copied an artifact to; or a file ``tuner.save`` wrote: a
            GraphDef ``.pb`` or a TorchScript file.
        device: ``cpu`` or ``gpu``; the device it was tuned for when None (TorchScript files:
            where they were saved from).

    Returns:
        For a folder, a callable with the original model's inputs and outputs; for a ``.pb``, the
        ``tf.compat.v1.GraphDef``; for a TorchScript file, the ScriptModule.

    Raises:
        UserError: When the path holds no optimized model.
    """
    path = Path(directory)
    if path.is_file():
        return _load_model_file(path, device)
    if not (path / MANIFEST).is_file() and (path / "best" / MANIFEST).is_file():
        path = path / "best"
    if not (path / MANIFEST).is_file():
        raise UserError(f"{path} holds no optimized model ({MANIFEST} is missing)",
                        "pass the best/ folder that tune wrote (its path is in the tune output and report), "
                        "or a file or folder tuner.save wrote")
    meta = json.loads((path / MANIFEST).read_text())
    return _backend_of(meta).load(path, meta.get("meta", {}), device or meta.get("device", "cpu"))


def _backend_of(meta: dict[str, Any]) -> type[Backend]:
    """The backend class that wrote an artifact; one defined outside ``backends`` is imported from its module."""
    try:
        return backend_class(meta["backend"])
    except KeyError:
        if meta.get("backend_module"):
            importlib.import_module(str(meta["backend_module"]))
            return backend_class(meta["backend"])
        raise


def _load_model_file(path: Path, device: str | None) -> Any:
    """A GraphDef ``.pb`` or a TorchScript file, as ``tuner.save`` writes them."""
    if path.suffix == ".pb":
        import tensorflow as tf

        graph_def = tf.compat.v1.GraphDef()
        try:
            graph_def.ParseFromString(path.read_bytes())
        except Exception as e:  # noqa: BLE001 - any parse failure means a bad file
            raise UserError(f"{path} is not a binary GraphDef ({type(e).__name__})",
                            "pass a .pb that tuner.save or tf.train.write_graph(..., as_text=False) wrote") from None
        return graph_def
    import torch

    from tuner.devices import torch_device

    try:
        return torch.jit.load(str(path), map_location=None if device is None else torch_device(device))  # type: ignore[no-untyped-call]
    except Exception as e:  # noqa: BLE001
        raise UserError(f"{path} is neither a GraphDef .pb nor a TorchScript file ({error_line(e)})",
                        "pass a file or folder that tuner.save wrote") from None
