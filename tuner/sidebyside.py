"""Configs measured side by side: each built once, then timed in alternating rounds in one process.

Used by the tuner to pick its winner among its finalists (:mod:`tuner.finalize`) and by the
benchmarks (``experiments/bench.py``, ``bench_demo.py``): every config is built through the
project's own backends and timed with DESIGN.md's protocol (:func:`tuner.measure.measure`: warm-up
excluded, CUDA events on the GPU, the median of the repeats per sample, summed over the test data).
The first round measures each config right after its build (so that its compile time is its
own) and checks its outputs; the later rounds alternate the configs so that drift on a shared
machine hits all alike; each keeps its fastest round. A config that fails to build, crashes or
gives wrong results is a row with its reason, not an exception, and so is one that does not compile
within ``compile_limit_s`` (a benchmark's peer must not hold the whole run: on 2026-11-30
``torch.compile`` max-autotune compiled the ResNet for over 20 minutes on an H200).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backends import get_backend
from tuner.correctness import TOLERANCES, check_outputs
from tuner.measure import MeasureConfig, measure
from tuner.records import Built, Candidate, Measurement
from tuner.timelimit import TrialTimeout, time_limit
from tuner.workload import Workload

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
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the config ran correctly and has a figure."""
        return self.error is None and self.total_ms is not None


def run_side_by_side(workload: Workload, entries: dict[str, Candidate], config: MeasureConfig, *, rounds: int = 3,
                     level: str = "o1", cache_dir: Path | None = None, say: Say | None = None,
                     step: Callable[[], None] | None = None, keep: dict[str, Built] | None = None,
                     compile_limit_s: float | None = None) -> list[Result]:
    """Build and time each config once (checking its outputs), then time them all in alternating rounds.

    Args:
        workload: Model, test data, reference outputs and device.
        entries: Name -> candidate, in table order.
        config: Warm-up and repeats per sample.
        rounds: Rounds in all, the first included (each config keeps its fastest).
        level: Tolerance level of the correctness check (``o1``/``o2``; a low-precision candidate
            is always checked at ``o2``'s tolerance).
        cache_dir: Backends' cache (TVM's tuning database: a tuned candidate is rebuilt from it).
        say: Progress lines.
        step: Called after each build and each measurement (a progress bar's advance).
        keep: When given, receives name -> built config for every config that built (the tuner
            exports its winner from it instead of building it again).
        compile_limit_s: Seconds each config may take for its build and its first round (where
            ``torch.compile`` compiles); past it, the config is a row with that reason. None: no
            limit. Enforced only in the main thread (it is a ``SIGALRM``, :mod:`tuner.timelimit`).

    Returns:
        One :class:`Result` per entry, in ``entries`` order.
    """
    say = say or (lambda _text: None)
    step = step or (lambda: None)
    if any(c.backend == "inductor" for c in entries.values()):
        _room_for_compiled_configs()
    built: dict[str, tuple[Candidate, Built]] = {}
    results: dict[str, Result] = {}
    compile_s: dict[str, float] = {}
    totals: dict[str, list[float]] = {}
    per_sample: dict[str, tuple[float, ...]] = {}
    errors: dict[str, tuple[float, float]] = {}
    stepped: dict[str, int] = {}

    def advance(name: str) -> None:
        stepped[name] = stepped.get(name, 0) + 1
        step()

    def fail(name: str, result: Result) -> None:
        # A config out of the running: its row says why, and the progress bar gets the steps
        # (a build and one per round) it will not take.
        results[name] = result
        while stepped.get(name, 0) < 1 + rounds:
            advance(name)

    def measure_once(name: str, first: bool) -> None:
        cand, b = built[name]
        m = get_backend(cand.backend).measure(b, workload, config)
        advance(name)
        if not m.ok or m.outputs is None or m.latencies_s is None:
            say(f"{name}: run failed: {m.error_msg}")
            fail(name, Result(name, cand.describe(), compile_s=compile_s[name], error=f"run failed: {m.error_msg}"))
            return
        if first:
            compile_s[name] += m.warmup_s
            tol = TOLERANCES["o2" if cand.precision != "fp32" else level]
            verdict = check_outputs(m.outputs, workload.reference, tol)
            errors[name] = (verdict.max_abs_err, verdict.max_rel_err)
            if not verdict.ok:
                say(f"{name}: WRONG: {verdict.detail}")
                fail(name, Result(name, cand.describe(), compile_s=compile_s[name],
                                  max_abs_err=verdict.max_abs_err, error=f"wrong results: {verdict.detail}"))
                return
        if not totals[name] or m.total_s < min(totals[name]):
            per_sample[name] = tuple(x * 1e3 for x in m.latencies_s)
        totals[name].append(m.total_s)

    # Round 0 right after each build: its first calls are the config's own compile (a later
    # torch.compile build resets dynamo's caches, and the earlier configs then compile again on
    # their first call of round 1: untimed, as every first call per shape is).
    for name, cand in entries.items():
        say(f"building {name}: {cand.describe()}")
        try:
            with time_limit(compile_limit_s):
                res = get_backend(cand.backend, cache_dir=cache_dir).build(workload, cand)
                advance(name)
                if res.built is None:
                    say(f"{name}: build failed: {res.error_msg}")
                    fail(name, Result(name, cand.describe(), error=f"build failed: {res.error_msg}"))
                    continue
                built[name] = (cand, res.built)
                if keep is not None:
                    keep[name] = res.built
                compile_s[name] = res.built.build_s
                totals[name] = []
                measure_once(name, first=True)
        except TrialTimeout:
            assert compile_limit_s is not None
            say(f"{name}: not compiled within {compile_limit_s:g} s: left out")
            built.pop(name, None)
            if keep is not None:
                keep.pop(name, None)
            _forget_partial_compile(cand)
            fail(name, Result(name, cand.describe(), compile_s=compile_limit_s,
                              error=f"not compiled within the {compile_limit_s:g} s compile limit"))
    for _ in range(1, rounds):
        for name in built:
            if name not in results:
                measure_once(name, first=False)
    out = []
    for name, cand in entries.items():
        if name in results:
            out.append(results[name])
            continue
        vals = totals[name]
        out.append(Result(name, cand.describe(), total_ms=min(vals) * 1e3, rounds_ms=tuple(v * 1e3 for v in vals),
                          per_sample_ms=per_sample[name], compile_s=compile_s[name],
                          max_abs_err=errors[name][0] if name in errors else None,
                          max_rel_err=errors[name][1] if name in errors else None))
    return out


def side_by_side(eager: Built, best: Built, backend_measure: Any, workload: Workload,
                 config: MeasureConfig, rounds: int = 2) -> tuple[Measurement, Measurement]:
    """Measure eager and the winner alternately; keep each one's faster round (less noise)."""
    pairs: list[tuple[Measurement, Measurement]] = []
    for _ in range(rounds):
        pairs.append((measure(eager.fn, workload, config), backend_measure(best, workload, config)))

    def pick(ms: list[Measurement]) -> Measurement:
        return min(ms, key=lambda m: m.total_s if m.ok else float("inf"))

    return pick([p[0] for p in pairs]), pick([p[1] for p in pairs])


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


__all__ = ["Result", "result_dict", "run_side_by_side", "side_by_side"]
