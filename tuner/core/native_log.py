"""What libraries print while candidates build (TVM's C++ log lines, its importers' notes) kept in a log file.

Native libraries write to the process's file descriptors 1 and 2 directly, past Python's
``sys.stdout``/``sys.stderr``; Python libraries ``print()`` (TVM's ONNX importer prints every
operator it cannot convert before trying another way). Either would interleave with the tuner's
own lines. Worker processes write into their logs already; :func:`native_output_to` does the same
for the study process while it builds candidates itself (the eager baseline, the finalists, the
export): it points descriptors 1 and 2, and Python's ``sys.stdout``, at a log file. Only
``sys.stderr``, where the progress display and the tuner's messages go, keeps a copy of the
original descriptor. The report counts the lines.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def native_output_to(log: Path) -> Iterator[None]:
    """Send descriptors 1 and 2 and ``sys.stdout`` into ``log`` for the body; ``sys.stderr`` keeps the screen.

    Args:
        log: The log file (appended to; its folder is made).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    streams = sys.stdout, sys.stderr
    with open(log, "ab") as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
    sys.stdout = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8", errors="replace")
    sys.stderr = os.fdopen(os.dup(saved[1]), "w", buffering=1, encoding=getattr(streams[1], "encoding", None))
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
            stream.close()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
        sys.stdout, sys.stderr = streams


def count_lines(folder: Path) -> int:
    """Lines in the ``*.log`` files of ``folder`` (0 when it does not exist)."""
    total = 0
    for path in sorted(folder.glob("*.log")) if folder.is_dir() else ():
        with open(path, "rb") as f:
            total += sum(1 for _ in f)
    return total


__all__ = ["count_lines", "native_output_to"]
