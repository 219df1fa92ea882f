"""One timed measurement at a time per device on a host, across processes.

Several study workers on one host (``tune --workers N``, or two ``tune`` runs) compile candidates
in parallel, which is where most of a trial's time goes, but their timings must not overlap on
the device they share: two models timed at once on one GPU each see the other's kernels and
launches. Each worker therefore takes a host-wide file lock of its device around the timed part
of a measurement (``fcntl.flock``: the kernel drops it when a process dies, even by ``kill -9``).
Workers pinned to different GPUs hold different locks (the lock is named by the GPU's UUID).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tuner.core.files import file_lock

#: Where the lock files live (host-wide: every study on this host shares them).
LOCK_DIR_ENV = "TUNER_LOCK_DIR"


def device_key(device: str) -> str:
    """A host-wide name of the device the workload runs on.

    Args:
        device: ``"cpu"`` or ``"gpu"``.

    Returns:
        ``"cpu"``, or ``"gpu-<uuid>"`` for the current CUDA device (``CUDA_VISIBLE_DEVICES`` may
        renumber GPUs per process; the UUID does not change).
    """
    if device != "gpu":
        return "cpu"
    import torch

    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    return f"gpu-{props.uuid}"


def lock_path(device: str) -> Path:
    """The lock file of ``device`` (see :data:`LOCK_DIR_ENV`; default: the system's temp dir)."""
    root = Path(os.environ.get(LOCK_DIR_ENV) or tempfile.gettempdir())
    return root / f"compile-tuner-{device_key(device)}.lock"


@contextlib.contextmanager
def exclusive(device: str) -> Iterator[float]:
    """Hold the device's host-wide lock for the body.

    Args:
        device: ``"cpu"`` or ``"gpu"``.

    Yields:
        The seconds spent waiting for the lock.
    """
    with file_lock(lock_path(device)) as waited:
        yield waited
