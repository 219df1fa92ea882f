"""A stop request (Ctrl-C, SIGTERM) that cannot get lost, raised only where it is safe.

A signal handler that raises KeyboardInterrupt interrupts long work at once, but the exception can
land anywhere: inside a finalizer or weakref callback (seen: SQLAlchemy's, during garbage
collection after a trial), where Python prints "Exception ignored" and drops it, or inside
Optuna's storage update after a trial, which Optuna 5.0 does not survive (its ``_run_trial``
then fails with UnboundLocalError). The handler therefore always records the request here, and
raises only outside :func:`deferred` sections or inside an :func:`interruptible` one within
them; deferred code checks :func:`requested` at its own safe points.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

_requested = threading.Event()
# Per thread: a signal handler runs in the main thread and reads the main thread's mode.
_mode = threading.local()


def request() -> None:
    """Record that the user asked to stop."""
    _requested.set()


def requested() -> bool:
    """Whether the user asked to stop."""
    return _requested.is_set()


def clear() -> None:
    """Forget an earlier request (a new run in the same process)."""
    _requested.clear()


def on_signal() -> None:
    """What a stop signal's handler does: record the request, and raise unless deferred here.

    Raises:
        KeyboardInterrupt: Outside :func:`deferred` sections, or inside an :func:`interruptible` one.
    """
    request()
    if not getattr(_mode, "deferred", False):
        raise KeyboardInterrupt


@contextlib.contextmanager
def _set_deferred(value: bool) -> Iterator[None]:
    before = getattr(_mode, "deferred", False)
    _mode.deferred = value
    try:
        yield
    finally:
        _mode.deferred = before


def deferred() -> contextlib.AbstractContextManager[None]:
    """A section in which a stop signal only records the request (the code polls :func:`requested`)."""
    return _set_deferred(True)


def interruptible() -> contextlib.AbstractContextManager[None]:
    """Within a deferred section: long work that a stop signal may interrupt at once (it cleans up)."""
    return _set_deferred(False)
