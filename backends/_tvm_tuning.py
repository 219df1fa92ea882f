"""MetaSchedule for ``tvm``: one persistent tuning database per (model, target), reused by every trial.

A candidate asks for a budget (measured schedules per task) on its ``top_k`` costliest fused
kernels. :func:`tune_modules` tunes only what the database has not seen at that budget yet, so a
budget already spent, by an earlier trial or an earlier study, costs nothing the second time; a
ledger (``spent.json`` beside the records) remembers the largest budget spent per task. A task
counts as tuned only when the database holds valid records for it: ``tune_tasks`` returns
normally even when every build failed, so the records, not the return, decide.

Building candidate schedules is where MetaSchedule's default ``LocalBuilder`` loses its time: it
starts a fresh process pool for every batch, and each new worker spends seconds importing TVM
and its tensor intrinsics (about 20 s on the H100 machine, against a default builder timeout of
30 s). :class:`WarmBuilder` keeps one pool per process, warmed once, with an explicit timeout
and as many workers as there are cores.

This module defines no backend; importing it registers nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tuner.core import stopping
from tuner.core.devices import build_threads
from tuner.core.files import file_lock, write_json
from tuner.runtime import timelimit

#: Values of the ``tvm/metaschedule`` dimension: ``"off"`` (DLight only) or
#: ``"<trials per task>@top<k>"``.
OFF = "off"
#: A tuning record's run time at or above this is MetaSchedule's mark of a failed run.
FAILED_RUN_S = 1e9
#: Seconds one schedule may take to build before the builder gives up on it.
BUILDER_TIMEOUT_S = 60.0
#: Seconds one schedule may take to run before the runner gives up on it.
RUNNER_TIMEOUT_S = 30.0
#: Shortest measurement of one schedule, in ms. MetaSchedule's default (100 ms) makes a budget of
#: 256 schedules cost at least 26 s of measuring per kernel, whatever the kernel's own few
#: microseconds; 20 ms still repeats a 10 us kernel about 2000 times.
RUNNER_MIN_REPEAT_MS = 20
#: Schedules measured per MetaSchedule round.
TRIALS_PER_ITER = 16
#: The evolutionary search's population at budgets up to :data:`SMALL_BUDGET` schedules per
#: kernel. TVM's default (512) is sized for thousands, and each round samples, mutates and scores
#: the whole population. On two CPU cores (tiny ViT's two costliest kernels,
#: ``experiments/ms_population.py``) 128 halved the tuning time at budgets 16 and 64 and found
#: schedules as fast, within the seed-to-seed spread:
#: ``experiments/results/2026-12-07-cpu-ms-population.md``.
SMALL_BUDGET_POPULATION = 128
SMALL_BUDGET = 64

_log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TuningRequest:
    """How much MetaSchedule tuning a candidate asks for.

    Attributes:
        budget: Schedules measured per task (0: none, DLight only).
        top_k: How many of the costliest tasks get that budget.
    """

    budget: int = 0
    top_k: int = 0

    @classmethod
    def parse(cls, value: str) -> TuningRequest:
        """Read a ``tvm/metaschedule`` value (``"off"`` or ``"64@top2"``).

        Args:
            value: The option's value.

        Returns:
            The request.

        Raises:
            ValueError: For a malformed value.
        """
        if value == OFF:
            return cls()
        try:
            budget, top = value.split("@top")
            request = cls(int(budget), int(top))
        except ValueError:
            raise ValueError(f"tvm/metaschedule {value!r} is neither 'off' nor '<budget>@top<k>' "
                             "(e.g. '64@top2')") from None
        if request.budget <= 0 or request.top_k <= 0:
            raise ValueError(f"tvm/metaschedule {value!r}: budget and k must be positive")
        return request

    def __str__(self) -> str:
        return OFF if self.budget == 0 else f"{self.budget}@top{self.top_k}"


@dataclasses.dataclass(frozen=True)
class TuningReport:
    """What one :func:`tune_modules` call did.

    Attributes:
        tuning_s: Seconds spent tuning (0 when everything was in the database).
        selected: Names of the tasks chosen (top-k by estimated cost).
        tuned: Tasks tuned in this call.
        reused: Tasks whose budget was already spent (no tuning).
        valid_records: Valid records in the database for the selected tasks, after tuning.
        builds: Schedules built in this call.
        build_s: Seconds the builder spent on them.
        failed: Tasks that got no valid record (with the first builder or runner error).
    """

    tuning_s: float = 0.0
    selected: tuple[str, ...] = ()
    tuned: tuple[str, ...] = ()
    reused: tuple[str, ...] = ()
    valid_records: int = 0
    builds: int = 0
    build_s: float = 0.0
    failed: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dataclasses.asdict(self)


def task_cost(task: Any) -> float | None:
    """A task's estimated cost: FLOPs of its kernel times how often the model calls it.

    Args:
        task: A MetaSchedule ``ExtractedTask``.

    Returns:
        The estimate, or None for a kernel with symbolic shapes (MetaSchedule tunes static
        shapes only).
    """
    from tvm import tirx
    from tvm.s_tir.analysis import estimate_tir_flops

    func = task.dispatched[0]["main"]
    for param in func.params:
        shape = getattr(getattr(param, "ty", None), "shape", None)
        if shape is None or any(not isinstance(d, tirx.IntImm) for d in shape):
            return None
    try:
        return float(estimate_tir_flops(task.dispatched[0])) * int(task.weight)
    except Exception:  # noqa: BLE001 - an estimate that fails leaves the task out, nothing more
        return None


def select_tasks(tasks: list[tuple[Any, int]], top_k: int) -> list[Any]:
    """The ``top_k`` static-shape tasks of highest :func:`task_cost` times how often their module runs.

    Args:
        tasks: Extracted tasks, each with the number of test samples its module runs on (a
            static-shape candidate has one module per distinct shape; the same kernel in several
            modules counts once, with the summed cost).
        top_k: How many.

    Returns:
        The chosen tasks, costliest first.
    """
    costs: dict[str, float] = {}
    chosen: dict[str, Any] = {}
    for task, runs in tasks:
        cost = task_cost(task)
        if cost is None:
            continue
        key = task_key(task)
        costs[key] = costs.get(key, 0.0) + cost * runs
        chosen.setdefault(key, task)
    ranked = sorted(costs, key=lambda k: -costs[k])
    return [chosen[k] for k in ranked[:top_k]]


def task_key(task: Any) -> str:
    """A stable key of a task's kernel (its structural hash), for the ledger."""
    import tvm_ffi

    return f"{tvm_ffi.structural_hash(task.dispatched[0]) & (1 << 64) - 1:016x}"


def _intrinsics_importer() -> Callable[[], None]:
    """A function that imports ``tvm.s_tir.tensor_intrin`` fast (see inside).

    Returned from inside this factory so that the builder pool pickles it by value (cloudpickle
    pickles module-level functions by reference): its workers then never import this package, nor
    torch with it.
    """

    def _import_tensor_intrinsics() -> None:
        """Import ``tvm.s_tir.tensor_intrin`` (MetaSchedule needs it) in a second, not in half a minute.

        Its modules parse about 500 TVMScript functions, and each parse calls ``inspect.stack()``,
        which resolves every frame's module by scanning ``sys.modules`` and reads its source: about
        20 s per process on the 2-core dev machine, 1.7 s with the walk below. The parser only
        reads each frame's locals and its current source line, so during the import ``inspect.stack``
        is replaced by a walk over the frames that reads the line from ``linecache`` directly.
        """
        import sys

        if "tvm.s_tir.tensor_intrin" in sys.modules:
            return
        import inspect
        import linecache

        def fast_stack(context: int = 1) -> list[inspect.FrameInfo]:
            frame = sys._getframe(1)
            frames = []
            while frame is not None:
                name, lineno = frame.f_code.co_filename, frame.f_lineno
                line = linecache.getline(name, lineno) if context > 0 else ""
                frames.append(inspect.FrameInfo(frame, name, lineno, frame.f_code.co_name, [line] if line else None,
                                                0 if line else None))
                frame = frame.f_back  # type: ignore[assignment]
            return frames

        original = inspect.stack
        inspect.stack = fast_stack
        try:
            __import__("tvm.s_tir.tensor_intrin")
        finally:
            inspect.stack = original

    return _import_tensor_intrinsics


_pool: Any = None
_pool_key: tuple[int, float] | None = None


def _builder_pool(workers: int, timeout_s: float) -> Any:
    """The process-wide warm pool of builder processes (created on first use)."""
    global _pool, _pool_key
    from tvm.support.popen_pool import PopenPoolExecutor

    if _pool is None or _pool_key != (workers, timeout_s):
        if _pool is not None:
            _pool.shutdown()
        # maximum_process_uses bounds the memory a long-lived worker accumulates (the leak that
        # makes LocalBuilder restart its pool on every batch).
        # The initializer imports the tensor intrinsics once per process. The pool pickles it and
        # the build function by value, so its workers never import this package (nor torch).
        _pool = PopenPoolExecutor(max_workers=workers, timeout=timeout_s, initializer=_intrinsics_importer(),
                                  maximum_process_uses=256)
        _pool_key = (workers, timeout_s)
    return _pool


def make_warm_builder(workers: int | None = None, timeout_s: float = BUILDER_TIMEOUT_S) -> Any:
    """A MetaSchedule builder that reuses one warm process pool for every batch.

    Args:
        workers: Builder processes (default: the usable cores).
        timeout_s: Seconds one build may take.

    Returns:
        A ``PyBuilder`` instance with ``stats`` (``builds``, ``seconds``, ``first_error``).
    """
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder
    from tvm.s_tir.meta_schedule.builder.local_builder import _serialize_params, _worker_func
    from tvm.support.popen_pool import StatusKind

    n = workers or build_threads()

    @derived_object
    class WarmBuilder(PyBuilder):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.stats: dict[str, Any] = {"builds": 0, "seconds": 0.0, "first_error": None}

        def build(self, build_inputs: list[Any]) -> list[Any]:
            if _should_stop():
                # Past the trial's time limit, or the user asked to stop: fail the batch at once so
                # that MetaSchedule winds down (it runs this callback from C++, where an exception
                # would abort).
                return [BuilderResult(None, "the trial's time limit passed or a stop was requested")
                        for _ in build_inputs]
            t0 = time.perf_counter()
            pool = _builder_pool(n, timeout_s)
            args = [(b.mod, b.target, _serialize_params(b.params)) for b in build_inputs]
            results = []
            # MetaSchedule's own build and export (default_build, default_export) in the warm pool.
            for res in pool.map_with_error_catching(lambda a: _worker_func(None, None, *a), args):
                if res.status == StatusKind.COMPLETE:
                    results.append(BuilderResult(res.value, None))
                    continue
                msg = (f"build timed out after {timeout_s:g} s" if res.status == StatusKind.TIMEOUT
                       else f"build failed: {str(res.value).strip().splitlines()[-1:]}")
                self.stats["first_error"] = self.stats["first_error"] or msg
                results.append(BuilderResult(None, msg))
            self.stats["builds"] += len(build_inputs)
            self.stats["seconds"] += time.perf_counter() - t0
            return results

    return WarmBuilder()


def _should_stop() -> bool:
    """Whether tuning must wind down: the trial's time limit passed, or the user asked to stop.

    A stop request (Ctrl-C, SIGTERM) is seen here too: its KeyboardInterrupt cannot cross TVM's
    C++ loop, and without this a 64@top8 run went on for minutes after SIGINT (seen on the H100).
    """
    return timelimit.expired() or stopping.requested()


def make_time_limit_callback() -> Any:
    """A MetaSchedule measure callback that ends every task once the trial's time limit passed.

    Without it a timed-out tuning run would go on searching (with every build refused) until its
    budget was used up.

    Returns:
        A ``PyMeasureCallback`` instance.
    """
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback

    @derived_object
    class StopOnTimeLimit(PyMeasureCallback):  # type: ignore[misc]
        def apply(self, task_scheduler: Any, task_id: int, measure_candidates: Any, builder_results: Any,
                  runner_results: Any) -> None:
            if not _should_stop():
                return
            for i, record in enumerate(task_scheduler.tasks_):
                if not record.is_terminated:
                    task_scheduler.terminate_task(i)

    return StopOnTimeLimit()


class TuningStore:
    """One tuning database (MetaSchedule JSON records) plus the ledger of budgets spent.

    Args:
        directory: Where the records live (``<output>/tvm-tuning/<model>-<target>/``).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.ledger_path = directory / "spent.json"

    @functools.cached_property
    def database(self) -> Any:
        """The MetaSchedule ``JSONDatabase`` over this directory's records (read once per store)."""
        from tvm.s_tir.meta_schedule.database import JSONDatabase

        return JSONDatabase(path_workload=str(self.directory / "database_workload.json"),
                            path_tuning_record=str(self.directory / "database_tuning_record.json"))

    def spent(self) -> dict[str, int]:
        """``{task key: largest budget spent}``."""
        if not self.ledger_path.exists():
            return {}
        data: dict[str, int] = json.loads(self.ledger_path.read_text())
        return data

    def record_spent(self, keys: list[str], budget: int) -> None:
        """Remember that ``budget`` was spent on the tasks ``keys`` (atomic rewrite)."""
        spent = self.spent()
        for key in keys:
            spent[key] = max(budget, spent.get(key, 0))
        write_json(self.ledger_path, spent)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store's lock (one tuner at a time per database, across processes)."""
        with file_lock(self.directory / ".lock"):
            yield


def run_times_s(database: Any, task: Any) -> list[float]:
    """The best run time of each of the database's records for ``task`` that ran successfully."""
    mod = task.dispatched[0]
    if not database.has_workload(mod):
        return []
    records = database.get_top_k(database.commit_workload(mod), 1 << 20)
    best = (min(float(s) for s in r.run_secs) for r in records if r.run_secs)
    return [s for s in best if s < FAILED_RUN_S]


def valid_records(database: Any, task: Any) -> int:
    """How many of the database's records for ``task`` ran successfully."""
    return len(run_times_s(database, task))


def tune_modules(mods: list[tuple[Any, int]], target: Any, store: TuningStore, request: TuningRequest,
                 builder_timeout_s: float = BUILDER_TIMEOUT_S, workers: int | None = None,
                 population: int | None = None, seed: int | None = None) -> TuningReport:
    """Tune the ``top_k`` costliest kernels of ``mods`` to ``budget`` schedules each, reusing the store.

    The k kernels are chosen over all modules together (:func:`select_tasks`), so a static-shape
    candidate with a module per distinct shape tunes k kernels, not k per shape.

    Args:
        mods: Prepared (legalized and fused) Relax modules, each with the number of test samples
            it runs on.
        target: The target.
        store: The tuning database of this (model, target).
        request: Budget and k.
        builder_timeout_s: Seconds one schedule may take to build.
        workers: Builder processes (default: the usable cores).
        population: The evolutionary search's population (default: :data:`SMALL_BUDGET_POPULATION`
            up to :data:`SMALL_BUDGET` schedules per task, TVM's own above).
        seed: The search's random seed (default: none, a new search each time).

    Returns:
        What was tuned, reused and recorded.

    Raises:
        RuntimeError: When a tuned task got no valid record (every build or run failed).
    """
    if request.budget == 0:
        return TuningReport()
    from tvm.s_tir import meta_schedule as ms

    extracted = [(task, runs) for mod, runs in mods for task in ms.relax_integration.extract_tasks(mod, target)]
    tasks = select_tasks(extracted, request.top_k)
    if not tasks:
        return TuningReport()
    names = tuple(t.task_name for t in tasks)
    with store.locked():
        spent = store.spent()
        todo = [t for t in tasks if spent.get(task_key(t), 0) < request.budget]
        reused = tuple(t.task_name for t in tasks if t not in todo)
        database = store.database
        if not todo:
            return TuningReport(selected=names, reused=reused,
                                valid_records=sum(valid_records(database, t) for t in tasks))
        # MetaSchedule's console logger follows its global logger's level; its files under the
        # store's logs/ keep the full detail.
        ms_logger = logging.getLogger("tvm.s_tir.meta_schedule")
        ms_logger.setLevel(logging.WARNING)
        # MetaSchedule configures this logger anew for every tuning run (a console handler and a
        # file under the work dir) and lists the handlers it already has by name, which fails for
        # a handler its own config did not define (seen in a second run in one process under
        # pytest). Start each run from none: it adds its own two back.
        for handler in list(ms_logger.handlers):
            ms_logger.removeHandler(handler)
            handler.close()
        work_dir = str(store.directory)
        _intrinsics_importer()()  # TuneContext imports them too, at the slow pace
        if population is None and request.budget <= SMALL_BUDGET:
            population = SMALL_BUDGET_POPULATION
        strategy = ms.search_strategy.EvolutionarySearch(population_size=population) if population else "evolutionary"
        contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(todo, work_dir, strategy=strategy,
                                                                                  seed=seed)
        builder = make_warm_builder(workers, builder_timeout_s)
        evaluator = ms.runner.EvaluatorConfig(number=3, repeat=1, min_repeat_ms=RUNNER_MIN_REPEAT_MS)
        runner = ms.runner.LocalRunner(timeout_sec=RUNNER_TIMEOUT_S, evaluator_config=evaluator)
        t0 = time.perf_counter()
        timelimit.stop_if_expired()
        ms.tune.tune_tasks(tasks=contexts, task_weights=weights, work_dir=work_dir,
                           max_trials_global=request.budget * len(todo), max_trials_per_task=request.budget,
                           num_trials_per_iter=min(TRIALS_PER_ITER, request.budget), builder=builder,
                           runner=runner, database=database,
                           measure_callbacks=[*ms.measure_callback.MeasureCallback.create("default"),
                                              make_time_limit_callback()])
        tuning_s = time.perf_counter() - t0
        # Stopped by the trial's time limit or a stop request: the records made so far stay in
        # the database, but the budget was not spent, so the ledger is left as it was.
        timelimit.stop_if_expired()
        if stopping.requested():
            raise KeyboardInterrupt("stop requested during MetaSchedule tuning")
        counts = {t.task_name: valid_records(database, t) for t in tasks}
        good = [t for t in todo if counts[t.task_name] > 0]
        store.record_spent([task_key(t) for t in good], request.budget)
    failed = tuple(t.task_name for t in todo if counts[t.task_name] == 0)
    report = TuningReport(tuning_s=tuning_s, selected=names, tuned=tuple(t.task_name for t in todo), reused=reused,
                          valid_records=sum(counts.values()), builds=int(builder.stats["builds"]),
                          build_s=float(builder.stats["seconds"]), failed=failed)
    if failed:
        raise RuntimeError(f"MetaSchedule found no valid schedule for {', '.join(failed)} "
                           f"({builder.stats['first_error'] or 'every measured schedule failed to run'})")
    return report


__all__ = ["BUILDER_TIMEOUT_S", "OFF", "TuningReport", "TuningRequest", "TuningStore", "make_warm_builder",
           "run_times_s", "select_tasks", "task_cost", "task_key", "tune_modules", "valid_records"]
