"""Places a run reads and writes (folders, sqlite files, database hosts), checked without creating anything.

A bad ``--output-dir``, ``--storage`` or ``--mlflow-uri`` must stop the tool with one line and
leave the disk as it was: these checks only look. :func:`ensure_output_dir` makes a folder once
the checks have passed.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
from pathlib import Path

from tuner.core.errors import UserError

#: Seconds a database host or tracking server gets to accept a connection.
PROBE_TIMEOUT_S = 5.0
#: Default ports of the network databases SQLAlchemy (and so Optuna and MLflow) can use.
DB_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433, "oracle": 1521}

_SQLITE_MAGIC = b"SQLite format 3\x00"


def nearest_existing(path: Path) -> Path:
    """The path itself if it exists, else its closest existing ancestor."""
    path = path.expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_creatable_dir(path: Path, what: str, fix: str) -> None:
    """Check that ``path`` is, or could be created as, a writable folder (creating nothing).

    Args:
        path: The folder.
        what: What it is, for the message (``"output dir"``).
        fix: The fix, for the message.

    Raises:
        UserError: When something that is not a folder is in the way, or it cannot be written.
    """
    base = nearest_existing(path)
    if not base.is_dir():
        raise UserError(f"cannot create {what} {path} ({base} is not a folder)", fix)
    if not os.access(base, os.W_OK | os.X_OK):
        where = "" if base == path.expanduser().absolute() else f" (in {base})"
        raise UserError(f"{what} {path} is not writable{where}", fix)


def sqlite_file(url: str) -> Path | None:
    """The database file of an ``sqlite:///`` URL; None for an in-memory database.

    ``sqlite:///rel/x.db`` is ``rel/x.db`` and ``sqlite:////abs/x.db`` is ``/abs/x.db``
    (SQLAlchemy's rule); a query string (``?timeout=20``) is not part of the path.
    """
    rest = url.split("://", 1)[1] if "://" in url else ""
    raw = (rest[1:] if rest.startswith("/") else rest).split("?", 1)[0]
    if raw in ("", ":memory:"):
        return None
    return Path(urllib.parse.unquote(raw)).expanduser()


def check_sqlite_file(path: Path, what: str, fix: str) -> None:
    """Check that an sqlite database file can be opened for writing or created (creating nothing).

    Args:
        path: The database file.
        what: What it is, for the message (``"study storage"``).
        fix: The fix, for the message.

    Raises:
        UserError: When it is not a file, not an sqlite database, or cannot be written or created.
    """
    if path.exists():
        if not path.is_file():
            raise UserError(f"{what} {path} is not a file", fix)
        if not os.access(path, os.R_OK | os.W_OK):
            raise UserError(f"{what} {path} is not writable", fix)
        with path.open("rb") as handle:
            head = handle.read(16)
        if head and head != _SQLITE_MAGIC:
            raise UserError(f"{what} {path} is not an sqlite database", fix)
    else:
        check_creatable_dir(path.parent, f"the folder of the {what}", fix)


def check_tcp(host: str, port: int, what: str, fix: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Check that ``host:port`` accepts a TCP connection within ``timeout_s``.

    Raises:
        UserError: When it refuses, does not answer, or the name does not resolve.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return
    except OSError as exc:
        reason = f"no answer within {timeout_s:g} s" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
        raise UserError(f"{what} at {host}:{port} cannot be reached ({reason})", fix) from None


def ensure_output_dir(path: Path) -> None:
    """Create the output folder and check that it is writable.

    Raises:
        UserError: When it cannot be created or written.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create output dir {path} ({e.strerror})",
                        "pass a writable folder to --output-dir") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"output dir {path} is not writable", "pass a writable folder to --output-dir")


def redact(url: str) -> str:
    """A storage URL without its password (for messages and reports)."""
    try:
        from sqlalchemy.engine import make_url

        return str(make_url(url).render_as_string(hide_password=True))
    except Exception:  # noqa: BLE001 - not a SQLAlchemy URL: show it as is
        return url
