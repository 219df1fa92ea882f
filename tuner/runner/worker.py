"""Candidates run in a worker process: a crash, a hang or a runaway allocation fails one trial.

The study process never builds a candidate itself. A :class:`CandidateWorker` keeps one warm
subprocess (``tuner.runner.worker_main``) that has imported the frameworks and loaded the workload once;
each trial sends it a candidate and gets an :class:`~tuner.core.records.Outcome` back. While it waits,
the study process enforces the limits and classifies a death into the trial's FAIL reason:

=================================  ==================  ==========================================
what happened                      failure kind        the worker afterwards
=================================  ==================  ==========================================
killed by SIGSEGV / SIGBUS         ``segfault``        replaced for the next trial
past ``--trial-timeout`` (+grace)  ``timeout``         killed, replaced
RSS of its process tree over       ``out of memory``   killed, replaced
``--memory-limit``
CUDA error text in the failure     ``cuda error``      replaced (a sticky CUDA error poisons the
                                                       process's context)
SIGKILL from outside while the     ``out of memory``   replaced
cgroup's ``oom_kill`` count rose
SIGKILL from outside, that count   ``killed``          replaced
unchanged
SIGKILL from outside, that count   ``out of memory``   replaced (a guess: the usual sender)
unreadable
any other death (abort, exit)      ``crashed``         replaced
=================================  ==================  ==========================================

The memory limit is a watchdog on resident memory, not ``RLIMIT_AS``: CUDA reserves a large
*virtual* address space up front (tens of GiB on a big GPU), and TVM's and Inductor's allocators map
more than they touch, so an address-space limit would fail healthy candidates at start-up while a
resident-set limit measures what actually strains the machine. Compile sub-processes (Inductor's
compile workers, TVM's builder pool) count too: the whole process tree is summed.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, Pipe
from pathlib import Path
from typing import Any

import psutil

from tuner.core import defaults, stopping
from tuner.core.accuracy import AccuracyRule
from tuner.core.devices import BUILD_THREADS_ENV, usable_cores
from tuner.core.records import INTERRUPTED, Candidate, MeasureConfig, Outcome
from tuner.runner import hostmem

#: Starts every worker process, from one thread that lives as long as the study process.
#: A worker asks Linux to kill it when its parent dies (``PR_SET_PDEATHSIG``, see
#: :mod:`tuner.runner.worker_main`), and Linux takes the *thread* that forked it for the parent.
#: Optuna's trial threads end when the study stops while other trials still run: a worker forked
#: by one of them would be SIGKILLed while another thread used it, a healthy candidate would die
#: (looking like an out-of-memory kill), and its trial would end without an outcome.
_SPAWNER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="tuner-worker-spawner")

#: When the run's time budget ends the search (``time.monotonic()``, None for never), asked while a
#: candidate runs: the search's end moves earlier when a finished trial raises the reserve for the
#: phases after it, and a candidate already running must be cut then, not at the end it started with.
CutAt = Callable[[], float | None]

#: Seconds a new worker may take to import the frameworks and load the workload.
STARTUP_TIMEOUT_S = 600.0
#: How often the study process checks a busy worker's memory and liveness.
POLL_S = 0.05
#: Last lines of a dead worker's log quoted in the FAIL reason.
LOG_TAIL_LINES = 3


#: A worker whose process tree holds more than this share of its memory limit after a trial is
#: retired and the next trial gets a fresh one. Compilers keep memory between candidates (TVM's
#: JIT-loaded host modules, caches). A safeguard against that growth, not a measured fix.
RECYCLE_FRACTION = 0.5


def default_memory_limit_bytes(workers: int) -> int:
    """A share of the RAM this process may use (:data:`tuner.core.defaults.MEMORY_SHARE`), split between the workers.

    That RAM is the machine's, or the container's memory cgroup limit where that is lower
    (:func:`tuner.runner.hostmem.memory_total_bytes`): sharing the host's RAM inside a smaller container
    would let the workers grow past the cgroup's limit, where its out-of-memory killer ends them.

    Args:
        workers: Worker processes on this host.

    Returns:
        Bytes of resident memory one worker's process tree may use.
    """
    return int(hostmem.memory_total_bytes() * defaults.MEMORY_SHARE / max(1, workers))


def hard_limit_s(trial_timeout_s: float) -> float:
    """When the study process kills a worker that is past its time limit.

    The worker stops Python code itself at the limit (and stays warm); native code that never
    returns to the interpreter (a hung kernel, MetaSchedule winding down) gets this much longer.
    """
    return trial_timeout_s + min(30.0, max(2.0, 0.25 * trial_timeout_s))


@dataclasses.dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs once, when it starts.

    Attributes:
        workload_path: The workload file (:func:`tuner.runner.transfer.dump_workload`).
        modules: Modules to import first: where the study's backends are defined (a test-only
            backend may live outside the ``backends`` package).
        sys_path: The study process's ``sys.path`` (a factory's module must import the same).
        rule: The study's accuracy rule.
        measure_config: Warm-up and repeats.
        cache_dir: The backends' cache folder.
        trial_timeout_s: The soft time limit inside the worker (None: none).
    """

    workload_path: Path
    modules: tuple[str, ...]
    sys_path: tuple[str, ...]
    rule: AccuracyRule
    measure_config: MeasureConfig
    cache_dir: Path | None
    trial_timeout_s: float | None


class WorkerStartError(RuntimeError):
    """A worker could not import its modules or load the workload."""


@dataclasses.dataclass
class WorkerStats:
    """Counters for the report and the benchmarks.

    Attributes:
        starts: Worker processes started.
        start_s: Seconds spent starting them (imports plus workload load), in total.
        trials: Candidates evaluated.
        replaced: Workers killed or lost (crash, time or memory limit, CUDA error) and replaced.
        recycled: Healthy workers retired between trials because their memory had grown past
            :data:`RECYCLE_FRACTION` of the limit.
    """

    starts: int = 0
    start_s: float = 0.0
    trials: int = 0
    replaced: int = 0
    recycled: int = 0


def cut_outcome(candidate: Candidate) -> Outcome:
    """A candidate stopped because the run's time budget ended the search (``interrupted``: not its fault)."""
    return Outcome(candidate=candidate, failure_kind=INTERRUPTED,
                   failure_reason="stopped at the end of the search's share of the time budget (--timeout)")


class CandidateWorker:
    """One warm worker process, replaced when a candidate kills or poisons it.

    Args:
        spec: What the worker loads at start.
        memory_limit_bytes: Resident memory its process tree may use (None: no limit).
        env: Extra environment (``CUDA_VISIBLE_DEVICES`` to pin it to one GPU).
        log_path: Where its stdout/stderr go (a dead worker's last lines go into the reason).
    """

    def __init__(self, spec: WorkerSpec, *, memory_limit_bytes: int | None, env: dict[str, str] | None = None,
                 log_path: Path) -> None:
        self.spec = spec
        self.memory_limit_bytes = memory_limit_bytes
        self.env = dict(env or {})
        self.log_path = log_path
        self.stats = WorkerStats()
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._log_offset = 0
        # The cgroup's out-of-memory kill count when the current candidate was sent (None: unknown).
        self._oom_kills_at_send: int | None = None

    # -- life cycle ---------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The live worker's pid, None when there is none."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def start(self) -> None:
        """Start the worker if none is running and wait until it has loaded the workload.

        Raises:
            WorkerStartError: When it dies or reports an error while starting.
        """
        if self.pid is not None:
            return
        self.close()
        t0 = time.perf_counter()
        parent_end, child_end = Pipe(duplex=True)
        env = {**os.environ, **self.env}
        # The worker must import this same ``tuner`` before it can read the spec.
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        self._log_offset = log.tell()
        try:
            self._proc = _SPAWNER.submit(
                subprocess.Popen,
                [sys.executable, "-m", "tuner.runner.worker_main", str(child_end.fileno())],
                pass_fds=(child_end.fileno(),), stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                # Its own session: Ctrl-C at the terminal goes to the study process, which stops
                # the worker itself; and killing the worker's group takes its compile pools along.
                start_new_session=True,
            ).result()
        finally:
            log.close()
            child_end.close()
        self._conn = parent_end
        parent_end.send(self.spec)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not parent_end.poll(POLL_S):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                reason = self._death_reason() if self._proc.poll() is not None else "did not start in time"
                self.close()
                raise WorkerStartError(f"the worker process could not start: {reason}")
        try:
            kind, info = parent_end.recv()
        except (EOFError, OSError):
            kind, info = "error", self._death_reason()
        if kind != "ready":
            self.close()
            raise WorkerStartError(f"the worker process could not load the workload: {info}")
        self.stats.starts += 1
        self.stats.start_s += time.perf_counter() - t0

    def close(self) -> None:
        """Stop the worker (politely if it is idle, else by SIGKILL to its process group)."""
        if self._conn is not None:
            try:
                self._conn.send(("stop",))
            except (OSError, ValueError):
                pass
            self._conn.close()
            self._conn = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                self._kill()
            self._proc = None

    def _kill(self) -> None:
        assert self._proc is not None
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            self._proc.kill()
        self._proc.wait()

    # -- one candidate ------------------------------------------------------------------------

    def evaluate(self, candidate: Candidate, prune: Callable[[float], bool] | None = None,
                 cut_at: CutAt | None = None) -> Outcome:
        """Evaluate one candidate in the worker, enforcing the limits.

        Args:
            candidate: What to build, measure and check.
            prune: The pruner's judgement of the short first measurement (None: no pruning).
            cut_at: When the run's time budget ends the search (:data:`CutAt`, asked while it
                runs): a candidate still running then is stopped, ``interrupted`` (not its fault).

        Returns:
            The worker's outcome, or a failure saying how the worker died or was stopped.

        Raises:
            KeyboardInterrupt: When the user asked to stop (the worker is stopped first).
            WorkerStartError: When no worker can be started at all.
        """
        self.start()
        assert self._conn is not None
        limit = self.spec.trial_timeout_s
        deadline = time.monotonic() + hard_limit_s(limit) if limit else None
        self.stats.trials += 1
        # Read before sending: a SIGKILL is then told apart from the out-of-memory killer's (``_died``).
        self._oom_kills_at_send = hostmem.oom_kills()
        try:
            self._conn.send(("eval", candidate, prune is not None))
            while True:
                if self._conn.poll(POLL_S):
                    outcome = self._answer(candidate, prune)
                    if outcome is not None:
                        return outcome
                    continue
                stopped = self._stopped(candidate, deadline, cut_at)
                if stopped is not None:
                    return stopped
        except KeyboardInterrupt:
            self._replace()
            raise

    def _answer(self, candidate: Candidate, prune: Callable[[float], bool] | None) -> Outcome | None:
        """Read one message of the worker: the outcome, or None after answering the pruner."""
        assert self._conn is not None
        try:
            msg = self._conn.recv()
        except (EOFError, OSError):
            return self._died(candidate)
        if msg[0] == "prune":
            assert prune is not None
            verdict = prune(float(msg[1]))
            try:
                self._conn.send(("prune", verdict))
            except OSError:  # it died while the pruner decided
                return self._died(candidate)
            return None
        if msg[0] == "interrupted":
            raise KeyboardInterrupt
        outcome: Outcome = msg[1]
        if msg[2].get("stop_requested"):
            stopping.request()
        if msg[2].get("poisoned"):
            self._replace()
        elif self.memory_limit_bytes is not None and self._tree_rss() > RECYCLE_FRACTION * self.memory_limit_bytes:
            self.stats.recycled += 1
            self.close()
        return outcome

    def _stopped(self, candidate: Candidate, deadline: float | None, cut_at: CutAt | None) -> Outcome | None:
        """While the worker is busy: the outcome of a death or of a limit reached, else None."""
        assert self._proc is not None
        if self._proc.poll() is not None:
            return self._died(candidate)
        if stopping.requested():
            raise KeyboardInterrupt
        now = time.monotonic()
        end = None if cut_at is None else cut_at()
        if end is not None and now > end:
            self._replace()
            return cut_outcome(candidate)
        if deadline is not None and now > deadline:
            self._replace()
            return Outcome(candidate=candidate, failure_kind="timeout",
                           failure_reason=f"over the {self.spec.trial_timeout_s:g} s time limit per candidate "
                                          "(--trial-timeout); the worker did not stop and was killed")
        rss = self._tree_rss()
        if self.memory_limit_bytes is not None and rss > self.memory_limit_bytes:
            self._replace()
            return Outcome(candidate=candidate, failure_kind="out of memory",
                           failure_reason=f"the worker used {rss / 2**30:.2f} GiB, over the "
                                          f"{self.memory_limit_bytes / 2**30:.2f} GiB memory limit "
                                          "(--memory-limit); it was killed")
        return None

    def _replace(self) -> None:
        """Kill the worker now; the next candidate gets a fresh one."""
        if self._proc is not None and self._proc.poll() is None:
            self._kill()
        self.stats.replaced += 1
        self.close()

    def _tree_rss(self) -> int:
        assert self._proc is not None
        try:
            root = psutil.Process(self._proc.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _died(self, candidate: Candidate) -> Outcome:
        assert self._proc is not None
        code = self._proc.wait()
        reason = self._death_reason()
        if code in (-signal.SIGSEGV, -signal.SIGBUS):
            kind = "segfault"
        elif code == -signal.SIGKILL:
            # Nobody here sent it. The kernel counts every out-of-memory kill in the cgroup's
            # ``oom_kill`` (its own limit's and the machine-wide killer's), so the count tells
            # the OOM killer from another sender (a container runtime, a job scheduler, a user).
            kind, reason = self._sigkill_kind(reason)
        else:
            kind = "crashed"
        self.stats.replaced += 1
        self.close()
        return Outcome(candidate=candidate, failure_kind=kind, failure_reason=reason)

    def _sigkill_kind(self, reason: str) -> tuple[str, str]:
        """The failure kind and reason of a worker killed by a SIGKILL that the tuner did not send."""
        before, after = self._oom_kills_at_send, hostmem.oom_kills()
        if before is None or after is None:
            return "out of memory", f"{reason} (killed from outside: the system's out-of-memory killer?)"
        if after > before:
            # Another worker of the same cgroup killed at the same time would count too: then
            # this death is blamed on memory as well, which is the likelier story anyway.
            return "out of memory", (f"{reason} (killed by the out-of-memory killer: this cgroup's oom_kill "
                                     f"count went from {before} to {after} while the candidate ran)")
        return "killed", "killed by SIGKILL from outside the tuner (no out-of-memory kill recorded in this cgroup)"

    def _death_reason(self) -> str:
        assert self._proc is not None
        code = self._proc.poll()
        if code is not None and code < 0:
            what = f"the worker was killed by {signal.Signals(-code).name}"
        else:
            what = f"the worker exited with code {code}"
        tail = self._log_tail()
        return f"{what}: {tail}" if tail else what

    def _log_tail(self) -> str:
        """The telling lines of what the dead worker printed (faulthandler's frame, an error)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        keep = [ln for ln in lines if ln.startswith(("Fatal Python error", "File "))][:LOG_TAIL_LINES]
        return " | ".join(keep or lines[-LOG_TAIL_LINES:])[:600]


def worker_env(index: int, device: str, gpus: list[str], workers: int = 1) -> dict[str, str]:
    """The environment of worker ``index``: one GPU each (round robin), and its share of the cores.

    Several workers may share one GPU: they compile in parallel and take turns timing
    (``tuner.runtime.exclusive``). Each compiler would otherwise start a thread or process per core
    (Inductor's compile pool, MetaSchedule's builders), so N workers would run N times the cores.

    Args:
        index: Worker number.
        device: ``cpu`` or ``gpu``.
        gpus: Visible GPU ids (``CUDA_VISIBLE_DEVICES`` entries, or ``0..n-1``).
        workers: How many workers run at once.

    Returns:
        Variables to set (a variable the user set already is left alone).
    """
    env: dict[str, str] = {}
    if workers > 1:
        share = str(max(1, usable_cores() // workers))
        for name in ("TORCHINDUCTOR_COMPILE_THREADS", BUILD_THREADS_ENV):
            if name not in os.environ:
                env[name] = share
    if device == "gpu" and gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
    return env


def visible_gpus() -> list[str]:
    """The GPU ids this process may use, as ``CUDA_VISIBLE_DEVICES`` entries."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip()]
    from tuner.core.devices import cuda_available

    if not cuda_available():
        return []
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def describe_stats(stats: list[WorkerStats]) -> dict[str, Any]:
    """Totals over the workers, for the report."""
    return {"workers": len(stats), "starts": sum(s.starts for s in stats),
            "start_s": round(sum(s.start_s for s in stats), 2), "trials": sum(s.trials for s in stats),
            "replaced": sum(s.replaced for s in stats), "recycled": sum(s.recycled for s in stats)}


__all__ = ["CandidateWorker", "CutAt", "WorkerSpec", "WorkerStartError", "WorkerStats", "cut_outcome",
           "default_memory_limit_bytes", "describe_stats", "hard_limit_s", "visible_gpus", "worker_env"]
