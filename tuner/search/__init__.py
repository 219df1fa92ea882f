"""The Optuna study: opened or continued, its trial loop, admissions and the result cache, storages.

Imports the rooms below it (core, runtime, workloads, runner), ``backends`` and ``search_space``.
Progress and MLflow logging reach it as protocols (:class:`tuner.core.progress.Progress`,
:class:`tuner.search.loop.TrialLog`), so it imports neither the CLI nor MLflow.
"""

from tuner.search.loop import LoopResult, TrialLog, run_trials
from tuner.search.study import best_candidate, decode, load_study, open_study, resolve_backends, space_of
from tuner.search.summary import summary

__all__ = ["LoopResult", "TrialLog", "best_candidate", "decode", "load_study", "open_study", "resolve_backends",
           "run_trials", "space_of", "summary"]
