"""The emitted model: written atomically, read back by ``load_optimized``.

``<output>/<study>/best/`` holds the backend's artifact files, ``artifact.json`` (which backend
wrote them and what its ``load`` needs), ``report.json`` and ``best_config.json``. The folder is
filled under a temporary name beside it and swapped in with renames, so a reader sees the old
folder or the new one, never a half-written one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backends import backend_class
from tuner.errors import UserError

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


def load_optimized(directory: str | os.PathLike[str], device: str | None = None) -> Callable[..., Any]:
    """Load an optimized model written by ``tune`` (the ``best`` folder, or its parent study folder).

    Args:
        directory: The artifact folder (``<output>/<study>/best``) or the study folder above it.
        device: ``cpu`` or ``gpu``; the device it was tuned for when None.

    Returns:
        A callable with the original model's inputs and outputs.

    Raises:
        UserError: When the folder holds no artifact written by ``tune``.
    """
    path = Path(directory)
    if not (path / MANIFEST).is_file() and (path / "best" / MANIFEST).is_file():
        path = path / "best"
    if not (path / MANIFEST).is_file():
        raise UserError(f"{path} holds no optimized model ({MANIFEST} is missing)",
                        "pass the best/ folder that tune wrote (its path is in the tune output and report)")
    meta = json.loads((path / MANIFEST).read_text())
    return backend_class(meta["backend"]).load(path, meta.get("meta", {}), device or meta.get("device", "cpu"))
