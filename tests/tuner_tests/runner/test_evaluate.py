"""One evaluation's compile figures: where a candidate that compiles each shape at its first call spends it."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.helpers import tiny_model, tiny_samples
from tests.unexported import UnexportedBackend
from tuner.core.accuracy import accuracy_rule
from tuner.core.records import Built, Candidate, MeasureConfig
from tuner.core.workload import Workload
from tuner.runner.evaluate import evaluate
from tuner.workloads.loading import make_workload

#: Seconds the test backend's first call of a shape takes (its "compile").
FIRST_CALL_S = 0.3


class LazyBackend(UnexportedBackend):
    """Test-only: builds at once and compiles each distinct input shape at its first call, as a JIT does."""

    name = "test_lazy"

    def compile(self, workload: Workload, candidate: Candidate) -> Built:
        model, seen = workload.model, set()

        def fn(*args: Any) -> Any:
            key = tuple(tuple(a.shape) for a in args)
            if key not in seen:
                seen.add(key)
                time.sleep(FIRST_CALL_S)
            return model(*args)

        return Built(fn=fn, build_s=0.0)


@pytest.mark.parametrize("pruned", [False, True])
def test_the_short_measurements_first_calls_are_kept_apart_from_compile_s(pruned: bool) -> None:
    workload = make_workload(tiny_model(), tiny_samples(), "cpu")
    shapes = len({workload.shape_key(i) for i in range(len(workload.samples))})
    out = evaluate(Candidate("test_lazy"), workload, accuracy_rule(None, "o1"), MeasureConfig(warmup=1, repeats=3),
                   prune=lambda _: pruned)
    assert out.ok and out.pruned == pruned
    if pruned:
        # No full measurement followed: the short one's first calls are the compile.
        assert out.compile_s >= shapes * FIRST_CALL_S and out.first_calls_s is None
    else:
        assert out.first_calls_s is not None and out.first_calls_s >= shapes * FIRST_CALL_S
        assert out.compile_s < FIRST_CALL_S  # the full measurement found every shape compiled


def test_without_the_pruner_the_first_calls_are_in_compile_s() -> None:
    workload = make_workload(tiny_model(), tiny_samples(), "cpu")
    out = evaluate(Candidate("test_lazy"), workload, accuracy_rule(None, "o1"), MeasureConfig(warmup=1, repeats=3))
    assert out.ok and out.first_calls_s is None and out.compile_s >= FIRST_CALL_S
