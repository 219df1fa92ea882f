"""The emitted model: written atomically, read back by ``load_optimized``.

``<output>/<study>/best/`` holds the backend's artifact files, ``artifact.json`` (which backend
wrote them and what its ``load`` needs), ``report.json`` and ``best_config.json``. The folder is
filled under a temporary name beside it and swapped in with one atomic exchange (Linux), so a
reader sees the old folder or the new one, never a half-written one.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backends import backend_class
from tuner.errors import UserError

MANIFEST = "artifact.json"


def write_json(path: Path, data: Any) -> None:
    """Write JSON through a temporary file, fsync and a rename (atomic on POSIX)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=False, default=str)
            f.write("\n")
            f.flush()
            # Without it a crash soon after the rename can leave an empty file under the new name.
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:  # glibc < 2.28
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):  # old kernel, or a filesystem without it
        return False
    raise OSError(err, os.strerror(err), str(a))


def _remove_leftovers(target: Path) -> None:
    """Remove the temporary folders of writers of ``target`` that died (``kill -9`` mid-export).

    Their names carry the writer's pid; a folder whose pid no longer runs is nobody's.
    """
    for path in target.parent.glob(f".{target.name}.*-*-*"):
        parts = path.name[len(target.name) + 2:].split("-")
        if len(parts) != 3 or parts[0] not in ("tmp", "old") or not parts[1].isdigit():
            continue
        try:
            os.kill(int(parts[1]), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:
            pass  # alive, another user's


def write_dir_atomically(target: Path, fill: Callable[[Path], None]) -> None:
    """Fill a fresh folder and put it at ``target`` in place of what was there.

    The fresh folder is made beside ``target`` (same filesystem) and swapped in with one
    ``renameat2(RENAME_EXCHANGE)`` where Linux offers it, so that at every moment ``target`` is
    the complete old folder or the complete new one; elsewhere two renames leave a moment with
    none. Several writers of one target each fill their own folder; the last swap wins.

    Args:
        target: The folder to (re)place, e.g. ``<output>/<study>/best``.
        fill: Writes the folder's content into the path it is given.

    Raises:
        Exception: Whatever ``fill`` raises; ``target`` is then left as it was.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(target)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        fill(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for _ in range(10):
        if target.exists():
            if _exchange(tmp, target):
                shutil.rmtree(tmp, ignore_errors=True)  # now the old folder
                return
            old = target.parent / f".{target.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            with contextlib.suppress(FileNotFoundError):
                os.replace(target, old)
                shutil.rmtree(old, ignore_errors=True)
        try:
            os.replace(tmp, target)
            return
        except OSError as e:
            # Another writer put its folder there first (a non-empty folder is not replaced by
            # rename): swap with it on the next round.
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
    shutil.rmtree(tmp, ignore_errors=True)
    raise OSError(f"could not put {target} in place: other writers kept replacing it")


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
