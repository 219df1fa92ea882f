"""Test-only backends that fail the way real compilers do, to prove the study survives them.

``test_faulty`` runs the model as eager does, except on some values of its one search option
``test_faulty/variant`` (0..9), where it segfaults (3), hangs in code that ignores the time
limit's signal (5), allocates memory without bound (7), or reports a CUDA error (9): each on 10 %
of the space, chosen deterministically so that a test knows every trial's expected FAIL reason.
The others add ``variant`` x 3 ms of sleep per call, so variant 0 is the right best (3 ms gaps: a
loaded 2-core host oversleeps by milliseconds; the slowest, 24 ms, still measures within a
trial's few seconds).

``test_lucky`` has 4 variants that test how the winner is chosen after the trials: 0 and 1 take
30 and 15 ms per call; 2 takes no time in a tuner worker (where trials run) but 45 ms anywhere
else, like a candidate whose one trial measurement was lucky; 3 takes 1 ms but cannot be exported.
Their artifacts take the same time per call reloaded as they do outside a worker.
The gaps are 14 ms or more per call: with the test suite in 2 processes on 2 cores, one
side-by-side measurement ran 9 ms per call over its sleep (2026-12-07).
The study ranks them 2, 3, 1, 0; measured again, 3 is the fastest, and 1 is what can be emitted.

``test_cheap`` has 400 fault-free variants of the same kind (sleep ``variant % 20`` x 0.1 ms per
call): a space large enough for 200-trial benchmarks of the study machinery itself.

``test_picky`` is ``test_cheap`` over 20 variants in two shape modes, where dynamic mode always
fails to build: a region of the space that fails on every candidate, which the sampler must learn
to leave.

``test_slow`` has 2 variants: 0 runs as eager does; 1 compiles for an hour in Python code (a
compiler that is slow, not stuck: the ``SIGALRM`` of a compile or time limit interrupts it).

All five are ``test_only``: kept out of the default backend list; ask for them with ``--backends``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backends.eager import EagerBackend
from tuner.core.records import Built, Candidate
from tuner.core.workload import Workload

#: variant % 10 -> the fault injected.
FAULTS = {3: "segfault", 5: "hang", 7: "oom", 9: "cuda"}
#: The FAIL kind each fault must come out as.
EXPECTED_KIND = {"segfault": "segfault", "hang": "timeout", "oom": "out of memory", "cuda": "cuda error"}
#: The runaway allocation stops here if nothing stopped it before (then the test fails on the
#: reason instead of the machine running out of memory).
OOM_SAFETY_CAP_BYTES = 12 * 2**30
#: Allocation step and pause: about 1.6 GB/s, so the watchdog's 50 ms polls overshoot by ~80 MB.
OOM_STEP_BYTES = 32 * 2**20
OOM_STEP_S = 0.02


def fault_of(variant: int) -> str | None:
    """The fault ``test_faulty`` injects for a variant (None: it runs fine)."""
    return FAULTS.get(variant % 10)


def _hang() -> None:
    # Like a kernel stuck in native code: this thread never returns to the interpreter (a native
    # sleep), and the time limit's SIGALRM cannot interrupt it (blocked here), so Python's own
    # limit never fires: only the study process's kill ends it.
    libc = ctypes.CDLL(None)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM, signal.SIGINT, signal.SIGTERM})
    while True:
        libc.sleep(3600)


def _allocate_without_bound() -> None:
    hoard: list[bytearray] = []
    while len(hoard) * OOM_STEP_BYTES < OOM_SAFETY_CAP_BYTES:
        hoard.append(bytearray(b"\x01") * OOM_STEP_BYTES)  # written, so resident (not lazy zero pages)
        time.sleep(OOM_STEP_S)
    raise MemoryError("test_faulty allocated up to its safety cap and nothing stopped it")


class FaultyBackend(EagerBackend):
    """Eager with injected segfaults, hangs, runaway memory and CUDA errors (see the module doc)."""

    name = "test_faulty"
    test_only = True

    def _delay_s(self, variant: int) -> float:
        return variant * 3e-3

    def compile(self, workload: Workload, candidate: Candidate) -> Built:
        """The model with a per-variant delay, or the variant's fault.

        Args:
            workload: The model.
            candidate: Its ``<name>/variant`` option picks the behaviour.

        Returns:
            The callable.

        Raises:
            RuntimeError: The injected CUDA error (at the first call).
        """
        variant = int(candidate.option("variant", 0))
        fault = fault_of(variant) if self.name == "test_faulty" else None
        if fault == "segfault":
            os.kill(os.getpid(), signal.SIGSEGV)
        if fault == "hang":
            _hang()
        model = workload.model
        delay = self._delay_s(variant)

        def fn(*args: Any) -> Any:
            if fault == "oom":
                _allocate_without_bound()
            if fault == "cuda":
                raise RuntimeError("CUDA error: an illegal memory access was encountered (injected by test_faulty)")
            out = model(*args)
            if delay:
                time.sleep(delay)
            return out

        return Built(fn=fn, build_s=0.0, state={"model": model})


class CheapBackend(FaultyBackend):
    """400 fault-free variants that cost little to measure (benchmarks of the study machinery)."""

    name = "test_cheap"

    def _delay_s(self, variant: int) -> float:
        return (variant % 20) * 1e-4


class PickyBackend(CheapBackend):
    """``test_cheap``'s speeds over 20 variants, in two shape modes, one of which never builds."""

    name = "test_picky"
    shape_modes = ("static", "dynamic")

    def compile(self, workload: Workload, candidate: Candidate) -> Built:
        """``test_cheap``'s callable in static mode.

        Args:
            workload: The model.
            candidate: Its shape mode and ``test_picky/variant``.

        Returns:
            The callable.

        Raises:
            ValueError: In dynamic mode, always (like ``tvm``'s import of ``tf_asr``).
        """
        if candidate.shape_mode == "dynamic":
            raise ValueError("test_picky cannot build in dynamic mode (injected)")
        return super().compile(workload, candidate)


def in_tuner_worker() -> bool:
    """Whether this process is a tuner worker (``python -m tuner.runner.worker_main``), where trials run."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return getattr(spec, "name", None) == "tuner.runner.worker_main"


class LuckyBackend(FaultyBackend):
    """A lucky trial measurement and a winner that cannot be exported (see the module doc)."""

    name = "test_lucky"
    #: variant -> ms per call (in a tuner worker, outside one).
    DELAY_MS = {0: (30.0, 30.0), 1: (15.0, 15.0), 2: (0.0, 45.0), 3: (1.0, 1.0)}
    UNEXPORTABLE = 3

    def _delay_s(self, variant: int) -> float:
        in_worker, elsewhere = self.DELAY_MS[variant]
        return (in_worker if in_tuner_worker() else elsewhere) * 1e-3

    def export(self, built: Built, workload: Workload, candidate: Candidate, directory: Path) -> dict[str, Any]:
        """Eager's export, with the variant's delay outside a worker; none for the unexportable variant.

        Raises:
            RuntimeError: For variant 3.
        """
        variant = int(candidate.option("variant", 0))
        if variant == self.UNEXPORTABLE:
            raise RuntimeError("test_lucky variant 3 cannot be exported (injected)")
        return {**super().export(built, workload, candidate, directory), "delay_ms": self.DELAY_MS[variant][1]}

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any], device: str) -> Callable[..., Any]:
        """Eager's artifact, each call delayed as the variant is outside a worker.

        Args:
            directory: The artifact folder.
            meta: What :meth:`export` returned.
            device: ``"cpu"`` or ``"gpu"``.
        """
        fn = super().load(directory, meta, device)
        delay = float(meta.get("delay_ms", 0.0)) * 1e-3

        def delayed(*args: Any) -> Any:
            out = fn(*args)
            time.sleep(delay)
            return out

        return delayed


class SlowBackend(FaultyBackend):
    """A compiler that takes an hour on variant 1, in interruptible Python code (see the module doc)."""

    name = "test_slow"
    #: The variant that compiles for an hour.
    SLOW = 1
    SLOW_COMPILE_S = 3600.0

    def compile(self, workload: Workload, candidate: Candidate) -> Built:
        """Eager's callable, after an hour's sleep on the slow variant.

        Args:
            workload: The model.
            candidate: Its ``test_slow/variant`` option.

        Returns:
            The callable.
        """
        if int(candidate.option("variant", 0)) == self.SLOW:
            end = time.monotonic() + self.SLOW_COMPILE_S
            while time.monotonic() < end:
                time.sleep(0.05)  # short sleeps: a signal handler's exception surfaces within one
        return super().compile(workload, candidate)
