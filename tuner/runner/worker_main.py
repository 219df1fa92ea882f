"""The worker process: loads the workload once, then builds, measures and checks candidates.

Started by :class:`tuner.runner.worker.CandidateWorker` as ``python -m tuner.runner.worker_main <fd>``, where
``fd`` is its end of a pipe. It is a plain subprocess rather than a ``multiprocessing`` child so
that it never re-runs the user's ``__main__`` script (``spawn`` does), and so that it starts with
the environment the parent gives it (``CUDA_VISIBLE_DEVICES`` for one GPU per worker).

Messages (pickled over the pipe)::

    parent -> worker   WorkerSpec                       once, first
    worker -> parent   ("ready", {"pid", "load_s"})     or ("error", reason) and exit
    parent -> worker   ("eval", Candidate, use_prune)
    worker -> parent   ("prune", value_s)   parent -> worker ("prune", bool)     (0 or 1 time)
    worker -> parent   ("done", Outcome, {"stop_requested", "poisoned"})
                       or ("interrupted", "")
    parent -> worker   ("stop",)            or the pipe closes: the worker exits
"""

from __future__ import annotations

import ctypes
import faulthandler
import importlib
import os
import signal
import sys
import time
from multiprocessing.connection import Connection

from backends import backend_names
from tuner.core import stopping
from tuner.core.errors import error_line
from tuner.core.records import Candidate, Outcome
from tuner.core.workload import Workload
from tuner.runner.evaluate import evaluate
from tuner.runner.transfer import load_workload_file
from tuner.runner.worker import WorkerSpec
from tuner.runtime.timelimit import TrialTimeout, time_limit

#: prctl option: the kernel sends this process a signal when its parent dies.
_PR_SET_PDEATHSIG = 1

#: Failure text that means the CUDA context is broken (sticky errors): the worker must not run
#: another candidate, as every later CUDA call in this process would fail too.
CUDA_ERROR_MARKERS = ("CUDA error", "cudaError", "CUDA_ERROR", "CUBLAS_STATUS", "CUDNN_STATUS",
                      "device-side assert")


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when the study process dies (even by ``kill -9``).

    Without it a killed ``tune`` would leave its worker measuring, holding a GPU, for nobody.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the closed pipe still ends the worker
        pass
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def _load(spec: WorkerSpec) -> Workload:
    """Import the study's backends and load the workload, once, as the worker starts."""
    sys.path[:] = list(spec.sys_path)
    for module in spec.modules:
        importlib.import_module(module)
    # Import every backend module now (TVM's import alone takes seconds): the first
    # candidate's time limit must not pay for it.
    backend_names()
    workload = load_workload_file(spec.workload_path)
    # One untimed pass of the original model: the first calls of a process are slow
    # (allocator, thread pools), and the first candidate would be judged on them. A TF
    # model is a frozen graph, not a callable (and TensorFlow may not be here at all: the
    # GPU machine runs its ONNX export); its backends warm up in their own builds.
    if workload.framework == "torch":
        import torch

        with torch.no_grad():
            for sample in workload.samples:
                workload.model(*sample)
    return workload


def _evaluate(conn: Connection, spec: WorkerSpec, workload: Workload, candidate: Candidate,
              use_prune: bool) -> tuple[Outcome, bool]:
    """Evaluate one candidate under the soft time limit.

    Returns:
        The outcome, and whether the process is poisoned (a sticky CUDA error, an unexpected
        exception): the parent then replaces this worker.
    """

    def prune(value_s: float) -> bool:
        conn.send(("prune", value_s))
        return bool(conn.recv()[1])

    poisoned = False
    try:
        # The soft limit: Python code stops at it and the worker stays warm. The parent kills
        # the worker a little later if native code does not give the interpreter back.
        with time_limit(spec.trial_timeout_s):
            outcome = evaluate(candidate, workload, spec.rule, spec.measure_config,
                               prune if use_prune else None, cache_dir=spec.cache_dir)
    except TrialTimeout as e:
        outcome = Outcome(candidate=candidate, failure_kind="timeout", failure_reason=str(e))
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001 - evaluate should not raise; if it does, say so
        outcome = Outcome(candidate=candidate, failure_kind="crashed", failure_reason=error_line(e))
        poisoned = True
    reason = outcome.failure_reason or ""
    if outcome.failure_kind in ("build", "run", "crashed") and any(m in reason for m in CUDA_ERROR_MARKERS):
        outcome = Outcome(candidate=candidate, failure_kind="cuda error", failure_reason=reason,
                          compile_s=outcome.compile_s)
        poisoned = True
    return outcome, poisoned


def _serve(conn: Connection) -> None:
    spec: WorkerSpec = conn.recv()
    try:
        t0 = time.perf_counter()
        workload = _load(spec)
        load_s = time.perf_counter() - t0
    except BaseException as e:  # noqa: BLE001 - reported to the parent, which decides
        conn.send(("error", error_line(e)))
        return
    conn.send(("ready", {"pid": os.getpid(), "load_s": load_s}))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] != "eval":
            return
        _, candidate, use_prune = msg
        try:
            outcome, poisoned = _evaluate(conn, spec, workload, candidate, use_prune)
        except KeyboardInterrupt:
            conn.send(("interrupted", ""))
            continue
        conn.send(("done", outcome, {"stop_requested": stopping.requested(), "poisoned": poisoned}))


def main() -> None:
    """Entry point: ``python -m tuner.runner.worker_main <fd>``."""
    _die_with_parent()
    # Ctrl-C reaches the whole process group; the study process decides what an interrupt
    # means (it stops this worker itself), so the worker must not die half-way on its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A segfault then leaves a Python traceback in the worker's log (the FAIL reason quotes it).
    faulthandler.enable()
    conn = Connection(int(sys.argv[1]))
    try:
        _serve(conn)
    finally:
        conn.close()


if __name__ == "__main__":
    main()
