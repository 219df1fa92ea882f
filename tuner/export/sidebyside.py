"""Configs measured side by side: each built once, then timed in alternating rounds in one process.

Used by the tuner to pick its winner among its finalists (:mod:`tuner.export.finalize`) and by the
benchmarks (``experiments/bench.py``, ``experiments/bench_demo.py``): every config is built through the
project's own backends and timed with the tuner's protocol (:func:`tuner.runtime.measure.measure`:
warm-up excluded, CUDA events on the GPU, the median of the repeats per sample, summed over the
test data). The first round measures each config right after its build (so that its compile time
is its own) and checks its outputs; the later rounds alternate the configs so that drift on a
shared machine hits all alike; each keeps its fastest round. A config that fails to build, crashes
or gives wrong results is a row with its reason, not an exception, and so is one that does not
compile within ``compile_limit_s`` (a benchmark's peer must not hold the whole run:
``torch.compile``'s max-autotune can compile a ResNet for over 20 minutes).

An entry may also be a written artifact (:class:`Shipped`): it is loaded as a user loads it
(:func:`tuner.export.artifact.load_optimized`) and timed beside the others, so that a benchmark
compares what the tuner ships, not only the candidate it was exported from.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from backends import get_backend
from tuner.core.accuracy import AccuracyRule, accuracy_rule
from tuner.core.errors import error_line
from tuner.core.records import BuildResult, Built, Candidate, MeasureConfig
from tuner.core.workload import Workload
from tuner.export.artifact import MANIFEST, load_optimized
from tuner.runtime.correctness import check_outputs
from tuner.runtime.measure import measure
from tuner.runtime.timelimit import TrialTimeout, time_limit

#: Called with a line of progress (a step starts or a config fails).
Say = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class Result:
    """One config's figures, or why it has none.

    Attributes:
        name: The config's name in the table.
        candidate: The candidate's description.
        total_ms: Fastest round: sum over the test samples of each sample's median latency.
        rounds_ms: Every round's total.
        per_sample_ms: The fastest round's median latency of each sample.
        compile_s: Build time plus the first call of each shape (compiles on first call).
        max_abs_err: Largest absolute error against the reference outputs.
        max_rel_err: Largest relative error against the reference outputs.
        accuracy: The accuracy rule it was judged by, and its score (:mod:`tuner.core.accuracy`).
        error: Why there is no figure (build or run failure, wrong results); None when it ran.
    """

    name: str
    candidate: str
    total_ms: float | None = None
    rounds_ms: tuple[float, ...] = ()
    per_sample_ms: tuple[float, ...] = ()
    compile_s: float | None = None
    max_abs_err: float | None = None
    max_rel_err: float | None = None
    accuracy: tuple[str, float | None] | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the config ran correctly and has a figure."""
        return self.error is None and self.total_ms is not None


@dataclasses.dataclass(frozen=True)
class Shipped:
    """A written artifact as an entry: loaded with ``load_optimized`` and timed as users call it.

    Attributes:
        directory: The artifact folder (``<output>/<study>/best``).
    """

    directory: Path

    @property
    def candidate(self) -> Candidate:
        """The candidate it was exported from (from its manifest)."""
        return Candidate.from_dict(json.loads((self.directory / MANIFEST).read_text())["candidate"])


@dataclasses.dataclass
class _Row:
    """One config while it is measured: what it built, its rounds so far, or why it is out."""

    name: str
    candidate: Candidate
    shipped: Shipped | None = None
    built: Built | None = None
    compile_s: float = 0.0
    totals_s: list[float] = dataclasses.field(default_factory=list)
    per_sample_ms: tuple[float, ...] = ()
    errors: tuple[float, float] | None = None
    accuracy: tuple[str, float | None] | None = None
    steps: int = 0
    failed: Result | None = None

    def result(self) -> Result:
        """The row as the table shows it."""
        if self.failed is not None:
            return self.failed
        abs_err, rel_err = self.errors if self.errors is not None else (None, None)
        return Result(self.name, self.candidate.describe(), total_ms=min(self.totals_s) * 1e3,
                      rounds_ms=tuple(v * 1e3 for v in self.totals_s), per_sample_ms=self.per_sample_ms,
                      compile_s=self.compile_s, max_abs_err=abs_err, max_rel_err=rel_err, accuracy=self.accuracy)


@dataclasses.dataclass
class _Run:
    """The measurement protocol shared by the rows of one side-by-side run."""

    workload: Workload
    config: MeasureConfig
    rounds: int
    rule: AccuracyRule | None
    say: Say
    step: Callable[[], None]

    def advance(self, row: _Row) -> None:
        row.steps += 1
        self.step()

    def fail(self, row: _Row, error: str, **figures: Any) -> None:
        """Put a row out of the running: it says why, and the progress bar gets the steps it will not take."""
        self.say(f"{row.name}: {error}")
        row.failed = Result(row.name, row.candidate.describe(), error=error, **figures)
        while row.steps < 1 + self.rounds:
            self.advance(row)

    def build(self, row: _Row, cache_dir: Path | None, compile_limit_s: float | None) -> None:
        """Build a row's config and measure its first round (its first calls are its own compile)."""
        self.say(f"{'loading' if row.shipped else 'building'} {row.name}: {row.candidate.describe()}")
        try:
            with time_limit(compile_limit_s):
                res = self._build(row, cache_dir)
                self.advance(row)
                if res.built is None:
                    self.fail(row, f"build failed: {res.error_msg}")
                    return
                row.built, row.compile_s = res.built, res.built.build_s
                self.measure(row, first=True)
        except TrialTimeout:
            row.built = None
            _forget_partial_compile(row.candidate)
            self.fail(row, f"not compiled within the {compile_limit_s:g} s compile limit", compile_s=compile_limit_s)

    def _build(self, row: _Row, cache_dir: Path | None) -> BuildResult:
        if row.shipped is None:
            return get_backend(row.candidate.backend, cache_dir=cache_dir).build(self.workload, row.candidate)
        t0 = time.perf_counter()
        try:
            fn = load_optimized(row.shipped.directory, self.workload.device)
        except Exception as e:  # noqa: BLE001 - an artifact that does not load is a row with its reason
            return BuildResult(error_msg=f"the artifact does not load: {error_line(e)}")
        return BuildResult(built=Built(fn=fn, build_s=time.perf_counter() - t0))

    def measure(self, row: _Row, first: bool) -> None:
        """One round of a row; the first also checks its outputs against the reference."""
        assert row.built is not None
        if row.shipped is None:
            m = get_backend(row.candidate.backend).measure(row.built, self.workload, self.config)
        else:
            # As tuner.export.verify times it in a fresh process: the loaded callable, as it is.
            m = measure(row.built.fn, self.workload, self.config)
        self.advance(row)
        if not m.ok or m.outputs is None or m.latencies_s is None:
            self.fail(row, f"run failed: {m.error_msg}", compile_s=row.compile_s)
            return
        if first:
            row.compile_s += m.warmup_s
            rule = self.rule or accuracy_rule(None, "o1" if row.candidate.precision == "fp32" else "o2")
            verdict = check_outputs(m.outputs, self.workload.reference, rule)
            row.errors = (verdict.max_abs_err, verdict.max_rel_err)
            row.accuracy = (rule.spec, verdict.score)
            if not verdict.ok:
                self.fail(row, f"wrong results: {verdict.detail}", compile_s=row.compile_s,
                          max_abs_err=verdict.max_abs_err, accuracy=row.accuracy)
                return
        if not row.totals_s or m.total_s < min(row.totals_s):
            row.per_sample_ms = tuple(x * 1e3 for x in m.latencies_s)
        row.totals_s.append(m.total_s)


def run_side_by_side(workload: Workload, entries: Mapping[str, Candidate | Shipped], config: MeasureConfig, *,
                     rounds: int = 3, rule: AccuracyRule | None = None, cache_dir: Path | None = None,
                     say: Say | None = None, step: Callable[[], None] | None = None,
                     keep: dict[str, Built] | None = None, compile_limit_s: float | None = None) -> list[Result]:
    """Build and time each config once (checking its outputs), then time them all in alternating rounds.

    Args:
        workload: Model, test data, reference outputs and device.
        entries: Name -> candidate (or written artifact), in table order.
        config: Warm-up and repeats per sample.
        rounds: Rounds in all, the first included (each config keeps its fastest).
        rule: The accuracy rule every config is judged by; None: each by its precision's level
            default (o1's for fp32, o2's for the others).
        cache_dir: Backends' cache (TVM's tuning database: a tuned candidate is rebuilt from it).
        say: Progress lines.
        step: Called after each build and each measurement (a progress bar's advance).
        keep: When given, receives name -> built config for every config that built in time (the
            tuner exports its winner from it instead of building it again).
        compile_limit_s: Seconds each config may take for its build and its first round (where
            ``torch.compile`` compiles); past it, the config is a row with that reason. None: no
            limit. Enforced only in the main thread (it is a ``SIGALRM``, :mod:`tuner.runtime.timelimit`).

    Returns:
        One :class:`Result` per entry, in ``entries`` order.
    """
    run = _Run(workload, config, rounds, rule, say or (lambda _text: None), step or (lambda: None))
    if any(isinstance(e, Candidate) and e.backend == "inductor" for e in entries.values()):
        _room_for_compiled_configs()
    rows = [_Row(name, e.candidate, e) if isinstance(e, Shipped) else _Row(name, e) for name, e in entries.items()]
    # Round 0 right after each build: its first calls are the config's own compile (a later
    # torch.compile build resets dynamo's caches, and the earlier configs then compile again on
    # their first call of round 1: untimed, as every first call per shape is).
    for row in rows:
        run.build(row, cache_dir, compile_limit_s)
    for _ in range(1, rounds):
        for row in rows:
            if row.failed is None:
                run.measure(row, first=False)
    if keep is not None:
        keep.update({row.name: row.built for row in rows if row.built is not None})
    return [row.result() for row in rows]


def _forget_partial_compile(candidate: Candidate) -> None:
    """Drop what an interrupted ``torch.compile`` left behind (its half-built graphs and guards)."""
    if candidate.backend == "inductor":
        import torch._dynamo as dynamo

        dynamo.reset()


def _room_for_compiled_configs() -> None:
    """Let several ``torch.compile`` configs of one model live in one process.

    Their graphs share the model's code objects, whose cache entries count against dynamo's
    recompile limits (8 per code object by default); the inductor backend sizes the limit for one
    config at a time (the study builds one per process at a time). Exceeding it still fails loudly
    (the backend sets ``fail_on_recompile_limit_hit``); this only makes room for the configs side by side.
    """
    import torch._dynamo as dynamo

    dynamo.config.recompile_limit = max(int(dynamo.config.recompile_limit), 64)
    dynamo.config.accumulated_recompile_limit = max(int(dynamo.config.accumulated_recompile_limit), 1024)


def result_dict(result: Result) -> dict[str, Any]:
    """A JSON-ready record of a result."""
    return dataclasses.asdict(result)


__all__ = ["Result", "Shipped", "result_dict", "run_side_by_side"]
