"""A stop request (Ctrl-C, SIGTERM) that cannot get lost.

A signal handler that raises KeyboardInterrupt interrupts long work at once, but the exception can
land inside a finalizer or weakref callback (seen: SQLAlchemy's, during garbage collection after
a trial), where Python prints "Exception ignored" and drops it. The handler therefore also records
the request here, and the trial loop checks it between trials.
"""

from __future__ import annotations

import threading

_requested = threading.Event()


def request() -> None:
    """Record that the user asked to stop."""
    _requested.set()


def requested() -> bool:
    """Whether the user asked to stop."""
    return _requested.is_set()


def clear() -> None:
    """Forget an earlier request (a new run in the same process)."""
    _requested.clear()
