"""The Optuna study: open or resume it, run the trials, and hand the best on to the final phase.

One study holds one workload (its fingerprint is kept in the study) and one search space (the
:class:`~search_space.SpaceContext` is kept too: Optuna refuses categoricals whose choices change).
A trial decodes its parameters into a candidate, looks the candidate up in the result cache, and
otherwise evaluates it; a failed candidate's trial records its reason and ends PRUNED (so that
TPE moves away from it; see ``run_trials``), slow candidates are pruned after a short
first measurement, and Ctrl-C stops the loop cleanly.
"""

from __future__ import annotations

import dataclasses
import os
import random
import sys
import threading
import time
import warnings
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

import search_space
from backends import available_backends, backend_class, backend_names
from search_space import SpaceContext, all_params, build_candidate, space_size
from search_space.shape_mode import modes_for
from tuner import stopping
from tuner.cache import KEY_ATTR, NOT_CACHED, OUTCOME_ATTR, OutcomeCache, outcome_to_dict
from tuner.claims import admit_trial, counted_count, counted_trials, is_failure, wait_for_holder
from tuner.correctness import TOLERANCES
from tuner.errors import UserError, error_line
from tuner.evaluate import evaluate
from tuner.failing import avoid_failing, params_key
from tuner.pool import Evaluator, InProcessEvaluator, WorkerPool, backend_modules
from tuner.progress import NullProgress, Progress
from tuner.records import Candidate, Outcome
from tuner.settings import TuneSettings
from tuner.storage import JOURNAL_PREFIX, WORKER_ATTR, fail_dead_trials, identity, open_storage
from tuner.study_lock import claim_lock
from tuner.tracking import Tracker
from tuner.transfer import dump_workload
from tuner.trial_attrs import report_deferred, set_user_attrs
from tuner.worker import WorkerSpec, default_memory_limit_bytes, visible_gpus
from tuner.workload import Workload

FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)

#: The pruner judges a candidate on a short first measurement (step 0); it keeps the fastest 75 %
#: of candidates seen so far, i.e. stops only the clearly slow ones, once 5 trials have finished.
PRUNE_PERCENTILE = 75.0
PRUNE_STARTUP_TRIALS = 5


class CandidateFailed(Exception):
    """Raised from the objective so that Optuna records a FAIL trial (the reason is in user attrs)."""


class Surplus(Exception):
    """Raised from the objective of a trial that found the study's budget taken (it is not counted)."""


@dataclasses.dataclass
class LoopResult:
    """What the trial loop leaves for the final phase.

    Attributes:
        stopped_by: ``trials``, ``timeout``, ``exhausted`` (every candidate seen) or ``interrupted``.
        wall_s: Seconds the loop ran in this process.
        baseline_s: Eager's time over the test data, measured at the start of this run.
        workers: The worker processes' counters (starts, replacements, ...).
    """

    stopped_by: str
    wall_s: float
    baseline_s: float | None
    workers: dict[str, Any] = dataclasses.field(default_factory=dict)


def resolve_backends(requested: tuple[str, ...] | None, workload: Workload, device: str,
                     static_only: bool) -> tuple[str, ...]:
    """The backends a new study searches.

    Args:
        requested: ``--backends``, or None for every available one.
        workload: For its framework.
        device: ``cpu`` or ``gpu``.
        static_only: Drop backends without a static-shape mode.

    Returns:
        The names, in the registry's order.

    Raises:
        UserError: For an unknown or unavailable backend, or an empty selection.
    """
    known = backend_names(include_test_only=True)
    available = available_backends(workload.framework, device)
    if requested is None:
        chosen = available
    else:
        for name in requested:
            if name not in known:
                raise UserError(f"unknown backend {name!r}", f"choose from {', '.join(backend_names())}")
            cls = backend_class(name)
            if workload.framework not in cls.frameworks:
                raise UserError(f"backend {name!r} does not take {workload.framework} models",
                                f"choose from {', '.join(available)}")
            if not cls.is_available(device):
                raise UserError(f"backend {name!r} is not available on {device} here (its framework is not "
                                "installed or does not support the device)",
                                "install it (pip install -e '.[all]') or leave it out of --backends")
        chosen = [n for n in known if n in requested]
    ctx_probe = SpaceContext(backends=tuple(chosen), device=device, level="o1", static_only=static_only)
    chosen = [n for n in chosen if modes_for(n, ctx_probe)]
    if not chosen:
        raise UserError("no backend is left to search", "pass --backends with at least one backend that fits "
                        "(static-shape search needs a backend with a static mode, e.g. inductor)")
    return tuple(chosen)


def open_study(settings: TuneSettings, workload: Workload, device: str) -> tuple[optuna.Study, SpaceContext, bool]:
    """Create the study, or continue the one of the same name.

    Args:
        settings: The run's settings (storage, name, seed, level, backends).
        workload: The workload (its fingerprint must match a continued study's).
        device: ``cpu`` or ``gpu``.

    Returns:
        ``(study, context, resumed)``.

    Raises:
        UserError: When the storage cannot be opened, or the existing study belongs to another
            workload or another search space.
    """
    n_workers = settings.worker_count(device)
    if n_workers > 1 and settings.storage_url.startswith(JOURNAL_PREFIX):
        raise UserError(f"--workers {n_workers} cannot share a journal storage in one process: Optuna's "
                        "JournalStorage assumes one trial thread per process (optuna issue 6084; seen here as "
                        "trials told twice)",
                        "use the default SQLite storage or PostgreSQL for --workers, or run several tune processes "
                        "with --workers 1 on the journal file")
    storage = _open_storage(settings.storage_url)
    with warnings.catch_warnings():
        # multivariate/group TPE is marked experimental; it models conditional spaces (options
        # that exist only for one backend) far better than independent TPE.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=settings.seed, multivariate=True, group=True, constant_liar=True)
    pruner = optuna.pruners.PercentilePruner(PRUNE_PERCENTILE, n_startup_trials=PRUNE_STARTUP_TRIALS,
                                             n_warmup_steps=0)
    study = optuna.create_study(storage=storage, study_name=settings.study_name, sampler=sampler, pruner=pruner,
                                direction="minimize", load_if_exists=True)
    if "space" not in study.user_attrs:
        # A new study, or one another process is setting up right now (several `tune` processes
        # started together on one storage): one of them writes the space, the others wait for it.
        _claim_setup(study)
    if "space" in study.user_attrs:
        ctx = SpaceContext.from_dict(study.user_attrs["space"])
        if study.user_attrs.get("fingerprint") != workload.fingerprint:
            raise UserError(f"study {settings.study_name!r} holds another workload "
                            f"({study.user_attrs.get('workload_source')})",
                            "pass a new --study-name for this model")
        wanted = dict(device=device, level=settings.level, static_only=settings.static_only,
                      expensive=settings.expensive)
        have = dict(device=ctx.device, level=ctx.level, static_only=ctx.static_only, expensive=ctx.expensive)
        if settings.backends is not None:
            wanted["backends"], have["backends"] = resolve_backends(
                settings.backends, workload, device, settings.static_only), ctx.backends
        if wanted != have:
            diff = ", ".join(f"{k} {have[k]} (asked {wanted[k]})" for k in wanted if wanted[k] != have[k])
            raise UserError(f"study {settings.study_name!r} was created with {diff}",
                            "rerun with the study's settings, or pass a new --study-name")
        return study, ctx, True
    backends = resolve_backends(settings.backends, workload, device, settings.static_only)
    ctx = SpaceContext(backends=backends, device=device, level=settings.level, framework=workload.framework,
                       static_only=settings.static_only, expensive=settings.expensive,
                       convolutions=workload.has_convolutions(), cuda_graphs=True)
    study.set_user_attr("fingerprint", workload.fingerprint)
    study.set_user_attr("workload_source", workload.source)
    study.set_user_attr("workload_name", workload.name)
    study.set_user_attr("space_size", space_size(ctx))
    for params in default_params(ctx):
        study.enqueue_trial(params, user_attrs={"enqueued": "backend default"})
    # Last: "space" marks the study as set up for the processes waiting in _claim_setup.
    study.set_user_attr("space", ctx.to_dict())
    return study, ctx, False


#: Seconds a process waits for another one that is setting up the same new study.
SETUP_WAIT_S = 60.0


def _claim_setup(study: optuna.Study) -> None:
    """Let one of several processes that open the same new study set it up; the others wait.

    Each writes a claim (a study system attribute) if none is there, and reads it back after a
    pause: the process whose claim stands sets the study up, the others wait until its ``space``
    user attribute (written last) appears.

    Raises:
        UserError: When the study is never set up (its creator died half-way).
    """
    import os
    import socket
    import uuid

    me = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    key = "tuner:setup_claim"
    if study._storage.get_study_system_attrs(study._study_id).get(key) is None:
        study._storage.set_study_system_attr(study._study_id, key, me)
    time.sleep(0.2)
    holder = study._storage.get_study_system_attrs(study._study_id).get(key)
    if holder == me:
        return
    deadline = time.monotonic() + SETUP_WAIT_S
    while "space" not in study._storage.get_study_user_attrs(study._study_id):
        if time.monotonic() > deadline:
            raise UserError(f"study {study.study_name!r} was never set up by the process that created it ({holder})",
                            "run tune again (a crashed first process leaves the study empty)")
        time.sleep(0.2)


def default_params(ctx: SpaceContext) -> list[dict[str, Any]]:
    """Each backend's default candidate (every choice at its first value, which is its default).

    A new study measures these first: the peers a user already has (eager, torch.compile and
    TorchScript with their defaults) are then in every study, so the winner is never slower than
    them, and the sampler starts from known-good points instead of, say, a max-autotune compile.

    Args:
        ctx: The study's context.

    Returns:
        Trial params, one dict per backend.
    """
    out = []
    for backend in ctx.backends:
        params: dict[str, Any] = {"backend": backend}
        for dim in search_space.dimensions():
            if dim.name != "backend":
                params.update({c.key: c.values[0] for c in dim.choices(backend, ctx) if len(c.values) > 1})
        out.append(params)
    return out


def _open_storage(url: str) -> optuna.storages.BaseStorage:
    """Open the storage, with one-line errors for unusable URLs and missing drivers."""
    try:
        return open_storage(url)
    except ModuleNotFoundError as e:
        raise UserError(f"the storage {redact(url)} needs the Python module {e.name!r}, which is not installed",
                        "pip install 'compile-tuner[postgres]' (or the driver your URL names)") from None
    except Exception as e:  # noqa: BLE001 - any failure here means an unusable URL
        raise UserError(f"cannot open the study storage {redact(url)} "
                        f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''})",
                        "pass a reachable SQLAlchemy URL (or journal:///path) to --storage "
                        "(default: sqlite under --output-dir)") from None


def redact(url: str) -> str:
    """A storage URL without its password (for messages and reports)."""
    try:
        from sqlalchemy.engine import make_url

        return str(make_url(url).render_as_string(hide_password=True))
    except Exception:  # noqa: BLE001 - not a SQLAlchemy URL: show it as is
        return url


def _best_complete_s(trials: list[FrozenTrial]) -> float:
    """The lowest objective among complete trials of a snapshot (inf when none)."""
    return min((t.value for t in trials if t.state == TrialState.COMPLETE and t.value is not None),
               default=float("inf"))


def run_trials(
    study: optuna.Study,
    ctx: SpaceContext,
    workload: Workload,
    settings: TuneSettings,
    tracker: Tracker | None,
    progress: Progress | None = None,
) -> LoopResult:
    """Run the study's trials until it counts ``settings.trials`` (or time runs out).

    Candidates are evaluated in worker processes (``settings.workers`` of them, driven by as many
    trial threads); other processes may work on the same study through its storage at the same
    time (see :mod:`tuner.claims`).

    Args:
        study: The study (new or resumed).
        ctx: Its search-space context.
        workload: Model, test data and reference.
        settings: Trials, timeout, measurement, pruning, workers.
        tracker: MLflow tracker (None: no tracking).
        progress: Who to tell about progress.

    Returns:
        Why the loop stopped, how long it ran, the eager baseline and the workers' counters.
    """
    progress = progress or NullProgress()
    tolerance = TOLERANCES[settings.level]
    config = settings.measure_config()
    cache = OutcomeCache(study)
    total_candidates = space_size(ctx)
    me = identity()
    dead = fail_dead_trials(study)
    if dead:
        progress.message(f"trials {', '.join(map(str, dead))} were left running by a process that died: "
                         "failed and queued again")
    progress.phase(f"measuring the eager baseline on {workload.device} ({len(workload.samples)} test samples)")
    # Twice, keeping the faster: the first run of a process is slow (allocator, thread pools, caches)
    # and would inflate every speedup measured against it. Eager is the user's own model: it runs
    # here, in the study process.
    runs = [evaluate(Candidate("eager"), workload, tolerance, config) for _ in range(2)]
    baseline_s = min((r.value_s for r in runs if r.value_s is not None), default=None)
    if baseline_s is not None and "baseline_s" not in study.user_attrs:
        study.set_user_attr("baseline_s", baseline_s)
    snapshot = study.get_trials(deepcopy=False)
    failures = sum(1 for t in counted_trials(snapshot) if is_failure(t))
    state: dict[str, Any] = {"failures": failures, "exhausted": False, "surplus": False,
                             "best_s": _best_complete_s(snapshot)}
    lock = threading.Lock()
    claim = claim_lock(settings.storage_url, study.study_name)
    # What a trial's objective learnt, for after_trial in the same thread: it then decides
    # without reading the study again (each read costs a storage round trip).
    local = threading.local()

    def objective(trial: optuna.Trial) -> float:
        try:
            return run_then_decide(trial)
        except (CandidateFailed, Surplus, optuna.TrialPruned):
            raise
        except Exception as e:
            # Optuna raises an objective's error in the study process, unless the study was
            # stopping then: the future holding it is never read, and the trial would end FAIL,
            # uncounted and unexplained (2026-11-30, mlp on an H200: 198 of 200). Raised after
            # the loop instead (below), so that it is never lost.
            with lock:
                state.setdefault("error", e)
            raise

    def run_then_decide(trial: optuna.Trial) -> float:
        # after_trial runs here, at the end of the objective, rather than as an Optuna callback:
        # for a callback Optuna reads the finished trial back from the storage, a round trip per
        # trial. It runs for the trials a callback would see: those that return or end in an
        # exception Optuna catches (pruned, a failed candidate, a surplus trial).
        try:
            value = run_one(trial)
        except (CandidateFailed, Surplus, optuna.TrialPruned):
            after_trial(study, trial)
            raise
        after_trial(study, trial)
        return value

    def run_one(trial: optuna.Trial) -> float:
        local.last_slot, local.distinct = False, 0
        if stopping.requested():
            raise KeyboardInterrupt
        candidate = build_candidate(trial, ctx)
        key = candidate.key()
        set_user_attrs(trial, {WORKER_ATTR: me, KEY_ATTR: key, "candidate": candidate.to_dict()})
        admission, trials = admit_trial(study, trial, key, settings.trials, cache, claim)
        if admission.verdict == "surplus":
            # Other processes (or threads) took the last slots since this trial was asked for.
            state["surplus"] = True
            raise Surplus
        local.last_slot = admission.last_slot
        local.distinct = cache.distinct(trials) + (admission.verdict != "cached")
        with lock:
            state["best_s"] = min(state["best_s"], _best_complete_s(trials))
        outcome = admission.outcome
        if admission.verdict == "wait":
            trial.set_user_attr("waited_for", admission.holder)
            outcome = wait_for_holder(study, trial, key, cache, claim, stopping.requested)
            if outcome is None and stopping.requested():
                raise KeyboardInterrupt
        cached = outcome is not None
        if outcome is None:
            progress.candidate(trial.number, candidate.describe())

            def prune(value_s: float) -> bool:
                # Stored with the outcome (_record), in its transaction: one round trip fewer.
                report_deferred(trial, value_s, 0)
                return trial.should_prune()

            try:
                outcome = evaluator.evaluate(candidate, prune if settings.prune else None)
            except KeyboardInterrupt:
                _record(trial, Outcome(candidate=candidate, failure_kind="interrupted",
                                       failure_reason="interrupted by the user (Ctrl-C)"), cached=False)
                raise
        elif outcome.value_s is not None:
            # The pruner compares candidates at step 0: give it the cached figure too (stored
            # with the outcome, below).
            report_deferred(trial, outcome.value_s, 0)
        cache.put(key, outcome)
        # The outcome is in the storage before MLflow hears of it: a process killed in between
        # leaves a trial whose retry finds the outcome in the cache instead of measuring again.
        _record(trial, outcome, cached)
        status = "FAIL" if outcome.failure_kind else "PRUNED" if outcome.pruned else "COMPLETE"
        with lock:
            if outcome.failure_kind:
                state["failures"] += 1
            if status == "COMPLETE" and outcome.value_s is not None:
                state["best_s"] = min(state["best_s"], outcome.value_s)
            best = state["best_s"] * 1e3 if state["best_s"] < float("inf") else None
            if tracker is not None:
                me_then = next((t for t in trials if t.number == trial.number), None)
                retried = me_then.system_attrs.get("retry_history") if me_then is not None else None
                if retried:
                    tracker.mark_retried(retried, trial.number)
                tracker.log_trial(trial.number, outcome, dict(trial.params), baseline_s=baseline_s, cached=cached,
                                  state=status)
            progress.trial(trial.number, outcome, status, cached, best, state["failures"])
        # A failure ends its trial PRUNED (the outcome in its attributes still says how it failed):
        # TPE ranks pruned trials below every complete one and steers away from them, as Optuna's
        # maintainers advise for configurations known to fail, while it ignores FAIL trials and
        # proposes the same region again (2026-11-30, H200: 115 of tf_asr's 177 trials went to
        # tvm's dynamic mode, which fails at import on every candidate). A failure that says
        # nothing of the candidate (NOT_CACHED: killed from outside) stays FAIL, unseen by TPE.
        if outcome.failure_kind in NOT_CACHED:
            raise CandidateFailed(outcome.failure_reason)
        if outcome.failure_kind:
            raise optuna.TrialPruned(f"failed ({outcome.failure_kind}): {outcome.failure_reason}")
        if outcome.pruned:
            raise optuna.TrialPruned(f"slow on the first measurement: {outcome.value_s}")
        assert outcome.value_s is not None
        return outcome.value_s

    rng = random.Random(settings.seed)

    def after_trial(study: optuna.Study, trial: optuna.Trial) -> None:
        """Stop the loop when the budget or the space is used up; after a repeat, queue an unseen candidate.

        Args:
            study: The study.
            trial: The trial whose objective just ended (its user attributes are its own view,
                which holds every attribute it wrote).
        """
        if stopping.requested() or state["surplus"] or getattr(local, "last_slot", False):
            # The last slot is taken: the trials still running elsewhere fill the budget.
            study.stop()
        elif getattr(local, "distinct", 0) >= total_candidates:
            state["exhausted"] = True
            study.stop()
        elif trial.user_attrs.get("cached"):
            # TPE proposes the same point often in a small discrete space: after a repeat, try a
            # candidate nobody has measured yet, so that a budget of trials covers more ground.
            with lock:
                trials = study.get_trials(deepcopy=False)  # one read: each costs a storage round trip
                # Not where every candidate so far failed (a failing shape mode, say), while others remain.
                unseen = avoid_failing(unseen_params(trials, ctx), trials)
                if unseen:
                    study.enqueue_trial(rng.choice(unseen), user_attrs={"enqueued": "after a repeated candidate"})

    done = counted_count(study)
    progress.start(settings.trials, min(done, settings.trials), f"tuning {study.study_name}")
    stopped_by = "trials"
    evaluator = _make_evaluator(workload, ctx, settings, progress)
    t0 = time.perf_counter()
    try:
        if done < settings.trials and cache.distinct() < total_candidates:
            study.optimize(
                objective,
                # No n_trials: the budget is counted across every process on the study (tuner.claims);
                # after_trial (run by the objective) stops the loop when it is reached.
                timeout=settings.timeout_s,
                n_jobs=settings.worker_count(workload.device),
                catch=(CandidateFailed, Surplus),
                # A full collection after each trial frees what a candidate evaluated here leaves in
                # cycles (compiled graphs, device memory). With worker processes nothing of a
                # candidate lives here, and the collection (~0.1-0.4 s of CPU with torch loaded)
                # only slowed the other workers and the storage server sharing the cores.
                gc_after_trial=isinstance(evaluator, InProcessEvaluator),
            )
        if "error" in state:
            raise state["error"]
        if stopping.requested():
            stopped_by = "interrupted"
        elif state["exhausted"] or cache.distinct() >= total_candidates:
            stopped_by = "exhausted"
        elif counted_count(study) < settings.trials:
            stopped_by = "timeout"
    except KeyboardInterrupt:
        stopped_by = "interrupted"
    finally:
        evaluator.close()
        progress.stop()
    return LoopResult(stopped_by=stopped_by, wall_s=time.perf_counter() - t0, baseline_s=baseline_s,
                      workers=evaluator.stats())


def _make_evaluator(workload: Workload, ctx: SpaceContext, settings: TuneSettings, progress: Progress) -> Evaluator:
    """The worker pool, started with its first worker; this process only if that cannot be."""
    in_process = InProcessEvaluator(workload, settings.level, settings.measure_config(), settings.cache_dir,
                                    settings.trial_timeout_s)
    if not settings.isolate:
        return in_process
    workers_dir = settings.out / "workers" / f"{settings.study_name}-{os.getpid()}"
    spec = WorkerSpec(workload_path=workers_dir / "workload.pt", modules=backend_modules(ctx.backends),
                      sys_path=tuple(sys.path), level=settings.level, measure_config=settings.measure_config(),
                      cache_dir=settings.cache_dir, trial_timeout_s=settings.trial_timeout_s)
    n_workers = settings.worker_count(workload.device)
    memory = (int(settings.memory_limit_gb * 2**30) if settings.memory_limit_gb
              else default_memory_limit_bytes(n_workers))
    progress.phase(f"starting {n_workers} worker process(es) (memory limit "
                   f"{memory / 2**30:.1f} GiB each)")
    try:
        dump_workload(workload, spec.workload_path)
        gpus = visible_gpus() if workload.device == "gpu" else []
        pool = WorkerPool(spec, n_workers, workload.device, gpus,
                          memory, workers_dir)
        pool.workers[0].start()
    except Exception as e:  # noqa: BLE001 - an unpicklable model: say so and measure here instead
        progress.message(f"warning: candidates run in this process, without isolation from crashes and hangs: "
                         f"the model cannot be handed to a worker process ({error_line(e)})")
        return in_process
    return pool


def unseen_params(trials: list[FrozenTrial], ctx: SpaceContext) -> list[dict[str, Any]]:
    """Params of the candidates no trial of the study has evaluated or is about to.

    Args:
        trials: The study's trials.
        ctx: Its search-space context.

    Returns:
        One params dict per unseen candidate.
    """
    seen = {params_key(t.params) for t in trials}
    seen |= {params_key(t.system_attrs.get("fixed_params", {})) for t in trials if t.state == TrialState.WAITING}
    return [p for p in all_params(ctx) if params_key(p) not in seen]


def _record(trial: optuna.Trial, outcome: Outcome, cached: bool) -> None:
    """Store the outcome in the trial (the cache, the report and the resume path read it back)."""
    attrs: dict[str, Any] = {OUTCOME_ATTR: outcome_to_dict(outcome), "cached": cached}
    # A retried trial starts with a copy of its dead predecessor's attributes: overwrite those.
    # Otherwise a success writes none.
    if outcome.failure_kind or "failure_kind" in trial.user_attrs:
        attrs.update(failure_kind=outcome.failure_kind, failure_reason=outcome.failure_reason)
    set_user_attrs(trial, attrs)  # one transaction: each write is a round trip to a database server


#: Study attribute: the number of the trial whose candidate ``tune`` last emitted (the winner of
#: its finalists, :mod:`tuner.finalists`), which need not be the trial with the best objective.
EMITTED_ATTR = "emitted_trial"


def best_candidate(study: optuna.Study) -> tuple[FrozenTrial, Candidate] | None:
    """The candidate ``tune`` emitted for the study, else its best complete trial's, rebuilt from its params.

    The params are decoded with ``FixedTrial``, the code path tuning used, so the config is exactly
    what ran.

    Args:
        study: A study created by this tool.

    Returns:
        ``(trial, candidate)``, or None when no trial completed.
    """
    emitted = study.user_attrs.get(EMITTED_ATTR)
    trial = None
    if emitted is not None:
        trial = next((t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                      if t.number == emitted), None)
    if trial is None:
        try:
            trial = study.best_trial
        except ValueError:
            return None
    ctx = SpaceContext.from_dict(study.user_attrs["space"])
    return trial, build_candidate(optuna.trial.FixedTrial(trial.params), ctx)


def load_study(study_name: str, storage: str) -> optuna.Study:
    """Load an existing study created by this tool.

    Raises:
        UserError: When the storage cannot be opened or holds no such study.
    """
    try:
        rdb = open_storage(storage)
        names = optuna.study.get_all_study_names(rdb)
    except Exception as e:  # noqa: BLE001
        raise UserError(f"cannot open the study storage {redact(storage)} ({type(e).__name__})",
                        "pass the --storage the study was created with") from None
    if study_name not in names:
        raise UserError(f"no study named {study_name!r} in {redact(storage)}",
                        f"pick one of: {', '.join(names) or '(none yet: run tune first)'}")
    study = optuna.load_study(study_name=study_name, storage=rdb)
    if "space" not in study.user_attrs:
        raise UserError(f"study {study_name!r} was not created by tune", "pass the name of a tune study")
    return study


def summary(study: optuna.Study) -> dict[str, Any]:
    """Counts of the study's trials by state and of failures by reason, for the report."""
    every = study.get_trials(deepcopy=False)
    trials = counted_trials(every)
    by_kind: dict[str, int] = {}
    failures = []
    for t in trials:
        if is_failure(t):
            kind = str(t.user_attrs.get("failure_kind", "unknown"))
            by_kind[kind] = by_kind.get(kind, 0) + 1
            if not t.user_attrs.get("cached"):
                failures.append({"trial": t.number, "candidate": t.user_attrs.get("candidate"), "kind": kind,
                                 "reason": t.user_attrs.get("failure_reason", "")})
    keys = {t.user_attrs.get(KEY_ATTR) for t in trials if t.state in FINISHED} - {None}
    return {
        "trials": len([t for t in trials if t.state in FINISHED]),
        "complete": len([t for t in trials if t.state == TrialState.COMPLETE]),
        "failed": len([t for t in trials if is_failure(t)]),
        "pruned": len([t for t in trials if t.state == TrialState.PRUNED and not is_failure(t)]),
        "distinct_candidates": len(keys),
        "space_size": study.user_attrs.get("space_size"),
        "failures_by_reason": by_kind,
        "failures": failures,
        # Not counted: trials of processes that died (queued again), interrupted ones, and those
        # that found the budget taken by other workers.
        "not_counted": len([t for t in every if t.state in FINISHED]) - len(trials),
    }


__all__ = ["EMITTED_ATTR", "CandidateFailed", "LoopResult", "best_candidate", "load_study", "open_study", "run_trials",
           "summary"]
