import fcntl
import multiprocessing as mp
import multiprocessing.synchronize
import os
import signal
from pathlib import Path

import pytest

from tuner.exclusive import LOCK_DIR_ENV, exclusive, lock_path


def _hold(lock_dir: str, inside: mp.synchronize.Event, release: mp.synchronize.Event) -> None:
    os.environ[LOCK_DIR_ENV] = lock_dir
    with exclusive("cpu"):
        inside.set()
        release.wait(30)


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
    ctx = mp.get_context("spawn")
    inside, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(tmp_path), inside, release))
    holder.start()
    try:
        assert inside.wait(60), "the holder never got the lock"
        path = lock_path("cpu")
        assert path.parent == tmp_path
        assert not _try_lock(path), "a second process got the lock while the first held it"
        if end == "release":
            release.set()
        else:
            # A worker killed while timing must not leave the device locked for the others.
            assert holder.pid is not None
            os.kill(holder.pid, signal.SIGKILL)
        holder.join(30)
        with exclusive("cpu") as waited:
            assert waited[0] >= 0
            assert not _try_lock(path)
        assert _try_lock(path)
    finally:
        release.set()
        holder.join(5)
        if holder.is_alive():
            holder.kill()
