"""The claim lock of a study: admissions of trials (see :mod:`tuner.search.claims`) happen one at a time.

Every process and thread that works on a study takes the same lock, so it must live where the
storage lives:

* SQLite and journal files: an ``fcntl.flock`` on a file beside the database, shared by the
  studies in it (one host; the kernel releases it when a process dies, even by ``kill -9``).
* PostgreSQL: a transaction-level advisory lock (``pg_advisory_xact_lock``) on the study's server,
  keyed by the study name: processes on several machines share it, and the server releases it
  when a holder's connection drops.
* Anything else (an in-memory SQLite, MySQL): a lock of this process only. Identical candidates
  are then measured once per process, not once per study.

A process-local lock is taken first in every case: threads of one process then queue in memory
instead of each holding a database connection or file descriptor while they wait.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

from tuner.core.files import file_lock
from tuner.core.places import sqlite_file
from tuner.search.storage import JOURNAL_PREFIX, advisory_lock

_LOCAL: dict[tuple[str, str], threading.Lock] = {}
_LOCAL_GUARD = threading.Lock()


def _local_lock(url: str, study_name: str) -> threading.Lock:
    with _LOCAL_GUARD:
        return _LOCAL.setdefault((url, study_name), threading.Lock())


def lock_file(url: str) -> Path | None:
    """The claim lock file of a file-backed storage (SQLite or journal), None for other storages."""
    if url.startswith(JOURNAL_PREFIX):
        path = url[len(JOURNAL_PREFIX):]
        db = Path(path[2:] if path.startswith("//") else path)
    elif url.startswith("sqlite"):
        found = sqlite_file(url)
        if found is None:
            return None
        db = found
    else:
        return None
    # One per database file, shared by its studies: an admission holds it for milliseconds, and
    # an output dir keeps one lock file however many studies it holds.
    return db.parent / f".{db.name}.claims.lock"


def advisory_key(study_name: str) -> int:
    """A signed 64-bit key for PostgreSQL's advisory locks, from the study name."""
    return int.from_bytes(hashlib.sha256(f"compile-tuner:{study_name}".encode()).digest()[:8], "big", signed=True)


def claim_lock(url: str, study_name: str) -> Callable[[], AbstractContextManager[None]]:
    """The claim lock of study ``study_name`` in the storage at ``url``.

    Args:
        url: The storage URL (as ``tune --storage`` takes it).
        study_name: The study.

    Returns:
        A factory of context managers: ``with lock(): ...`` holds the lock for the body.
    """
    local = _local_lock(url, study_name)
    path = lock_file(url)
    is_postgres = url.startswith("postgresql")

    @contextlib.contextmanager
    def hold() -> Iterator[None]:
        with local:
            if path is not None:
                with file_lock(path):
                    yield
            elif is_postgres:
                with advisory_lock(url, advisory_key(study_name)):
                    yield
            else:
                yield

    return hold


__all__ = ["advisory_key", "claim_lock", "lock_file"]
