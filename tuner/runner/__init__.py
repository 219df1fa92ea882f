"""One candidate built, measured and checked, in an isolated worker process (or, as a fallback, here).

Imports :mod:`tuner.core`, :mod:`tuner.runtime`, :mod:`tuner.workloads` and ``backends``.
"""

from tuner.runner.evaluate import evaluate
from tuner.runner.pool import Evaluator, InProcessEvaluator, WorkerPool, start_evaluator
from tuner.runner.worker import CandidateWorker, WorkerSpec

__all__ = ["CandidateWorker", "Evaluator", "InProcessEvaluator", "WorkerPool", "WorkerSpec", "evaluate",
           "start_evaluator"]
