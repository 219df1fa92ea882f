import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tuner.runtime.exclusive import LOCK_DIR_ENV, exclusive, lock_path

ROOT = Path(__file__).resolve().parents[3]

# The holder signals through files, not multiprocessing primitives: a process killed while it
# waits on a shared Event can leave that Event's lock held, and the test would hang on it.
HOLDER = """
import sys, time
from pathlib import Path
from tuner.runtime.exclusive import exclusive
flags = Path(sys.argv[1])
with exclusive("cpu"):
    (flags / "inside").touch()
    while not (flags / "release").exists():
        time.sleep(0.05)
"""


def _try_lock(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.mark.parametrize("end", ["release", "kill -9"])
def test_one_holder_per_device_across_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, end: str) -> None:
    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "inside").exists():
            assert holder.poll() is None and time.monotonic() < deadline, "the holder never got the lock"
            time.sleep(0.05)
        path = lock_path("cpu")
        assert path.parent == tmp_path
        assert not _try_lock(path), "a second process got the lock while the first held it"
        if end == "release":
            (tmp_path / "release").touch()
        else:
            # A worker killed while timing must not leave the device locked for the others.
            os.kill(holder.pid, signal.SIGKILL)
        holder.wait(30)
        with exclusive("cpu") as waited:
            assert waited >= 0
            assert not _try_lock(path)
        assert _try_lock(path)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
