"""The trial loop: ask a candidate, admit it, obtain its outcome, record it, tell Optuna.

Each of Optuna's trial threads (one per worker, ``n_jobs``) runs :meth:`_Loop.objective`:

1. decode the trial's params into a candidate (:func:`search_space.build_candidate`);
2. admit it under the study's claim lock (:mod:`tuner.search.claims`): a surplus trial runs
   nothing, a candidate already measured takes its cached outcome, one being measured by another
   trial waits for it, any other is evaluated by a worker (:mod:`tuner.runner`);
3. store the outcome in the trial (before MLflow hears of it: a process killed in between leaves a
   trial whose retry finds the outcome in the cache), log it, show it;
4. end the trial: COMPLETE with its objective, or PRUNED (slow, or failed: see :func:`_verdict`);
5. decide whether the study is done, or queue a candidate nobody has measured after a repeat.

Ctrl-C stops the loop cleanly: the trial that was running records ``interrupted``.
"""

from __future__ import annotations

import dataclasses
import math
import random
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import optuna
from optuna.trial import FrozenTrial, TrialState

from backends import backend_class
from search_space import SpaceContext, all_params, build_candidate, space_size
from tuner.core import stopping
from tuner.core.budget import Budget
from tuner.core.defaults import FINAL_ROUNDS
from tuner.core.progress import NullProgress, Progress
from tuner.core.records import INTERRUPTED, Candidate, Outcome
from tuner.core.settings import TuneSettings
from tuner.core.workload import Workload
from tuner.runner.evaluate import evaluate
from tuner.runner.pool import Evaluator, InProcessEvaluator, start_evaluator
from tuner.search.cache import NOT_CACHED, OutcomeCache
from tuner.search.claims import Admission, admit_trial, counted_count, counted_trials, is_failure, wait_for_holder
from tuner.search.failing import avoid_failing, failing_in, failing_values, params_key
from tuner.search.keys import (
    AVOIDED_ATTR,
    BASELINE_ATTR,
    CACHED_ATTR,
    CANDIDATE_ATTR,
    ENQUEUED_ATTR,
    FAILURE_KIND_ATTR,
    FAILURE_REASON_ATTR,
    KEY_ATTR,
    OUTCOME_ATTR,
    SPACE_SIZE_ATTR,
    WAITED_FOR_ATTR,
    WORKER_ATTR,
)
from tuner.search.storage import fail_dead_trials, identity
from tuner.search.study_lock import claim_lock
from tuner.search.trial_attrs import report_deferred, set_user_attrs


class CandidateFailed(Exception):
    """Raised from the objective so that Optuna records a FAIL trial (the reason is in user attrs)."""


class Surplus(Exception):
    """Raised from the objective of a trial that found the study's budget taken (it is not counted)."""


class OutOfTime(Exception):
    """Raised from the objective of a trial that would start after the search's share of ``--timeout``."""


class Avoided(Exception):
    """Raised from the objective of a trial that the sampler put where every candidate fails (it runs nothing)."""


class TrialLog(Protocol):
    """Where finished trials are logged (MLflow's :class:`tuner.tracking.Tracker`)."""

    def mark_retried(self, numbers: Iterable[int], retry_number: int) -> None:
        """Mark the logged runs of trials whose process died as replaced by ``retry_number``."""

    def log_trial(self, number: int, outcome: Outcome, params: Mapping[str, Any], *, baseline_s: float | None,
                  cached: bool, state: str) -> None:
        """Log one finished trial."""


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


@dataclasses.dataclass
class _Tally:
    """What the trial threads share (under :attr:`_Loop.lock`).

    Attributes:
        failures: Counted trials whose candidate failed.
        best_s: The best complete objective so far (inf: none).
        exhausted: Every candidate of the space has been seen.
        surplus: A trial found the budget taken: the study is done.
        error: The first unexpected error of an objective, raised after the loop.
    """

    failures: int
    best_s: float
    exhausted: bool = False
    surplus: bool = False
    error: Exception | None = None


def export_estimate(candidate: Candidate, compile_s: float, device: str) -> float:
    """Seconds a candidate's export and its artifact's load in a fresh process are expected to add.

    Args:
        candidate: The candidate (its backend's :meth:`~backends.base.Backend.export_estimate_s`).
        compile_s: The candidate's compile seconds in its trial.
        device: ``cpu`` or ``gpu``.
    """
    try:
        cls = backend_class(candidate.backend)
    except KeyError:  # a backend of an earlier run that this one no longer has
        return compile_s
    return cls.export_estimate_s(candidate, compile_s, device)


#: Seconds the check of the artifact in a fresh process takes at least besides the model's own
#: calls and the artifact's load (starting Python, importing torch and the backend's framework):
#: 2-3 s on the CPU box, 8-11 s for a worker's start on a shared H100 (the reports'
#: ``search.workers.start_s`` in experiments/results/2026-12-06-h100-real-models.md). Where this
#: run's workers started slower, their start is the estimate (:func:`fresh_process_s`).
VERIFY_BASE_S = 10.0


def fresh_process_s(stats: Mapping[str, object]) -> float:
    """Seconds a fresh process is expected to take to start: the workers' mean start, at least :data:`VERIFY_BASE_S`.

    A worker's start (Python, torch, the workload) is measured on this host under its present
    load, which a constant cannot know: on 2 loaded cores of an H100 host the fresh-process check
    of a GPT-2 TorchScript artifact took 25 s, 2.5 times the constant
    (experiments/results/2026-12-06-h100-real-models-run2.json).

    Args:
        stats: The evaluator's counters (``starts``, ``start_s``; none for an in-process one).
    """
    starts, start_s = stats.get("starts"), stats.get("start_s")
    if isinstance(starts, int) and starts > 0 and isinstance(start_s, (int, float)):
        return max(VERIFY_BASE_S, float(start_s) / starts)
    return VERIFY_BASE_S


@dataclasses.dataclass
class _Costs:
    """The best complete candidates so far, by objective, with what they cost to build (for the reserve).

    Attributes:
        best: ``(objective_s, compile_s, export_s)`` of the fastest distinct complete candidates,
            ``export_s`` from :func:`export_estimate`.
        keep: How many to keep (the finalists).
        device: Where the candidates run.
        fresh_s: Seconds a fresh Python process takes to start here, now (:func:`fresh_process_s`).
    """

    best: list[tuple[float, float, float]]
    keep: int
    device: str = "cpu"
    fresh_s: float = VERIFY_BASE_S

    def add(self, outcome: Outcome) -> None:
        if outcome.value_s is not None and not outcome.pruned:
            export_s = export_estimate(outcome.candidate, outcome.compile_s, self.device)
            self.best = sorted({*self.best, (outcome.value_s, outcome.compile_s, export_s)})[: self.keep]


#: Margin on the estimate of what comes after the search. In six o2 studies on an H100
#: (experiments/results/2026-12-07-h100-levels-run8.md, -run9.md) the finalists, export and check took
#: 0.58-0.96 of the estimate without a margin: 1.1 covers the worst of them by 13 %, while a larger
#: one idles the end of the run and cuts trials off (at 1.3 those runs ended at 72-89 % of
#: --timeout, and GPT-2's graphed Inductor trial was cut off in both).
RESERVE_FACTOR = 1.1


def final_reserve(costs: _Costs, settings: TuneSettings, left_s: float = math.inf) -> float:
    """Seconds the phases after the search are expected to take for the candidates seen so far.

    The finalists are rebuilt (their compile times) and measured side by side with eager in
    alternating rounds, the winner is exported and its artifact loaded in a fresh process (the
    longest :func:`export_estimate` of the finalists, since any may win) and checked there
    (a fresh process's start, ``costs.fresh_s``, and one more measurement).

    An export that could not end within ``left_s`` (:meth:`~tuner.core.budget.Budget.export_room`)
    even if the search stopped now is skipped at the end (:mod:`tuner.export.emit`): the reserve is not kept
    for it, which would only cut the search short (on an H100 at ``--timeout 180``, BERT-base's
    search stopped at 74 s for an AOTInductor export, and a TorchScript artifact that took 10 s
    was written).
    """
    if not costs.best:
        return RESERVE_FACTOR * costs.fresh_s
    config = settings.measure_config()
    calls = config.warmup + config.repeats
    rebuild = sum(compile_s for _, compile_s, _ in costs.best)
    measure = FINAL_ROUNDS * calls * sum(value_s for value_s, _, _ in costs.best) * 2  # eager beside each
    verify = costs.fresh_s + calls * costs.best[0][0]
    exports = [export_s for _, _, export_s in costs.best]
    export = max((e for e in exports if RESERVE_FACTOR * (rebuild + measure + e + verify) <= left_s),
                 default=min(exports))
    return RESERVE_FACTOR * (rebuild + measure + export + verify)


@dataclasses.dataclass
class _TrialNote:
    """What one trial's objective learnt, for its own end-of-trial decision (no second storage read).

    Attributes:
        last_slot: It took the budget's last free slot.
        distinct: Distinct candidates the study has seen, this one included.
    """

    last_slot: bool = False
    distinct: int = 0


def _best_complete_s(trials: list[FrozenTrial]) -> float:
    """The lowest objective among complete trials of a snapshot (inf when none)."""
    return min((t.value for t in trials if t.state == TrialState.COMPLETE and t.value is not None),
               default=float("inf"))


def _status(outcome: Outcome) -> str:
    """The trial's state as the report and MLflow name it."""
    return "FAIL" if outcome.failure_kind else "PRUNED" if outcome.pruned else "COMPLETE"


def _verdict(outcome: Outcome) -> float:
    """The objective of a trial, or the exception that ends it.

    A failure ends its trial PRUNED (the outcome in its attributes still says how it failed): TPE
    ranks pruned trials below every complete one and steers away from them, as Optuna's maintainers
    advise for configurations known to fail, while it ignores FAIL trials and proposes the same
    region again (``tests/tuner_tests/api/test_tune.py`` shows it on the ``test_picky`` backend, whose
    dynamic mode never builds).
    A failure that says nothing of the candidate (:data:`NOT_CACHED`: killed from outside) stays
    FAIL, unseen by TPE.

    Raises:
        CandidateFailed: For a failure that says nothing of the candidate.
        optuna.TrialPruned: For a failure or a candidate slow on its first measurement.
    """
    if outcome.failure_kind in NOT_CACHED:
        raise CandidateFailed(outcome.failure_reason)
    if outcome.failure_kind:
        raise optuna.TrialPruned(f"failed ({outcome.failure_kind}): {outcome.failure_reason}")
    if outcome.pruned:
        raise optuna.TrialPruned(f"slow on the first measurement: {outcome.value_s}")
    assert outcome.value_s is not None
    return outcome.value_s


def _record(trial: optuna.Trial, outcome: Outcome, cached: bool) -> None:
    """Store the outcome in the trial (the cache, the report and the resume path read it back)."""
    attrs: dict[str, Any] = {OUTCOME_ATTR: outcome.to_dict(), CACHED_ATTR: cached}
    # A retried trial starts with a copy of its dead predecessor's attributes: overwrite those.
    # Otherwise a success writes none.
    if outcome.failure_kind or FAILURE_KIND_ATTR in trial.user_attrs:
        attrs.update({FAILURE_KIND_ATTR: outcome.failure_kind, FAILURE_REASON_ATTR: outcome.failure_reason})
    set_user_attrs(trial, attrs)  # one transaction: each write is a round trip to a database server


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


class _Loop:
    """The objective Optuna's trial threads run, over what they share.

    Args:
        study: The study.
        ctx: Its search-space context.
        settings: Trials, pruning, seed.
        evaluator: Evaluates a candidate (worker processes, or this one).
        tracker: Where trials are logged (None: nowhere).
        progress: Who to tell.
        baseline_s: Eager's objective, for each trial's speedup.
        budget: The run's clock: the search stops early enough for what comes after it.
    """

    def __init__(self, study: optuna.Study, ctx: SpaceContext, settings: TuneSettings, evaluator: Evaluator,
                 tracker: TrialLog | None, progress: Progress, baseline_s: float | None, budget: Budget) -> None:
        self.study, self.ctx, self.settings, self.evaluator = study, ctx, settings, evaluator
        self.tracker, self.progress, self.baseline_s, self.budget = tracker, progress, baseline_s, budget
        self.cache = OutcomeCache(study)
        # Counted when the study was set up (counting walks the whole space).
        self.total = int(study.user_attrs.get(SPACE_SIZE_ATTR) or space_size(ctx))
        self.me = identity()
        self.claim = claim_lock(settings.storage_url, study.study_name)
        self.lock = threading.Lock()
        self.rng = random.Random(settings.seed)
        snapshot = study.get_trials(deepcopy=False)
        self.tally = _Tally(failures=sum(1 for t in counted_trials(snapshot) if is_failure(t)),
                            best_s=_best_complete_s(snapshot))
        self.failing = failing_values(snapshot)
        self.costs = _Costs([], settings.finalists, ctx.device, fresh_process_s(evaluator.stats()))
        for t in snapshot:
            if t.state == TrialState.COMPLETE and isinstance(t.user_attrs.get(OUTCOME_ATTR), dict):
                self.costs.add(Outcome.from_dict(t.user_attrs[OUTCOME_ATTR]))
        budget.final_reserve_s = final_reserve(self.costs, settings, budget.export_room())

    def objective(self, trial: optuna.Trial) -> float:
        """Run one trial (see the module's steps).

        Raises:
            CandidateFailed, Surplus, OutOfTime, Avoided, optuna.TrialPruned: How the trial ends, for Optuna.
        """
        try:
            return self._run_then_decide(trial)
        except (CandidateFailed, Surplus, OutOfTime, Avoided, optuna.TrialPruned):
            raise
        except Exception as e:
            # Optuna raises an objective's error in the study process, unless the study was
            # stopping then: the future holding it is never read, and the trial would end FAIL,
            # uncounted and unexplained. Raised after the loop instead, so that it is never lost.
            with self.lock:
                self.tally.error = self.tally.error or e
            raise

    def _run_then_decide(self, trial: optuna.Trial) -> float:
        # The end-of-trial decision runs here rather than as an Optuna callback: for a callback
        # Optuna reads the finished trial back from the storage, a round trip per trial. It runs
        # for the trials a callback would see: those that return or end in an exception Optuna
        # catches (pruned, a failed candidate, a surplus trial).
        note = _TrialNote()
        try:
            value = self._run(trial, note)
        except (CandidateFailed, Surplus, OutOfTime, Avoided, optuna.TrialPruned):
            self._decide(trial, note)
            raise
        self._decide(trial, note)
        return value

    def _run(self, trial: optuna.Trial, note: _TrialNote) -> float:
        if stopping.requested():
            raise KeyboardInterrupt
        if self.budget.search_over():
            # The rest of --timeout is for the finalists, the export and its check.
            raise OutOfTime
        candidate = build_candidate(trial, self.ctx)
        self._avoid_failing(trial)
        key = candidate.key()
        set_user_attrs(trial, {WORKER_ATTR: self.me, KEY_ATTR: key, CANDIDATE_ATTR: candidate.to_dict()})
        admission, trials = admit_trial(self.study, trial, key, self.settings.trials, self.cache, self.claim)
        if admission.verdict == "surplus":
            # Other processes (or threads) took the last slots since this trial was asked for.
            self.tally.surplus = True
            raise Surplus
        note.last_slot = admission.last_slot
        note.distinct = self.cache.distinct(trials) + (admission.verdict != "cached")
        with self.lock:
            self.tally.best_s = min(self.tally.best_s, _best_complete_s(trials))
        outcome, cached = self._obtain(trial, candidate, admission)
        self.cache.put(key, outcome)
        _record(trial, outcome, cached)
        self._tell(trial, outcome, cached, trials)
        return _verdict(outcome)

    def _avoid_failing(self, trial: optuna.Trial) -> None:
        """Run nothing for a candidate with a value on which every candidate so far failed; queue an unseen one.

        The sampler learns from failures only slowly (a few trials of a small budget), and each
        candidate that cannot build for this model costs a trial: once a value has failed on
        :data:`tuner.search.failing.MIN_TRIALS` distinct candidates and never worked, its next
        proposals are skipped while unseen candidates without it remain.

        Raises:
            Avoided: When the trial is skipped (a replacement is queued).
        """
        hit = failing_in(trial.params, self.failing)
        if not hit:
            return
        with self.lock:
            trials = self.study.get_trials(deepcopy=False)
            unseen = [p for p in unseen_params(trials, self.ctx) if not failing_in(p, self.failing)]
            if not unseen:
                return
            self.study.enqueue_trial(self.rng.choice(unseen), user_attrs={ENQUEUED_ATTR: "instead of a failing value"})
        trial.set_user_attr(AVOIDED_ATTR, f"every candidate with {', '.join(hit)} failed so far")
        raise Avoided

    def _obtain(self, trial: optuna.Trial, candidate: Candidate, admission: Admission) -> tuple[Outcome, bool]:
        """The candidate's outcome: cached, measured by the trial it waited for, or evaluated now."""
        outcome = admission.outcome
        if admission.verdict == "wait":
            trial.set_user_attr(WAITED_FOR_ATTR, admission.holder)
            outcome = wait_for_holder(self.study, trial, candidate.key(), self.cache, self.claim, stopping.requested)
            if outcome is None and stopping.requested():
                raise KeyboardInterrupt
        if outcome is None:
            return self._evaluate(trial, candidate), False
        if outcome.value_s is not None:
            # The pruner compares candidates at step 0: give it the cached figure too (stored
            # with the outcome).
            report_deferred(trial, outcome.value_s, 0)
        return outcome, True

    def _evaluate(self, trial: optuna.Trial, candidate: Candidate) -> Outcome:
        self.progress.candidate(trial.number, candidate.describe())

        def prune(value_s: float) -> bool:
            # Stored with the outcome (_record), in its transaction: one round trip fewer.
            report_deferred(trial, value_s, 0)
            return trial.should_prune()

        try:
            with stopping.interruptible():
                return self.evaluator.evaluate(candidate, prune if self.settings.prune else None,
                                               self.budget.search_deadline)
        except KeyboardInterrupt:
            _record(trial, Outcome(candidate=candidate, failure_kind=INTERRUPTED,
                                   failure_reason="interrupted by the user (Ctrl-C)"), cached=False)
            raise

    def _tell(self, trial: optuna.Trial, outcome: Outcome, cached: bool, trials: list[FrozenTrial]) -> None:
        """Count the outcome, log it to the tracker and show it."""
        status = _status(outcome)
        with self.lock:
            if outcome.failure_kind:
                # As the report counts them: a trial the run stopped is no failure (it showed
                # "failed 1" beside the report's "0 failed").
                self.tally.failures += outcome.failure_kind != INTERRUPTED
                # The storage as it is now, and this trial, which is finished there only after it returns.
                telling = () if outcome.failure_kind in NOT_CACHED else ((dict(trial.params), True),)
                self.failing = failing_values(self.study.get_trials(deepcopy=False), telling)
            if status == "COMPLETE" and outcome.value_s is not None:
                self.tally.best_s = min(self.tally.best_s, outcome.value_s)
                self.costs.add(outcome)
                self.costs.fresh_s = fresh_process_s(self.evaluator.stats())
                self.budget.final_reserve_s = final_reserve(self.costs, self.settings, self.budget.export_room())
            best = self.tally.best_s * 1e3 if self.tally.best_s < float("inf") else None
            if self.tracker is not None:
                me_then = next((t for t in trials if t.number == trial.number), None)
                retried = me_then.system_attrs.get("retry_history") if me_then is not None else None
                if retried:
                    self.tracker.mark_retried(retried, trial.number)
                self.tracker.log_trial(trial.number, outcome, dict(trial.params), baseline_s=self.baseline_s,
                                       cached=cached, state=status)
            self.progress.trial(trial.number, outcome, status, cached, best, self.tally.failures)

    def _decide(self, trial: optuna.Trial, note: _TrialNote) -> None:
        """Stop the loop when the budget or the space is used up; after a repeat, queue an unseen candidate.

        Args:
            trial: The trial whose objective just ended (its user attributes are its own view,
                which holds every attribute it wrote).
            note: What its objective learnt.
        """
        if stopping.requested() or self.tally.surplus or note.last_slot or self.budget.search_over():
            # The last slot is taken: the trials still running elsewhere fill the budget.
            self.study.stop()
        elif note.distinct >= self.total:
            self.tally.exhausted = True
            self.study.stop()
        elif trial.user_attrs.get(CACHED_ATTR):
            # TPE proposes the same point often in a small discrete space: after a repeat, try a
            # candidate nobody has measured yet, so that a budget of trials covers more ground.
            with self.lock:
                trials = self.study.get_trials(deepcopy=False)  # one read: each costs a storage round trip
                # Not where every candidate so far failed (a failing shape mode, say), while others remain.
                unseen = avoid_failing(unseen_params(trials, self.ctx), trials)
                if unseen:
                    self.study.enqueue_trial(self.rng.choice(unseen),
                                             user_attrs={ENQUEUED_ATTR: "after a repeated candidate"})

    def stopped_by(self) -> str:
        """Why the loop ended (after it did): ``interrupted``, ``exhausted``, ``timeout`` or ``trials``.

        Raises:
            Exception: The first unexpected error of an objective.
        """
        if self.tally.error is not None:
            raise self.tally.error
        if stopping.requested():
            return "interrupted"
        if self.tally.exhausted or self.cache.distinct() >= self.total:
            return "exhausted"
        if counted_count(self.study) < self.settings.trials:
            return "timeout"
        return "trials"


def measure_baseline(study: optuna.Study, workload: Workload, settings: TuneSettings,
                     progress: Progress) -> float | None:
    """Eager's objective in this process, the figure every trial's speedup is set against.

    Measured twice, keeping the faster: the first run of a process is slow (allocator, thread
    pools, caches) and would inflate every speedup measured against it. Eager is the user's own
    model: it runs here, in the study process.

    Returns:
        Seconds over the test data, or None when eager itself fails.
    """
    progress.phase(f"measuring the eager baseline on {workload.device} ({len(workload.samples)} test samples)")
    runs = [evaluate(Candidate("eager"), workload, settings.rule, settings.measure_config())
            for _ in range(2)]
    baseline_s = min((r.value_s for r in runs if r.value_s is not None), default=None)
    if baseline_s is not None and BASELINE_ATTR not in study.user_attrs:
        study.set_user_attr(BASELINE_ATTR, baseline_s)
    return baseline_s


def run_trials(study: optuna.Study, ctx: SpaceContext, workload: Workload, settings: TuneSettings,
               tracker: TrialLog | None, progress: Progress | None = None, budget: Budget | None = None) -> LoopResult:
    """Run the study's trials until it counts ``settings.trials`` (or time runs out).

    Candidates are evaluated in worker processes (``settings.workers`` of them, driven by as many
    trial threads); other processes may work on the same study through its storage at the same
    time (see :mod:`tuner.search.claims`).

    Args:
        study: The study (new or resumed).
        ctx: Its search-space context.
        workload: Model, test data and reference.
        settings: Trials, timeout, measurement, pruning, workers.
        tracker: Where trials are logged (None: no tracking).
        progress: Who to tell about progress.
        budget: The run's clock (None: ``settings.timeout_s`` from now); the loop stops early
            enough for the phases after it, and cuts the trials still running then.

    Returns:
        Why the loop stopped, how long it ran, the eager baseline and the workers' counters.
    """
    progress = progress or NullProgress()
    budget = budget or Budget(settings.timeout_s)
    dead = fail_dead_trials(study)
    if dead:
        progress.message(f"trials {', '.join(map(str, dead))} were left running by a process that died: "
                         "failed and queued again")
    baseline_s = measure_baseline(study, workload, settings, progress)
    done = counted_count(study)
    progress.start(settings.trials, min(done, settings.trials), f"tuning {study.study_name}")
    evaluator = start_evaluator(workload, ctx.backends, settings, progress)
    loop = _Loop(study, ctx, settings, evaluator, tracker, progress, baseline_s, budget)
    t0 = time.perf_counter()
    try:
        if done < settings.trials and loop.cache.distinct() < loop.total:
            _optimize(study, loop, settings, workload.device, evaluator)
        stopped_by = loop.stopped_by()
    except KeyboardInterrupt:
        stopped_by = "interrupted"
    finally:
        evaluator.close()
        progress.stop()
    return LoopResult(stopped_by=stopped_by, wall_s=time.perf_counter() - t0, baseline_s=baseline_s,
                      workers=evaluator.stats())


def _optimize(study: optuna.Study, loop: _Loop, settings: TuneSettings, device: str, evaluator: Evaluator) -> None:
    # Deferred: a stop signal raised inside Optuna's own bookkeeping breaks it (tuner.core.stopping);
    # the objective checks for the request, and a candidate's evaluation stays interruptible.
    with stopping.deferred():
        study.optimize(
            loop.objective,
            # No n_trials: the budget is counted across every process on the study (tuner.search.claims);
            # the objective's end-of-trial decision stops the loop when it is reached. No timeout either:
            # the run's clock (tuner.core.budget) stops it early enough for the phases after it.
            n_jobs=settings.worker_count(device),
            catch=(CandidateFailed, Surplus, OutOfTime, Avoided),
            # A full collection after each trial frees what a candidate evaluated here leaves in
            # cycles (compiled graphs, device memory). With worker processes nothing of a candidate
            # lives here, and the collection (a few tenths of a second of CPU with torch loaded) only
            # slows the other workers and the storage server sharing the cores.
            gc_after_trial=isinstance(evaluator, InProcessEvaluator),
        )


__all__ = ["Avoided", "CandidateFailed", "LoopResult", "OutOfTime", "Surplus", "TrialLog", "export_estimate",
           "final_reserve", "fresh_process_s", "measure_baseline", "run_trials", "unseen_params"]
