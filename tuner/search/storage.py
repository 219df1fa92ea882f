"""The study's storage: opened with heartbeats, and the trials of dead processes failed and retried.

Every ``tune`` process that works on a study records, in each trial it runs, who runs it (host,
pid, process start time). Two mechanisms find the trials of a process that died (``kill -9``, a
lost machine) and put their candidates back in the queue, so that no trial is lost:

* Optuna's heartbeat (RDB storages: SQLite, PostgreSQL): each running trial's heartbeat is
  written every :data:`HEARTBEAT_INTERVAL_S`; a trial silent for :data:`GRACE_PERIOD_S` is failed
  and re-enqueued by :class:`optuna.storages.RetryHeartbeatStaleTrialCallback` (the next trial
  any process starts checks for such trials). This covers other machines.
* On this host a dead pid is certain at once: :func:`fail_dead_trials` fails those trials and
  runs the same retry callback when the study is opened, without waiting for the grace period.
  Optuna 5.0's ``JournalStorage`` has no heartbeat, so for it this is the only mechanism (a
  journal file lives on one host anyway).

URLs: any SQLAlchemy URL (``sqlite:///...``, ``postgresql://user@host/db`` with the ``postgres``
extra), or ``journal:///path/to/file.log`` for Optuna's ``JournalFileBackend``.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import random
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import optuna
import psutil
import sqlalchemy
import sqlalchemy.engine
import sqlalchemy.exc
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from tuner.search.keys import FAILURE_KIND_ATTR, FAILURE_REASON_ATTR, WORKER_ATTR
from tuner.search.trial_attrs import BatchRDBStorage, write_user_attrs

#: Seconds between heartbeats of a running trial.
HEARTBEAT_INTERVAL_S = 5
#: Seconds of silence after which a running trial counts as dead (any process may fail it).
GRACE_PERIOD_S = 30
#: How often one candidate is retried after its process died (then it stays failed).
MAX_RETRY = 3
#: SQLite waits this long for another writer's lock instead of failing at once.
SQLITE_BUSY_TIMEOUT_S = 60

#: A running trial that has not said who runs it this long after it started is dead: a live one
#: writes it right after Optuna's sampler returns (milliseconds; seconds on a loaded machine).
UNCLAIMED_DEAD_S = 15.0

JOURNAL_PREFIX = "journal:"
#: Opens of a fresh database tried while other processes create Optuna's tables in it.
SCHEMA_RACE_ATTEMPTS = 5


def retry_callback() -> Any:
    """Optuna's callback that re-enqueues a dead trial's params (up to :data:`MAX_RETRY` times)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)


def open_storage(url: str) -> BaseStorage:
    """Open the storage behind ``url`` (see the module doc for the forms).

    Args:
        url: ``journal:///path`` or an SQLAlchemy URL.

    Returns:
        The storage, with heartbeats where the backend has them.

    Raises:
        Exception: Whatever the backend raises for an unusable URL (the caller words it).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if url.startswith(JOURNAL_PREFIX):
            from optuna.storages.journal import JournalFileBackend

            path = url[len(JOURNAL_PREFIX):]
            path = path[2:] if path.startswith("//") else path
            return optuna.storages.JournalStorage(JournalFileBackend(path))
        engine_kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            # Several threads (--workers) or processes write the same file: wait for the lock.
            engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
        elif url.startswith("postgresql"):
            # A dropped connection (server restart, idle timeout) is replaced, not an error.
            engine_kwargs = {"pool_pre_ping": True}
        for attempt in range(SCHEMA_RACE_ATTEMPTS):
            try:
                with _schema_lock(url):
                    # Optuna's RDBStorage, able to write a trial's attributes in one transaction.
                    storage = BatchRDBStorage(url, engine_kwargs=engine_kwargs,
                                              heartbeat_interval=HEARTBEAT_INTERVAL_S,
                                              grace_period=GRACE_PERIOD_S,
                                              heartbeat_stale_trial_callback=retry_callback())
                if url.startswith("sqlite"):
                    _serialize_sqlite(storage.engine)
                return storage
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError) as e:
                # Several processes started together on an empty database all create Optuna's
                # tables, and the database refuses all but one. Among the tuner's processes the
                # schema lock above (PostgreSQL: UniqueViolation on pg_type, DuplicateTable) and
                # the caller's ``sqlite_init_lock`` prevent this; another program opening the
                # database meanwhile takes neither (Optuna's own ``load_study`` polling a fresh
                # study.db: "table studies already exists"). The tables exist a moment later, so
                # open again.
                if attempt == SCHEMA_RACE_ATTEMPTS - 1 or (isinstance(e, sqlalchemy.exc.OperationalError)
                                                           and "already exists" not in str(e)):
                    raise
                time.sleep(0.5 + random.random())
        raise AssertionError("unreachable")


#: PostgreSQL advisory lock key under which processes create Optuna's tables one at a time.
SCHEMA_LOCK_KEY = int.from_bytes(b"ctuner-s", "big", signed=True)

_ENGINES: dict[str, sqlalchemy.engine.Engine] = {}
_ENGINES_GUARD = threading.Lock()


def _lock_engine(url: str) -> sqlalchemy.engine.Engine:
    """One small connection pool per server and process for advisory locks, apart from Optuna's own."""
    with _ENGINES_GUARD:
        if url not in _ENGINES:
            _ENGINES[url] = sqlalchemy.create_engine(url, pool_pre_ping=True, pool_size=1, max_overflow=1)
        return _ENGINES[url]


@contextlib.contextmanager
def advisory_lock(url: str, key: int) -> Iterator[None]:
    """Hold PostgreSQL's transaction-level advisory lock ``key`` in the database at ``url``.

    The server releases it when the block's transaction ends: commit, rollback, or a dropped
    connection (a killed holder blocks no one). Advisory locks belong to one database.

    Args:
        url: A ``postgresql://`` SQLAlchemy URL.
        key: A signed 64-bit lock key.
    """
    with _lock_engine(url).begin() as connection:
        connection.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        yield


@contextlib.contextmanager
def _schema_lock(url: str) -> Iterator[None]:
    """Hold a lock of the database while Optuna creates or checks its tables (PostgreSQL only).

    Optuna's ``RDBStorage`` creates its tables and stamps their Alembic version when it opens a
    database, without a lock. Processes that open an empty PostgreSQL database at the same moment
    (``tune`` started on several machines at once) can then fail with ``DuplicateTable``
    (``experiments/bench_workers.py`` starts four at once on a fresh database).
    """
    if not url.startswith("postgresql"):
        yield
        return
    with advisory_lock(url, SCHEMA_LOCK_KEY):
        yield


def _serialize_sqlite(engine: sqlalchemy.engine.Engine) -> None:
    """Make every SQLite transaction take the write lock when it begins (``BEGIN IMMEDIATE``).

    Optuna pops a queued trial by reading it as WAITING and then setting it RUNNING, relying on
    ``SELECT ... FOR UPDATE``, which SQLite ignores; and Python's sqlite3 module runs the read
    outside any transaction. Two workers (threads of ``--workers``, or processes) then both pop
    the same trial and both run it (seen here: "Cannot tell a COMPLETE trial"). With the lock
    taken at the start of each transaction, the read and the write are one atomic step.
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # let the "begin" hook below issue BEGIN

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # pooled connections were opened before the hooks


def identity() -> dict[str, Any]:
    """Who this process is: host, pid and start time (a reused pid is told apart by the latter)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": round(psutil.Process().create_time(), 2)}


def _is_dead(worker: Any, host: str) -> bool:
    if not isinstance(worker, dict) or worker.get("host") != host:
        return False  # another machine's trial: the heartbeat decides
    try:
        return bool(round(psutil.Process(int(worker["pid"])).create_time(), 2) != worker.get("started"))
    except (psutil.NoSuchProcess, KeyError, ValueError, TypeError):
        return True


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Fail the running trials of dead processes on this host and re-enqueue them.

    Args:
        study: The study.

    Returns:
        The numbers of the trials failed here (another process may have failed some first).
    """
    host = socket.gethostname()
    storage = study._storage
    failed = []
    for trial in _running_settled(study):
        worker = trial.user_attrs.get(WORKER_ATTR)
        if worker is None:
            # Still unclaimed after UNCLAIMED_DEAD_S: its process died between Optuna's ask()
            # and the objective's first write (a kill during sampling).
            worker = {"host": host, "pid": "unknown"}
        elif not _is_dead(worker, host):
            continue
        try:
            # The retry copies these too; its own outcome overwrites them (see tuner.search.loop._record).
            write_user_attrs(storage, trial._trial_id, {
                FAILURE_KIND_ATTR: "process died",
                FAILURE_REASON_ATTR: f"the process running it (pid {worker['pid']}) died; queued again"})
            if not storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another process failed it first (and retried it)
        retry_callback()(study, storage.get_trial(trial._trial_id))
        failed.append(trial.number)
    return failed


def _running_settled(study: optuna.Study) -> list[FrozenTrial]:
    """The running trials, after waiting out those too young to have written who runs them."""
    while True:
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        now = datetime.datetime.now()
        young = [t for t in running if WORKER_ATTR not in t.user_attrs and t.datetime_start is not None
                 and (now - t.datetime_start).total_seconds() < UNCLAIMED_DEAD_S]
        if not young:
            return running
        time.sleep(1.0)


def retried_numbers(trials: list[FrozenTrial]) -> set[int]:
    """Numbers of trials that died and were re-enqueued (their retry holds their slot)."""
    out: set[int] = set()
    for t in trials:
        out.update(int(n) for n in t.system_attrs.get("retry_history", ()))
    return out


__all__ = ["GRACE_PERIOD_S", "HEARTBEAT_INTERVAL_S", "JOURNAL_PREFIX", "MAX_RETRY",
           "advisory_lock", "fail_dead_trials", "identity", "open_storage", "retried_numbers", "retry_callback"]
