"""The RAM a container may use and its out-of-memory kills, read from real cgroup files."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest

from tests.tuner_tests.runner.test_isolation import _worker
from tuner.core.records import Candidate
from tuner.runner import hostmem

HOST_TOTAL = psutil.virtual_memory().total
V1_NO_LIMIT = "9223372036854771712"


def _files(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize(("files", "expected"), [
    ({"memory.max": "1073741824\n"}, 2**30),  # v2, a limit
    ({"memory.max": "max\n"}, HOST_TOTAL),  # v2, none
    ({"memory/memory.limit_in_bytes": "2147483648\n"}, 2 * 2**30),  # v1, a limit
    ({"memory/memory.limit_in_bytes": V1_NO_LIMIT + "\n"}, HOST_TOTAL),  # v1, none
    ({"memory.max": f"{HOST_TOTAL * 4}\n"}, HOST_TOTAL),  # a limit over the host's RAM
    ({"memory.max": "garbage\n"}, HOST_TOTAL),
    ({}, HOST_TOTAL),  # no cgroup files at all
])
def test_memory_total_is_the_lower_of_the_hosts_ram_and_the_cgroup_limit(tmp_path, files, expected):
    assert hostmem.memory_total_bytes(_files(tmp_path, files)) == expected


def test_a_cgroup_limit_that_cannot_be_read_means_none(tmp_path):
    (tmp_path / "memory.max").mkdir()  # reading a folder fails
    assert hostmem.cgroup_limit_bytes(tmp_path) is None
    assert hostmem.memory_total_bytes(tmp_path) == HOST_TOTAL


def test_oom_kills_are_counted_from_either_layout_and_none_when_unreadable(tmp_path):
    v2 = _files(tmp_path / "v2", {"memory.events": "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n"})
    v1 = _files(tmp_path / "v1", {"memory/memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 7\n"})
    old_kernel = _files(tmp_path / "old", {"memory/memory.oom_control": "oom_kill_disable 0\nunder_oom 0\n"})
    assert hostmem.oom_kills(v2) == 2
    assert hostmem.oom_kills(v1) == 7
    assert hostmem.oom_kills(old_kernel) is None
    assert hostmem.oom_kills(tmp_path / "none") is None


def _kill_when_busy(worker, after_s: float = 1.0) -> threading.Thread:
    """SIGKILL the worker's process group once it is evaluating (as a runtime or a user would)."""
    pid = worker.pid
    assert pid is not None

    def kill() -> None:
        time.sleep(after_s)
        os.killpg(pid, signal.SIGKILL)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


# test_faulty's variant 5 hangs in native code until the study process kills it.
HANG = Candidate("test_faulty", options={"test_faulty/variant": 5})


@pytest.mark.skipif(hostmem.oom_kills() is None, reason="no readable cgroup oom_kill count here")
def test_a_sigkill_from_outside_without_an_oom_kill_is_recorded_as_killed(tmp_path):
    worker = _worker(tmp_path, timeout=60)  # the study process's own kill would come far later
    try:
        worker.start()
        before = hostmem.oom_kills()
        thread = _kill_when_busy(worker)
        out = worker.evaluate(HANG)
        thread.join()
        assert hostmem.oom_kills() == before, "an out-of-memory kill in this cgroup during the test"
        assert out.failure_kind == "killed"
        assert out.failure_reason == ("killed by SIGKILL from outside the tuner "
                                      "(no out-of-memory kill recorded in this cgroup)")
        assert worker.pid is None and worker.stats.replaced == 1
    finally:
        worker.close()


def test_a_sigkill_while_the_oom_kill_count_rises_or_cannot_be_read_is_out_of_memory(tmp_path, monkeypatch):
    worker = _worker(tmp_path, timeout=60)
    try:
        # The count when the candidate is sent, then after the death: it rose.
        monkeypatch.setattr(hostmem, "oom_kills", iter([4, 5]).__next__)
        out = _killed_while_busy(worker)
        assert out.failure_kind == "out of memory"
        assert "killed by SIGKILL" in (out.failure_reason or "")
        assert "oom_kill count went from 4 to 5" in (out.failure_reason or "")
        # No count to compare: today's guess.
        monkeypatch.setattr(hostmem, "oom_kills", lambda: None)
        out = _killed_while_busy(worker)
        assert out.failure_kind == "out of memory"
        assert "the system's out-of-memory killer?" in (out.failure_reason or "")
    finally:
        worker.close()


def _killed_while_busy(worker):
    """Evaluate the hanging candidate in a fresh worker that another thread kills while it runs."""
    worker.start()
    thread = _kill_when_busy(worker)
    out = worker.evaluate(HANG)
    thread.join()
    return out
