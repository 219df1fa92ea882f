"""A pytest plugin that writes each test's CPU seconds, its own and its waited-for children's.

On CI's 2-core box the suite is bound by CPU, not by its order, so what a test costs is its CPU
time (a test's wall time grows with whatever its neighbour runs). Each test process appends one
JSON line per test to ``$PYTEST_CPU_DIR/cpu_<pid>.jsonl`` (default ``/tmp``): ``id``, ``cpu``
(user + system seconds of the process and of the children it waited for: tune's workers, fresh
processes, compilers), ``wall`` and ``end`` (epoch seconds)::

    python -m pytest -q -p no:cacheprovider -p experiments.pytest_cpu -n 2 --dist loadscope \\
        --no-loadscope-reorder -m "not serial"

Children that outlive their test (a server a module fixture started) count where they are
reaped, or nowhere.
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Time one test's setup, call and teardown, and append its line."""
    cpu0, t0 = _cpu_s(), time.time()
    yield
    path = Path(os.environ.get("PYTEST_CPU_DIR", "/tmp")) / f"cpu_{os.getpid()}.jsonl"
    line = {"id": item.nodeid, "cpu": _cpu_s() - cpu0, "wall": time.time() - t0, "end": time.time()}
    with path.open("a") as out:
        out.write(json.dumps(line) + "\n")
