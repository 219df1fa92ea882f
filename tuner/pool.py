"""The evaluators a study's trials use: a pool of worker processes, or (fallback) this process.

``--workers N`` gives N :class:`~tuner.worker.CandidateWorker` s, each driven by one of Optuna's
trial threads (``n_jobs=N``); a thread takes a free worker for its trial. The threads only wait on
pipes, so one study process drives N workers; on a GPU host each worker is pinned to one GPU.
"""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from backends import backend_class
from tuner.correctness import TOLERANCES
from tuner.evaluate import evaluate
from tuner.measure import MeasureConfig
from tuner.records import Candidate, Outcome
from tuner.timelimit import TrialTimeout, time_limit
from tuner.worker import CandidateWorker, WorkerSpec, WorkerStats, describe_stats, worker_env
from tuner.workload import Workload


class Evaluator(Protocol):
    """Evaluates one candidate, enforcing the trial's limits."""

    def evaluate(self, candidate: Candidate, prune: Callable[[float], bool] | None) -> Outcome:
        """Build, measure and check ``candidate``; failures are returned, not raised."""

    def close(self) -> None:
        """Stop what it started."""

    def stats(self) -> dict[str, object]:
        """Counters for the report."""


class InProcessEvaluator:
    """Evaluates in the study process itself (no isolation; only when no worker can be used).

    Args:
        workload: The workload.
        level: Its tolerance level.
        config: Measurement protocol.
        cache_dir: The backends' cache folder.
        trial_timeout_s: Time limit (SIGALRM: main thread only).
    """

    def __init__(self, workload: Workload, level: str, config: MeasureConfig, cache_dir: Path | None,
                 trial_timeout_s: float | None) -> None:
        self.workload, self.level, self.config = workload, level, config
        self.cache_dir, self.trial_timeout_s = cache_dir, trial_timeout_s

    def evaluate(self, candidate: Candidate, prune: Callable[[float], bool] | None) -> Outcome:
        """See :class:`Evaluator`."""
        try:
            with time_limit(self.trial_timeout_s):
                return evaluate(candidate, self.workload, TOLERANCES[self.level], self.config, prune,
                                cache_dir=self.cache_dir)
        except TrialTimeout as e:
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

    def evaluate(self, candidate: Candidate, prune: Callable[[float], bool] | None) -> Outcome:
        """See :class:`Evaluator`."""
        with self.worker() as w:
            return w.evaluate(candidate, prune)

    def close(self) -> None:
        """Stop every worker."""
        for w in self.workers:
            w.close()

    def stats(self) -> dict[str, object]:
        """Starts, start-up seconds, trials and replacements over the workers."""
        all_stats: list[WorkerStats] = [w.stats for w in self.workers]
        return {**describe_stats(all_stats), "isolated": True}


def backend_modules(backends: tuple[str, ...]) -> tuple[str, ...]:
    """The modules that define the study's backends (a worker imports them to register them)."""
    return tuple(dict.fromkeys(backend_class(n).__module__ for n in ("eager", *backends)))


__all__ = ["Evaluator", "InProcessEvaluator", "WorkerPool", "backend_modules"]
