"""Writing files so that a reader never sees half of one, and locking a file across processes.

Every artifact, report and ledger the tuner writes goes through :func:`write_file_atomically`
(a temporary file beside the target, ``fsync``, one rename) or :func:`write_dir_atomically` (a
whole folder swapped in). Every host-wide lock is :func:`file_lock`: an ``fcntl.flock`` on a
file, which the kernel drops when the holder dies, even by ``kill -9``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def write_file_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """Write a file through a temporary file beside it, ``fsync`` and a rename (atomic on POSIX).

    Args:
        target: The file to (re)place.
        write: Writes the content into the path it is given.

    Raises:
        Exception: Whatever ``write`` raises; ``target`` is then left as it was.
    """
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        # Without it a crash soon after the rename can leave an empty file under the new name.
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON (other values with ``str``), atomically."""
    text = json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"

    def write(tmp: Path) -> None:
        tmp.write_text(text)

    write_file_atomically(path, write)


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


def _scratch(target: Path, kind: str) -> Path:
    """A name beside ``target`` that carries this writer's pid (see :func:`_remove_leftovers`)."""
    return target.parent / f".{target.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _put_in_place(tmp: Path, target: Path) -> bool:
    """One attempt to move the filled folder ``tmp`` to ``target``; False when another writer got there first."""
    if target.exists():
        if _exchange(tmp, target):
            shutil.rmtree(tmp, ignore_errors=True)  # now the old folder
            return True
        old = _scratch(target, "old")
        with contextlib.suppress(FileNotFoundError):
            os.replace(target, old)
            shutil.rmtree(old, ignore_errors=True)
    try:
        os.replace(tmp, target)
        return True
    except OSError as e:
        # Another writer put its folder there first (a non-empty folder is not replaced by
        # rename): swap with it on the next round.
        if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        return False


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
    tmp = _scratch(target, "tmp")
    tmp.mkdir()
    try:
        fill(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for _ in range(10):
        if _put_in_place(tmp, target):
            return
    shutil.rmtree(tmp, ignore_errors=True)
    raise OSError(f"could not put {target} in place: other writers kept replacing it")


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[float]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the body.

    Args:
        path: The lock file.

    Yields:
        The seconds spent waiting for the lock.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        t0 = time.perf_counter()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield time.perf_counter() - t0
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


__all__ = ["file_lock", "write_dir_atomically", "write_file_atomically", "write_json"]
