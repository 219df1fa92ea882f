"""Configs side by side: a config past the compile limit is a row with that reason, the others still run;
a written artifact is loaded as users load it and timed beside the candidates."""

from __future__ import annotations

import json

from backends import get_backend
from tests.helpers import tiny_model, tiny_samples
from tuner.core.records import Candidate, MeasureConfig
from tuner.export.artifact import MANIFEST, export_artifact
from tuner.export.sidebyside import Shipped, run_side_by_side
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
    # The limit leaves "quick" (eager's build and first round, well under a second alone) room on
    # a CI box whose two cores the neighbour test keeps busy: 2 s once cut it there.
    results = run_side_by_side(workload, entries, MeasureConfig(warmup=1, repeats=3), rounds=2,
                               compile_limit_s=15.0, step=lambda: steps.append(1), keep=keep)
    by_name = {r.name: r for r in results}
    assert [r.name for r in results] == ["eager", "slow", "quick"]
    slow = by_name["slow"]
    assert not slow.ok and slow.total_ms is None
    assert slow.error == "not compiled within the 15 s compile limit"
    assert "slow" not in keep
    # The configs after it were still built and measured in every round.
    for name in ("eager", "quick"):
        assert by_name[name].ok, by_name[name].error
        assert len(by_name[name].rounds_ms) == 2
    # The progress bar got its every step: a build and a measurement per round, per config.
    assert len(steps) == len(entries) * (1 + 2)


def test_a_written_artifact_is_measured_beside_candidates_and_one_that_does_not_load_is_a_row(tmp_path) -> None:
    workload = make_workload(tiny_model(), tiny_samples(), "cpu")
    candidate = Candidate("torchscript", "static", "fp32", {"torchscript/method": "trace"})
    built = get_backend("torchscript").build(workload, candidate).built
    assert built is not None
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    export_artifact(built, workload, candidate, good)
    bad.mkdir()
    # A manifest whose model file is missing: the load fails, as a broken package's would.
    (bad / MANIFEST).write_text(json.dumps({**json.loads((good / MANIFEST).read_text()), "meta": {"file": "gone.pt"}}))
    results = run_side_by_side(workload, {"eager": Candidate("eager"), "shipped": Shipped(good),
                                          "broken": Shipped(bad)}, MeasureConfig(warmup=1, repeats=3), rounds=2)
    by_name = {r.name: r for r in results}
    shipped = by_name["shipped"]
    assert shipped.ok and len(shipped.rounds_ms) == 2, shipped.error
    assert shipped.candidate == candidate.describe() and shipped.max_abs_err is not None
    broken = by_name["broken"]
    assert not broken.ok and broken.error.startswith("build failed: the artifact does not load"), broken.error
