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
import importlib
import json
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backends import Backend, backend_class
from tuner.errors import UserError, error_line
from tuner.switches import with_switches

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


def load_optimized(directory: str | os.PathLike[str], device: str | None = None) -> Any:
    """Load an optimized model written by ``tune`` or saved by ``tuner.save``.

    Args:
        directory: The artifact folder (``<output>/<study>/best``), the study folder above it, or
            a folder ``tuner.save`` copied an artifact to; or a file ``tuner.save`` wrote: a
            GraphDef ``.pb`` or a TorchScript file.
        device: ``cpu`` or ``gpu``; the device it was tuned for when None (TorchScript files:
            where they were saved from).

    Returns:
        For a folder, a callable with the original model's inputs and outputs (run under the
        torch switches its candidate was measured with, :mod:`tuner.switches`); for a ``.pb``, the
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
    model = _backend_of(meta).load(path, meta.get("meta", {}), device or meta.get("device", "cpu"))
    # The process-wide switches the candidate was measured under (cuDNN's benchmark mode, ...)
    # are not in the model's files: set them around each call again.
    candidate = meta.get("candidate", {})
    return with_switches(model, candidate.get("options", {}), candidate.get("precision", "fp32"))


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
