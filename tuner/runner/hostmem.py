"""The memory this process may really use, and whether its cgroup's out-of-memory killer struck.

In a container the host's RAM (what ``psutil.virtual_memory().total`` reports) overstates what the
tuner may use: the container's memory cgroup usually has a lower limit, and a study that shares
the host's RAM among its workers can then be killed by the kernel's out-of-memory killer long
before the host runs short. Both cgroup layouts are read:

* cgroup v2 (unified): ``memory.max`` (``max``: no limit) and ``memory.events`` (``oom_kill N``);
* cgroup v1: ``memory/memory.limit_in_bytes`` (no limit reads as a huge value, about 2**63) and
  ``memory/memory.oom_control`` (``oom_kill N``, Linux 4.13 and later).

The files are read under ``/sys/fs/cgroup``, which inside a container is the container's own
cgroup. A file that cannot be read means "no limit" or "unknown", never an error: the tuner runs
on macOS and on hosts without the memory controller too.
"""

from __future__ import annotations

from pathlib import Path

import psutil

#: Where the cgroup file systems are mounted.
CGROUP_ROOT = Path("/sys/fs/cgroup")
#: Files holding the memory limit, relative to :data:`CGROUP_ROOT`: cgroup v2, then v1.
LIMIT_FILES: tuple[str, ...] = ("memory.max", "memory/memory.limit_in_bytes")
#: Files holding the count of out-of-memory kills (an ``oom_kill N`` line): cgroup v2, then v1.
OOM_EVENT_FILES: tuple[str, ...] = ("memory.events", "memory/memory.oom_control")
#: A cgroup v1 limit at or above this is "no limit": the kernel reports ``PAGE_COUNTER_MAX``
#: rounded to pages (9223372036854771712 with 4 KiB pages), not a real size.
NO_LIMIT_FROM_BYTES = 2**60


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def cgroup_limit_bytes(root: Path = CGROUP_ROOT) -> int | None:
    """The memory limit of this process's cgroup.

    Args:
        root: Where the cgroup file systems are mounted (tests point it at a temporary folder).

    Returns:
        The limit in bytes, or None when none is set or none can be read.
    """
    for name in LIMIT_FILES:
        text = _read(root / name)
        if text is None:
            continue
        value = text.strip()
        if value == "max":
            return None
        try:
            limit = int(value)
        except ValueError:
            continue
        return limit if 0 < limit < NO_LIMIT_FROM_BYTES else None
    return None


def memory_total_bytes(root: Path = CGROUP_ROOT) -> int:
    """The RAM this process may use: the machine's, or its cgroup's limit where that is lower.

    Args:
        root: Where the cgroup file systems are mounted (tests point it at a temporary folder).

    Returns:
        Bytes.
    """
    total = int(psutil.virtual_memory().total)
    limit = cgroup_limit_bytes(root)
    return min(total, limit) if limit is not None else total


def oom_kills(root: Path = CGROUP_ROOT) -> int | None:
    """How many processes of this cgroup the out-of-memory killer has killed so far.

    The kernel counts kills by the cgroup's own limit and by the machine-wide out-of-memory killer
    alike, so a count that did not rise while a process died of SIGKILL means someone else sent it.

    Args:
        root: Where the cgroup file systems are mounted (tests point it at a temporary folder).

    Returns:
        The count, or None when no file with it can be read (no cgroup, an old kernel, macOS).
    """
    for name in OOM_EVENT_FILES:
        text = _read(root / name)
        if text is None:
            continue
        for line in text.splitlines():
            fields = line.split()
            if len(fields) == 2 and fields[0] == "oom_kill" and fields[1].isdigit():
                return int(fields[1])
    return None


__all__ = ["CGROUP_ROOT", "LIMIT_FILES", "OOM_EVENT_FILES", "cgroup_limit_bytes", "memory_total_bytes", "oom_kills"]
