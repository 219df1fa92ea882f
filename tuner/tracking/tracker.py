"""MLflow tracking of a study: one experiment per Optuna study, a parent run, a child run per trial.

Everything goes through :class:`mlflow.MlflowClient` with explicit run ids, never through the
fluent API (``mlflow.start_run`` ...): the fluent API keeps a process-global active run, so using
it would leak our logging into the user's own run and would not let several trackers coexist in
one process.

Layout in MLflow::

    experiment <study name>       artifact_location = <output dir>/mlruns (never the cwd)
      run <study name>            tags "tuner.study"=<name>, "tuner.role"=study; study params;
                                  metric best_objective_ms per trial step (the running best);
                                  artifacts report.json, best_config.json, plots/, best/
        run trial-0000 ...        tag mlflow.parentRunId; Optuna params; latency metrics;
                                  tags backend, status, failure_reason, candidate_key, ...

A resumed study continues its parent run (set back to RUNNING) instead of opening a second one,
and a trial number that already has a child run is not logged twice.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
import urllib.parse
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.core.places import sqlite_file
from tuner.core.records import Outcome
from tuner.tracking.uri import check_sqlite_uri

if TYPE_CHECKING:
    import optuna
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, Run, RunTag

__all__ = ["Tracker"]

_log = logging.getLogger(__name__)

#: Tag keys that identify the study's parent run inside the study's experiment.
TAG_STUDY = "tuner.study"
TAG_ROLE = "tuner.role"
#: Tag MLflow itself uses to nest a run under another in its UI.
TAG_PARENT = "mlflow.parentRunId"
#: Tag holding the Optuna trial number of a child run (the idempotence key).
TAG_TRIAL = "trial_number"

#: Metric on the parent run: the best objective so far, one point per improving trial.
BEST_METRIC = "best_objective_ms"

#: failure_reason tags are cut here: MLflow refuses tag values over 8000 characters, and the
#: head of a traceback is what says why.
MAX_REASON_CHARS = 5000
# MLflow's own limits (mlflow.utils.validation); values over them are refused, not truncated.
_MAX_PARAM_VALUE = 6000
_MAX_TAG_VALUE = 8000
_MAX_KEY = 250
_MAX_PARAMS_TAGS_PER_BATCH = 100

#: Optuna trial state -> MLflow run status. A pruned trial ran as intended (the pruner stopped
#: it); its ``status`` tag says PRUNED.
_RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED"}
_END_STATUSES = ("FINISHED", "FAILED", "KILLED")


# Characters MLflow accepts in param, metric and tag keys (mlflow.utils.validation).
_BAD_KEY_CHARS = re.compile(r"[^/\w.\- ]")


def _quiet_mlflow() -> None:
    """Silence MLflow's and alembic's INFO chatter so that the CLI's own output stays readable.

    A fresh sqlite store logs its table creation and every alembic migration at INFO; MLflow's
    import installs its own INFO handler on the ``mlflow`` logger. Warnings still come through.
    """
    for name in ("mlflow", "alembic"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)
    # Uploading/downloading artifacts otherwise draws tqdm bars on stderr for large files.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # With an http(s) server, every set_terminated prints "🏃 View run ... at: <url>" to stdout
    # (and fetches the run once more to do so: one extra round trip per trial).
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _key(name: str) -> str:
    """Make ``name`` a key MLflow accepts: bad characters and path tricks become ``_``."""
    cleaned = _BAD_KEY_CHARS.sub("_", name)
    # MLflow also refuses keys that normalize to another path ("a//b", "./a", "../a", "/a").
    parts = [p if p not in ("", ".", "..") else "_" for p in cleaned.split("/")]
    return "/".join(parts)[:_MAX_KEY] or "_"


def _value(value: Any, limit: int) -> str:
    """Render a param/tag value as text: JSON for containers (stable across runs), else ``str``."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, Mapping | list | tuple | set):
        items = sorted(value, key=str) if isinstance(value, set) else value
        text = json.dumps(items, sort_keys=True, default=str)
    else:
        text = str(value)
    return text[:limit]


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Tracker:
    """One MLflow experiment per Optuna study: a parent run for the study, a child run per trial.

    Safe to call from Optuna's worker threads (``n_jobs > 1``): :meth:`log_trial` holds a lock.

    Args:
        tracking_uri: MLflow tracking URI, e.g. ``sqlite:////out/mlflow.db`` (validate it first
            with :func:`check_tracking_uri` to get a one-line error instead of a traceback).
        study_name: Optuna study name; it is also the experiment's name.
        artifact_dir: Where the experiment's artifacts go when the experiment is created here
            (an existing experiment keeps its own location, see :attr:`artifact_location`).

    Raises:
        UserError: The sqlite database's directory cannot be created or written.
    """

    def __init__(self, tracking_uri: str, study_name: str, artifact_dir: Path) -> None:
        if urllib.parse.urlparse(tracking_uri).scheme == "sqlite":
            # Cheap, and sqlite's own "unable to open database file" names neither path nor fix.
            check_sqlite_uri(tracking_uri)
            db = sqlite_file(tracking_uri)
            if db is not None:
                db.parent.mkdir(parents=True, exist_ok=True)
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        # After the import: importing mlflow installs its own INFO-level logger configuration.
        _quiet_mlflow()

        self.tracking_uri = tracking_uri
        self.study_name = study_name
        self.client: MlflowClient = MlflowClient(tracking_uri=tracking_uri)
        wanted_location = Path(artifact_dir).resolve().as_uri()

        experiment = self.client.get_experiment_by_name(study_name)
        if experiment is None:
            try:
                experiment_id = self.client.create_experiment(study_name, artifact_location=wanted_location)
            except MlflowException:
                # Another process created it between our lookup and create: use theirs.
                experiment = self.client.get_experiment_by_name(study_name)
                if experiment is None:
                    raise
                experiment_id = experiment.experiment_id
        else:
            experiment_id = experiment.experiment_id
            if experiment.lifecycle_stage == "deleted":
                # A deleted experiment still owns its name; creating a new one would be refused.
                self.client.restore_experiment(experiment_id)
        self.experiment_id: str = experiment_id
        self.artifact_location: str = self.client.get_experiment(experiment_id).artifact_location
        if self.artifact_location != wanted_location:
            _log.info("experiment %s keeps its artifact location %s", study_name, self.artifact_location)

        self.parent_run_id: str | None = None
        self._lock = threading.Lock()
        self._best_ms: float | None = None
        self._last_step = 0
        self._logged_trials: set[int] = set()

    # -- the parent run ---------------------------------------------------------------------

    def _find_parent(self) -> Run | None:
        parents = self._find_parents()
        return parents[0] if parents else None

    def _find_parents(self) -> list[Run]:
        """The study's parent runs, oldest first (normally one; see :meth:`start` for races)."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{TAG_ROLE}` = 'study'",
            order_by=["attributes.start_time ASC"],
            max_results=50,
        )
        # The study name is compared here rather than in the filter so that no quoting of the
        # user's study name inside MLflow's filter grammar is needed.
        mine = [run for run in runs if run.data.tags.get(TAG_STUDY) == self.study_name]
        return sorted(mine, key=lambda r: (r.info.start_time, r.info.run_id))

    def start(self, study_params: Mapping[str, Any], tags: Mapping[str, str]) -> str:
        """Open (or continue) the study's parent run and log the study's settings on it.

        A parent run that already exists for this study (a resumed study) is set back to
        RUNNING and continued. Params already logged with the same value are skipped; MLflow
        refuses to change a logged param, so a changed value is recorded as the tag
        ``param_changed.<key>`` instead.

        Args:
            study_params: Study settings (n_trials, level, device, backends, ...).
            tags: Extra tags for the parent run (tool version, host, ...).

        Returns:
            The parent run id.
        """
        from mlflow.entities import Param, RunTag

        run = self._find_parent()
        all_tags = {TAG_STUDY: self.study_name, TAG_ROLE: "study", **tags}
        existing_params: dict[str, str] = {}
        if run is None:
            run = self.client.create_run(self.experiment_id, tags=all_tags, run_name=self.study_name)
            # Several `tune` processes starting on one study at once may each create a parent:
            # all agree on the oldest one (ties by run id) and the others delete their own.
            winner = self._find_parents()[0]
            if winner.info.run_id != run.info.run_id:
                self.client.delete_run(run.info.run_id)
                run = winner
                existing_params = dict(run.data.params)
        else:
            if run.info.status != "RUNNING":
                self.client.update_run(run.info.run_id, status="RUNNING")
            existing_params = dict(run.data.params)
        run_id: str = run.info.run_id
        self.parent_run_id = run_id

        params: list[Param] = []
        run_tags = [RunTag(_key(k), _value(v, _MAX_TAG_VALUE)) for k, v in all_tags.items()]
        for raw_key, raw_value in study_params.items():
            key, value = _key(raw_key), _value(raw_value, _MAX_PARAM_VALUE)
            if key not in existing_params:
                params.append(Param(key, value))
            elif existing_params[key] != value:
                run_tags.append(RunTag(_key(f"param_changed.{key}"), value[:_MAX_TAG_VALUE]))
        self._log_batch(run_id, params=params, tags=run_tags)

        # Seed the running best and the set of logged trials, so that a resume continues them.
        history = self.client.get_metric_history(run_id, BEST_METRIC)
        finite = [m for m in history if math.isfinite(m.value)]
        self._best_ms = min((m.value for m in finite), default=None)
        self._last_step = max((m.step for m in history), default=0)
        self._logged_trials = self._existing_trial_numbers(run_id)
        return run_id

    def _existing_trial_numbers(self, parent_id: str) -> set[int]:
        numbers: set[int] = set()
        page_token: str | None = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.`{TAG_PARENT}` = '{parent_id}'",
                max_results=10000,
                page_token=page_token,
            )
            for run in page:
                tag = run.data.tags.get(TAG_TRIAL)
                if tag is not None and tag.isdigit():
                    numbers.add(int(tag))
            page_token = page.token
            if not page_token:
                return numbers

    def _require_parent(self) -> str:
        if self.parent_run_id is None:
            raise RuntimeError("Tracker.start() must be called before logging")
        return self.parent_run_id

    def _log_batch(
        self,
        run_id: str,
        *,
        metrics: list[Metric] | None = None,
        params: list[Param] | None = None,
        tags: list[RunTag] | None = None,
    ) -> None:
        """``log_batch`` in as few calls as MLflow's per-call limits allow (usually one)."""
        metrics, params, tags = metrics or [], params or [], tags or []
        if not (metrics or params or tags):
            return
        if len(params) <= _MAX_PARAMS_TAGS_PER_BATCH and len(tags) <= _MAX_PARAMS_TAGS_PER_BATCH:
            self.client.log_batch(run_id, metrics=metrics, params=params, tags=tags)
            return
        self.client.log_batch(run_id, metrics=metrics)
        for chunk in _chunks(params, _MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(run_id, params=chunk)
        for chunk in _chunks(tags, _MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(run_id, tags=chunk)

    # -- trials -----------------------------------------------------------------------------

    def mark_retried(self, numbers: Iterable[int], retry_number: int) -> None:
        """Mark the child runs of trials whose process died as replaced by a retry.

        A ``tune`` killed after logging a trial but before Optuna recorded its end leaves a child
        run for a trial that is then retried under a new number: that child is tagged
        ``status=RETRIED`` and ``retried_as=<new number>`` and ended KILLED, so that the study's
        children count each candidate evaluation once.

        Args:
            numbers: The dead trials' numbers.
            retry_number: The retry's trial number.
        """
        parent = self._require_parent()
        for number in numbers:
            runs = self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.`{TAG_PARENT}` = '{parent}' and tags.`{TAG_TRIAL}` = '{int(number)}'",
                max_results=10,
            )
            for run in runs:
                self.client.set_tag(run.info.run_id, "status", "RETRIED")
                self.client.set_tag(run.info.run_id, "retried_as", str(retry_number))
                self.client.set_terminated(run.info.run_id, "KILLED")

    def log_trial(
        self,
        number: int,
        outcome: Outcome,
        params: Mapping[str, Any],
        *,
        baseline_s: float | None,
        cached: bool,
        state: str,
    ) -> None:
        """Log one finished trial as a child run of the study's run.

        Idempotent per trial number: a trial that already has a child run (a resumed study that
        re-reports it) is not logged again.

        Args:
            number: Optuna trial number.
            outcome: What evaluating the candidate produced.
            params: The trial's Optuna params.
            baseline_s: Eager (reference) objective in seconds, for ``speedup_vs_eager``.
            cached: Whether the outcome came from the result cache instead of a fresh build.
            state: The trial's Optuna state: ``COMPLETE``, ``FAIL`` or ``PRUNED``.

        Raises:
            ValueError: ``state`` is not one of the three.
            RuntimeError: :meth:`start` was not called.
        """
        from mlflow.entities import Metric, Param

        if state not in _RUN_STATUS:
            raise ValueError(f"state {state!r} is not one of {tuple(_RUN_STATUS)}")
        parent_id = self._require_parent()
        now = _now_ms()

        values: dict[str, float | None] = {
            "median_latency_ms": outcome.median_ms,
            "p90_latency_ms": outcome.p90_ms,
            "objective_ms": outcome.value_s * 1e3 if outcome.value_s is not None else None,
            "speedup_vs_eager": (baseline_s / outcome.value_s if baseline_s is not None and outcome.value_s else None),
            # 0.0 is the record's default: a candidate that failed before compiling has none.
            "compile_s": outcome.compile_s if outcome.ok or outcome.compile_s else None,
            # MetaSchedule's share of compile_s; None for backends that do not tune.
            "tuning_s": outcome.tuning_s,
            # The pruner's short measurement's first calls (Outcome.first_calls_s).
            "first_calls_s": outcome.first_calls_s,
            "max_abs_err": outcome.max_abs_err,
            "max_rel_err": outcome.max_rel_err,
            # The score of the study's accuracy rule (its spec is a parameter of the parent run).
            "accuracy_score": outcome.accuracy_score,
        }
        metrics = [Metric(k, float(v), now, 0) for k, v in values.items() if v is not None]

        candidate = outcome.candidate
        tag_values: dict[str, str | None] = {
            TAG_PARENT: parent_id,
            TAG_TRIAL: str(number),
            "backend": candidate.backend,
            "shape_mode": candidate.shape_mode,
            "precision": candidate.precision,
            "status": state,
            "failure_kind": outcome.failure_kind,
            "failure_reason": outcome.failure_reason[:MAX_REASON_CHARS] if outcome.failure_reason else None,
            "cached": "true" if cached else "false",
            "candidate_key": candidate.key(),
        }
        tags = {k: v for k, v in tag_values.items() if v is not None}
        param_list = [Param(_key(k), _value(v, _MAX_PARAM_VALUE)) for k, v in params.items()]

        with self._lock:
            if number not in self._logged_trials:
                # Tags go with create_run so that the run is findable by trial number (and
                # nested in the UI) from its first moment; params and metrics in one batch.
                run = self.client.create_run(
                    self.experiment_id, start_time=now, tags=tags, run_name=f"trial-{number:04d}"
                )
                self._log_batch(run.info.run_id, metrics=metrics, params=param_list)
                self.client.set_terminated(run.info.run_id, _RUN_STATUS[state])
                self._logged_trials.add(number)
            value_ms = values["objective_ms"]
            if state == "COMPLETE" and value_ms is not None and (self._best_ms is None or value_ms < self._best_ms):
                self._best_ms = value_ms
                self._last_step = max(self._last_step, number)
                self._log_batch(parent_id, metrics=[Metric(BEST_METRIC, value_ms, now, number)])

    @property
    def best_objective_ms(self) -> float | None:
        """The best objective logged so far (across resumes), in ms."""
        return self._best_ms

    # -- the end ----------------------------------------------------------------------------

    def finish(
        self,
        *,
        report: Mapping[str, Any] | None,
        best_config: Mapping[str, Any] | None,
        study: optuna.Study | None,
        best_dir: Path | None,
        status: str = "FINISHED",
    ) -> None:
        """Store the study's results on the parent run and close it.

        Artifacts: ``report.json``, ``best_config.json``, ``plots/optimization_history.html``
        and ``plots/param_importances.html`` (or a ``.txt`` saying why a plot could not be
        drawn), and the exported best model under ``best/``. Metrics: ``best_objective_ms``
        and ``speedup`` when the report has them (at its top level or one level down).

        Args:
            report: The study report (JSON-ready; other values are written with ``str``).
            best_config: The best candidate's config (``Candidate.to_dict()``).
            study: The Optuna study, for the plots.
            best_dir: Directory with the exported best model.
            status: MLflow end status of the parent run.

        Raises:
            ValueError: ``status`` is not an MLflow end status.
            RuntimeError: :meth:`start` was not called.
        """
        from mlflow.entities import Metric

        if status not in _END_STATUSES:
            raise ValueError(f"status {status!r} is not one of {_END_STATUSES}")
        run_id = self._require_parent()
        try:
            if report is not None:
                self.client.log_dict(run_id, _jsonable(report), "report.json")
            if best_config is not None:
                self.client.log_dict(run_id, _jsonable(best_config), "best_config.json")
            if study is not None:
                self._log_plots(run_id, study)
            if best_dir is not None and Path(best_dir).is_dir():
                self.client.log_artifacts(run_id, str(best_dir), "best")
            if report is not None:
                metrics = []
                now = _now_ms()
                best_ms = _find_number(report, BEST_METRIC)
                # The running best is already the latest point of its history; log the report's
                # figure only when it differs (e.g. re-measured), at the last step so it is latest.
                if best_ms is not None and best_ms != self._best_ms:
                    metrics.append(Metric(BEST_METRIC, best_ms, now, self._last_step))
                speedup = _find_number(report, "speedup")
                if speedup is not None:
                    metrics.append(Metric("speedup", speedup, now, 0))
                self._log_batch(run_id, metrics=metrics)
        finally:
            # Close the run even when an artifact upload failed, so it does not hang in RUNNING.
            self.client.set_terminated(run_id, status)

    def _log_plots(self, run_id: str, study: optuna.Study) -> None:
        """Log Optuna's history and importance plots, or a text artifact saying why not."""
        import optuna

        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        try:
            import plotly  # noqa: F401  (optuna.visualization imports it lazily, at plot time)
            from optuna.visualization import plot_optimization_history, plot_param_importances
        except ImportError as exc:
            why = f"plotly is not installed ({exc}); install plotly to get the plots"
            self.client.log_text(run_id, why + "\n", "plots/optimization_history.txt")
            self.client.log_text(run_id, why + "\n", "plots/param_importances.txt")
            return

        history_why = "no completed trials" if not complete else None
        self._log_plot(run_id, "optimization_history", history_why, lambda: plot_optimization_history(study))

        varying = [name for name in _common_params(complete) if len({str(t.params[name]) for t in complete}) > 1]
        if len(complete) < 2:
            importance_why: str | None = f"{len(complete)} completed trial(s); importances need at least 2"
        elif not varying:
            importance_why = "no parameter took more than one value over the completed trials"
        else:
            importance_why = None
        self._log_plot(run_id, "param_importances", importance_why, lambda: plot_param_importances(study))

    def _log_plot(self, run_id: str, name: str, why_not: str | None, make: Callable[[], Any]) -> None:
        if why_not is None:
            try:
                with warnings.catch_warnings():
                    # Optuna warns (e.g. "importances will be equal") with few trials: the plot
                    # is still drawn and the warning would only clutter the CLI.
                    warnings.simplefilter("ignore")
                    figure = make()
                # Self-contained HTML (plotly.js inlined, ~3.5 MB): the default links a CDN, and
                # the plot would be blank where the user browses MLflow offline.
                self.client.log_figure(run_id, figure, f"plots/{name}.html",
                                       save_kwargs={"include_plotlyjs": True})
                return
            except Exception as exc:  # noqa: BLE001  (a plot must never lose the study's results)
                why_not = f"{type(exc).__name__}: {exc}"
        self.client.log_text(run_id, f"{name} plot not drawn: {why_not}\n", f"plots/{name}.txt")

    def close_failed(self, status: str = "KILLED", reason: str | None = None) -> None:
        """End the parent run after an interruption (KILLED) or a crash (FAILED).

        Never raises: it runs in exception handlers, where it must not hide the original error.

        Args:
            status: ``KILLED`` (Ctrl-C, timeout) or ``FAILED``.
            reason: One line saying why, stored as the tag "tuner.end_reason".
        """
        if self.parent_run_id is None:
            return
        try:
            if reason:
                self.client.set_tag(self.parent_run_id, "tuner.end_reason", reason[:_MAX_TAG_VALUE])
            self.client.set_terminated(self.parent_run_id, status if status in _END_STATUSES else "FAILED")
        except Exception:  # noqa: BLE001
            _log.debug("could not close MLflow run %s", self.parent_run_id, exc_info=True)


def _common_params(trials: list[optuna.trial.FrozenTrial]) -> list[str]:
    """Param names present in every given trial (what Optuna's importances are computed over)."""
    if not trials:
        return []
    names = set(trials[0].params)
    for trial in trials[1:]:
        names &= set(trial.params)
    return sorted(names)


def _jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    """Copy ``data`` with every non-JSON value (Path, numpy scalar, ...) turned into its ``str``."""
    result: dict[str, Any] = json.loads(json.dumps(data, default=str))
    return result


def _find_number(report: Mapping[str, Any], key: str) -> float | None:
    """Find a finite number under ``key`` at the report's top level or in one of its sub-dicts."""
    places = [report, *(v for v in report.values() if isinstance(v, Mapping))]
    for place in places:
        value = place.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None
