"""Configs side by side: a config past the compile limit is a row with that reason, the others still run."""

from __future__ import annotations

from tests.helpers import tiny_model, tiny_samples
from tuner.core.records import Candidate, MeasureConfig
from tuner.export.sidebyside import run_side_by_side
from tuner.workloads.loading import make_workload


def test_a_config_past_the_compile_limit_is_left_out_with_its_reason_and_the_others_are_measured() -> None:
    workload = make_workload(tiny_model(), tiny_samples(), "cpu")
    entries = {
        "eager": Candidate("eager"),
        # Compiles for an hour (interruptible Python code): without the limit this test would hang.
        "slow": Candidate("test_slow", "static", "fp32", {"test_slow/variant": 1}),
        "quick": Candidate("test_slow", "static", "fp32", {"test_slow/variant": 0}),
    }
    steps: list[int] = []
    keep: dict = {}
    results = run_side_by_side(workload, entries, MeasureConfig(warmup=1, repeats=3), rounds=2,
                               compile_limit_s=2.0, step=lambda: steps.append(1), keep=keep)
    by_name = {r.name: r for r in results}
    assert [r.name for r in results] == ["eager", "slow", "quick"]
    slow = by_name["slow"]
    assert not slow.ok and slow.total_ms is None
    assert slow.error == "not compiled within the 2 s compile limit"
    assert "slow" not in keep
    # The configs after it were still built and measured in every round.
    for name in ("eager", "quick"):
        assert by_name[name].ok, by_name[name].error
        assert len(by_name[name].rounds_ms) == 2
    # The progress bar got its every step: a build and a measurement per round, per config.
    assert len(steps) == len(entries) * (1 + 2)
