"""A time limit on one candidate's build and measurement, inside the study process.

``SIGALRM`` interrupts the main thread wherever it waits (Inductor's autotuning, a compile-worker
future, a kernel benchmark) and raises :class:`TrialTimeout`, a ``BaseException`` so that a
backend's own ``except Exception`` cannot mistake it for a build error. This bounds what Python
code does; a candidate stuck inside native code that never returns to the interpreter, or one
that crashes the process, needs the candidate to run in a worker process of its own.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


class TrialTimeout(BaseException):
    """A candidate ran past its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[bool]:
    """Raise :class:`TrialTimeout` in the body after ``seconds``.

    Args:
        seconds: The limit; None or 0 means none.

    Yields:
        Whether the limit is enforced (only in the main thread, where signals are delivered).
    """
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield False
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TrialTimeout(f"over the {seconds:g} s time limit per candidate (--trial-timeout)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
