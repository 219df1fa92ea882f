"""The evaluators a study's trials use: a pool of worker processes, or (fallback) this process.

``--workers N`` gives N :class:`~tuner.runner.worker.CandidateWorker` s, each driven by one of Optuna's
trial threads (``n_jobs=N``); a thread takes a free worker for its trial. The threads only wait on
pipes, so one study process drives N workers; on a GPU host each worker is pinned to one GPU.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from backends import backend_class
from tuner.core.accuracy import AccuracyRule
from tuner.core.errors import error_line
from tuner.core.progress import Progress
from tuner.core.records import Candidate, MeasureConfig, Outcome
from tuner.core.settings import TuneSettings
from tuner.core.workload import Workload
from tuner.runner.evaluate import evaluate
from tuner.runner.transfer import dump_workload
from tuner.runner.worker import (
    CandidateWorker,
    CutAt,
    WorkerSpec,
    WorkerStats,
    cut_outcome,
    default_memory_limit_bytes,
    describe_stats,
    visible_gpus,
    worker_env,
)
from tuner.runtime.timelimit import TrialTimeout, time_limit


class Evaluator(Protocol):
    """Evaluates one candidate, enforcing the trial's limits."""

    def evaluate(self, candidate: Candidate, prune: Callable[[float], bool] | None,
                 cut_at: CutAt | None = None) -> Outcome:
        """Build, measure and check ``candidate``; failures are returned, not raised.

        ``cut_at`` answers when the run's time budget ends the search (``time.monotonic()``, None
        for never): a candidate still running then is stopped and ``interrupted``.
        """

    def close(self) -> None:
        """Stop what it started."""

    def stats(self) -> dict[str, object]:
        """Counters for the report."""


class InProcessEvaluator:
    """Evaluates in the study process itself (no isolation; only when no worker can be used).

    Args:
        workload: The workload.
        rule: The study's accuracy rule.
        config: Measurement protocol.
        cache_dir: The backends' cache folder.
        trial_timeout_s: Time limit (SIGALRM: main thread only).
    """

    def __init__(self, workload: Workload, rule: AccuracyRule, config: MeasureConfig, cache_dir: Path | None,
                 trial_timeout_s: float | None) -> None:
        self.workload, self.rule, self.config = workload, rule, config
        self.cache_dir, self.trial_timeout_s = cache_dir, trial_timeout_s

    def evaluate(self, candidate: Candidate, prune: Callable[[float], bool] | None,
                 cut_at: CutAt | None = None) -> Outcome:
        """See :class:`Evaluator` (``cut_at`` is asked once, at the start: a signal's alarm cannot move)."""
        end = None if cut_at is None else cut_at()
        left = None if end is None else max(0.01, end - time.monotonic())
        cut = left is not None and (self.trial_timeout_s is None or left < self.trial_timeout_s)
        try:
            with time_limit(left if cut else self.trial_timeout_s):
                return evaluate(candidate, self.workload, self.rule, self.config, prune,
                                cache_dir=self.cache_dir)
        except TrialTimeout as e:
            if cut:
                return cut_outcome(candidate)
            return Outcome(candidate=candidate, failure_kind="timeout", failure_reason=str(e))

    def close(self) -> None:
        """Nothing to stop."""

    def stats(self) -> dict[str, object]:
        """No workers."""
        return {"workers": 0, "isolated": False}


class WorkerPool:
    """``n`` warm worker processes shared by the trial threads.

    Args:
        spec: What each worker loads.
        n: How many workers.
        device: ``cpu`` or ``gpu`` (GPU workers get one GPU each, round robin over ``gpus``).
        gpus: Visible GPU ids.
        memory_limit_bytes: Per worker.
        log_dir: Where the workers' logs go.
    """

    def __init__(self, spec: WorkerSpec, n: int, device: str, gpus: list[str], memory_limit_bytes: int | None,
                 log_dir: Path) -> None:
        self.workers = [CandidateWorker(spec, memory_limit_bytes=memory_limit_bytes, env=worker_env(i, device, gpus, n),
                                        log_path=log_dir / f"worker-{i}.log") for i in range(n)]
        self._free: queue.Queue[CandidateWorker] = queue.Queue()
        for w in self.workers:
            self._free.put(w)

    @contextlib.contextmanager
    def worker(self) -> Iterator[CandidateWorker]:
        """Take a free worker for one trial (blocks while all are busy)."""
        w = self._free.get()
        try:
            yield w
        finally:
            self._free.put(w)

    def evaluate(self, candidate: Candidate, prune: Callable[[float], bool] | None,
                 cut_at: CutAt | None = None) -> Outcome:
        """See :class:`Evaluator`."""
        with self.worker() as w:
            return w.evaluate(candidate, prune, cut_at)

    def close(self) -> None:
        """Stop every worker."""
        for w in self.workers:
            w.close()

    def stats(self) -> dict[str, object]:
        """Starts, start-up seconds, trials and replacements over the workers."""
        all_stats: list[WorkerStats] = [w.stats for w in self.workers]
        return {**describe_stats(all_stats), "isolated": True}


def start_evaluator(workload: Workload, backends: tuple[str, ...], settings: TuneSettings,
                    progress: Progress) -> Evaluator:
    """The worker pool, started with its first worker; this process only if that cannot be.

    Args:
        workload: The workload (written once to a file every worker loads).
        backends: The study's backends (each worker imports the modules that define them).
        settings: Workers, memory limit, measurement, time limit.
        progress: Who to tell (and warn when candidates must run in this process).

    Returns:
        The evaluator the trial loop uses.
    """
    in_process = InProcessEvaluator(workload, settings.rule, settings.measure_config(), settings.cache_dir,
                                    settings.trial_timeout_s)
    if not settings.isolate:
        return in_process
    workers_dir = settings.workers_dir
    spec = WorkerSpec(workload_path=workers_dir / "workload.pt", modules=backend_modules(backends),
                      sys_path=tuple(sys.path), rule=settings.rule, measure_config=settings.measure_config(),
                      cache_dir=settings.cache_dir, trial_timeout_s=settings.trial_timeout_s)
    n_workers = settings.worker_count(workload.device)
    memory = (int(settings.memory_limit_gb * 2**30) if settings.memory_limit_gb
              else default_memory_limit_bytes(n_workers))
    progress.phase(f"starting {n_workers} worker process(es) (memory limit {memory / 2**30:.1f} GiB each)")
    try:
        dump_workload(workload, spec.workload_path)
        gpus = visible_gpus() if workload.device == "gpu" else []
        pool = WorkerPool(spec, n_workers, workload.device, gpus, memory, workers_dir)
        pool.workers[0].start()
    except Exception as e:  # noqa: BLE001 - an unpicklable model: say so and measure here instead
        progress.message(f"warning: candidates run in this process, without isolation from crashes and hangs: "
                         f"the model cannot be handed to a worker process ({error_line(e)})")
        return in_process
    return pool


def backend_modules(backends: tuple[str, ...]) -> tuple[str, ...]:
    """The modules that define the study's backends (a worker imports them to register them)."""
    return tuple(dict.fromkeys(backend_class(n).__module__ for n in ("eager", *backends)))


__all__ = ["Evaluator", "InProcessEvaluator", "WorkerPool", "backend_modules", "start_evaluator"]
