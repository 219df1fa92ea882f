"""Checks of a run's places before anything is written, and the folders made once they pass.

A bad ``--output-dir``, ``--storage`` or ``--mlflow-uri`` must stop the tool with one line and
leave the disk as it was. So :func:`preflight` only looks (it creates no folder and no database),
once per run, before the model is loaded; :func:`prepare` makes the folders afterwards. Network
stores get a TCP probe with a short timeout, so an unreachable host is named at once instead of
after a driver's own long timeout.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path

from tuner.core.budget import Budget
from tuner.core.errors import UserError
from tuner.core.files import file_lock
from tuner.core.places import (
    DB_DEFAULT_PORTS,
    PROBE_TIMEOUT_S,
    check_creatable_dir,
    check_sqlite_file,
    check_tcp,
    ensure_output_dir,
    sqlite_file,
)
from tuner.core.settings import TuneSettings
from tuner.tracking.uri import check_tracking_uri

#: The driver to install per database, for the "driver not installed" message.
_DRIVER_HINT = {"postgresql": "psycopg2-binary", "mysql": "pymysql (and name it: mysql+pymysql://...)",
                "mariadb": "pymysql (and name it: mariadb+pymysql://...)"}


@dataclasses.dataclass(frozen=True)
class Checked:
    """A run's settings whose places passed :func:`preflight` (nothing has been written yet).

    Attributes:
        settings: The settings.
        track: Whether MLflow tracking is on.
        budget: The run's clock, started by the check (``--timeout`` counts from here).
    """

    settings: TuneSettings
    track: bool
    budget: Budget

    def named(self, study_name: str) -> Checked:
        """The same run under another study name (the checked places do not depend on it)."""
        return Checked(self.settings.model_copy(update={"study_name": study_name}), self.track, self.budget)


def check_storage_url(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Check an Optuna storage URL: sqlite files must be writable, database hosts must answer.

    Other URLs are left to the storage itself (it raises, and :func:`tuner.search.study.open_study`
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


def preflight(settings: TuneSettings, track: bool) -> Checked:
    """Every check of the run's places, in the order a user fixes them; nothing is written.

    Args:
        settings: The run's settings.
        track: Whether MLflow tracking is on.

    Returns:
        The settings, marked as checked (:func:`tuner.api.tuning.run` takes only those).

    Raises:
        UserError: The first problem found.
    """
    budget = Budget(settings.timeout_s)
    check_output_dir(settings.out)
    check_storage_url(settings.storage_url)
    if track:
        check_tracking_uri(settings.tracking_uri)
    return Checked(settings, track, budget)


def _sqlite_parent(url: str) -> Path | None:
    path = sqlite_file(url) if url.startswith("sqlite") else None
    return None if path is None else path.parent


def prepare_storage(settings: TuneSettings) -> None:
    """Make the folder of an sqlite study storage (before the study is opened).

    Args:
        settings: The run's settings.
    """
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
    with file_lock(path.parent / f".{path.name}.lock"):
        yield
