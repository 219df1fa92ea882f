"""A time limit on one candidate's build and measurement, inside the study process.

``SIGALRM`` interrupts the main thread wherever it waits (Inductor's autotuning, a compile-worker
future, a kernel benchmark) and raises :class:`TrialTimeout`, a ``BaseException`` so that a
backend's own ``except Exception`` cannot mistake it for a build error. This bounds what Python
code does; a candidate stuck inside native code that never returns to the interpreter, or one
that crashes the process, needs the candidate to run in a worker process of its own.

Some native code calls back into Python (TVM runs Python passes, DLight rules and MetaSchedule's
builder from C++). An exception raised in such a callback does not unwind through the C++
frames: the process aborts (seen here: a timeout during MetaSchedule tuning ended in
``std::terminate`` and a segfault). Such code runs inside :func:`deferred`: the alarm then only
marks the limit as passed, :func:`expired` tells long loops to wind down, and
:class:`TrialTimeout` is raised once the native call has returned.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


class TrialTimeout(BaseException):
    """A candidate ran past its time limit."""


class _Limit:
    """The limit in force: its message, whether the alarm fired, how deeply it is deferred."""

    message: str | None = None
    fired: bool = False
    deferring: int = 0


_limit = _Limit()


def expired() -> bool:
    """Whether the time limit in force has passed (False when there is none)."""
    return _limit.fired


def stop_if_expired() -> None:
    """Raise :class:`TrialTimeout` now if the limit has passed (call it outside native callbacks).

    Raises:
        TrialTimeout: When the limit in force has passed.
    """
    if _limit.fired and _limit.message:
        raise TrialTimeout(_limit.message)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold :class:`TrialTimeout` back in the body; raise it on leaving if the limit passed there.

    Yields:
        Nothing; check :func:`expired` inside to stop early.

    Raises:
        TrialTimeout: On leaving, when the limit passed while deferred.
    """
    _limit.deferring += 1
    try:
        yield
    finally:
        _limit.deferring -= 1
    # Only on a normal exit: an exception leaving the body (a TrialTimeout raised by the caller
    # itself on seeing expired(), say) goes on as it is.
    if not _limit.deferring:
        stop_if_expired()


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[bool]:
    """Raise :class:`TrialTimeout` in the body after ``seconds`` (or on leaving a :func:`deferred` block).

    Args:
        seconds: The limit; None or 0 means none.

    Yields:
        Whether the limit is enforced (only in the main thread, where signals are delivered).
    """
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield False
        return
    message = f"over the {seconds:g} s time limit per candidate (--trial-timeout)"

    def expire(signum: int, frame: FrameType | None) -> None:
        _limit.fired = True
        if not _limit.deferring:
            raise TrialTimeout(message)

    previous = signal.signal(signal.SIGALRM, expire)
    _limit.message, _limit.fired = message, False
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        _limit.message, _limit.fired = None, False
