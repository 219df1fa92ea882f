"""Checks of a run's settings before anything is written, and the folders made once they pass.

A bad ``--output-dir``, ``--storage`` or ``--mlflow-uri`` must stop the tool with one line and
leave the disk as it was. So :func:`preflight` only looks (it creates no folder and no database),
and :func:`prepare` makes the folders afterwards. Network stores get a TCP probe with a short
timeout, so an unreachable host is named at once instead of after a driver's own long timeout.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from tuner.errors import UserError
from tuner.settings import TuneSettings

#: Seconds a database host or tracking server gets to accept a connection.
PROBE_TIMEOUT_S = 5.0

#: Default ports of the network databases SQLAlchemy (and so Optuna and MLflow) can use.
DB_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433, "oracle": 1521}

#: The driver to install per database, for the "driver not installed" message.
_DRIVER_HINT = {"postgresql": "psycopg2-binary", "mysql": "pymysql (and name it: mysql+pymysql://...)",
                "mariadb": "pymysql (and name it: mariadb+pymysql://...)"}

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


def check_storage_url(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Check an Optuna storage URL: sqlite files must be writable, database hosts must answer.

    Other URLs are left to the storage itself (it raises, and :func:`tuner.study.open_study`
    turns that into one line).

    Args:
        url: The SQLAlchemy URL.
        timeout_s: How long a database host gets to answer.

    Raises:
        UserError: When the URL cannot be parsed, names a file that cannot be written, a host
            that does not answer, or a database whose driver is not installed.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    fix = "pass a reachable SQLAlchemy URL to --storage (default: sqlite:///<output-dir>/study.db)"
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UserError(f"--storage {url!r} is not an SQLAlchemy URL",
                        "pass e.g. sqlite:///out/study.db or postgresql://user:pass@host/db") from None
    backend = parsed.get_backend_name()
    shown = parsed.render_as_string(hide_password=True)
    if backend == "sqlite":
        path = sqlite_file(url)
        if path is None:
            raise UserError(f"--storage {shown} is an in-memory database, which keeps nothing",
                            "pass a file, e.g. sqlite:///out/study.db")
        check_sqlite_file(path, "study storage", fix)
        return
    if backend in DB_DEFAULT_PORTS and parsed.host:
        check_tcp(parsed.host, parsed.port or DB_DEFAULT_PORTS[backend], f"the {backend} server of --storage {shown}",
                  f"start the database, or {fix}", timeout_s)
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        return  # not an SQLAlchemy database: the storage itself says what it is (or is not)
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        driver = parsed.get_driver_name()
        raise UserError(f"the {driver} driver for --storage {shown} is not installed ({exc})",
                        f"pip install {_DRIVER_HINT.get(backend, driver)}") from None


def check_output_dir(path: Path) -> None:
    """Check that the output folder is, or could be created as, a writable folder (creating nothing).

    Raises:
        UserError: When it cannot be.
    """
    check_creatable_dir(path, "output dir", "pass a writable folder to --output-dir")


def preflight(settings: TuneSettings, track: bool) -> None:
    """Every check of the run's places, in the order a user fixes them; nothing is written.

    Args:
        settings: The run's settings.
        track: Whether MLflow tracking is on.

    Raises:
        UserError: The first problem found.
    """
    from tuner.tracking import check_tracking_uri

    check_output_dir(settings.out)
    check_storage_url(settings.storage_url)
    if track:
        check_tracking_uri(settings.tracking_uri)


def _sqlite_parent(url: str) -> Path | None:
    path = sqlite_file(url) if url.startswith("sqlite") else None
    return None if path is None else path.parent


def prepare_storage(settings: TuneSettings) -> None:
    """Make the folder of an sqlite study storage (before the study is opened).

    Args:
        settings: The run's settings.
    """
    from tuner.settings import ensure_output_dir

    folder = _sqlite_parent(settings.storage_url)
    if folder is not None:
        ensure_output_dir(folder)


def prepare(settings: TuneSettings, track: bool) -> None:
    """Make the output folder and the MLflow database's folder, once the study has been opened.

    The study is opened first because it may still refuse the run (another workload under the
    same name); until then only an sqlite storage's folder exists (:func:`prepare_storage`).

    Args:
        settings: The run's settings.
        track: Whether MLflow tracking is on.

    Raises:
        UserError: When a folder cannot be made after all (a race with another process).
    """
    from tuner.settings import ensure_output_dir

    ensure_output_dir(settings.out)
    folder = _sqlite_parent(settings.tracking_uri) if track else None
    if folder is not None:
        ensure_output_dir(folder)


@contextlib.contextmanager
def sqlite_init_lock(url: str) -> Iterator[None]:
    """Hold an exclusive lock beside an sqlite database while a process creates or migrates it.

    Two ``tune`` processes started together on one output dir both find ``study.db`` and
    ``mlflow.db`` missing and both run the table creation and alembic migrations; the loser
    crashes (``Online migration expected to match one row``). Once the tables exist, sqlite's
    own locking serialises their writes, so only the opening needs this lock. Other URLs (a
    database server) pass through unlocked.

    Args:
        url: The storage or tracking URL.
    """
    path = sqlite_file(url) if url.startswith("sqlite") else None
    if path is None:
        yield
        return
    lock = path.parent / f".{path.name}.lock"
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
