"""Emitting goes down the study's ranking until a candidate exports; kinds that keep failing are skipped."""

from __future__ import annotations

from pathlib import Path

from backends import get_backend
from tests.helpers import tiny_model, tiny_samples
from tuner.core.budget import Budget
from tuner.core.progress import NullProgress
from tuner.core.records import Candidate
from tuner.core.settings import TuneSettings
from tuner.export.emit import KIND_FAILURES, Emitter, candidates, export_first
from tuner.export.finalists import Pick
from tuner.export.sidebyside import Result
from tuner.workloads.loading import make_workload


def lucky(variant: int) -> Candidate:
    return Candidate("test_lucky", options={"test_lucky/variant": variant})


class Said(NullProgress):
    """Keeps the lines meant for the user."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def message(self, text: str) -> None:
        self.lines.append(text)


def test_past_every_finalist_the_ranking_goes_on_and_a_failing_kind_is_skipped(tmp_path: Path) -> None:
    workload = make_workload(tiny_model(), tiny_samples(), "cpu")
    settings = TuneSettings(study_name="e", output_dir=tmp_path, repeats=2, warmup=1)
    unexportable = Pick(1, lucky(3), 0.001)
    finalist_built = {unexportable.name: get_backend("test_lucky").build(workload, unexportable.candidate).built}
    results = {unexportable.name: Result(unexportable.name, unexportable.candidate.describe(), total_ms=1.0)}
    # Down the ranking: the finalist again (tried once only), two more failures of another kind, a
    # third of that kind (skipped unbuilt), then eager.
    others = iter([unexportable, Pick(2, Candidate("test_lucky", "static", options={"test_lucky/variant": 3}), 0.002),
                   Pick(3, Candidate("test_lucky", "static", "bf16", {"test_lucky/variant": 3}), 0.003),
                   Pick(4, Candidate("test_lucky", "static", options={"test_lucky/variant": 1}), 0.004),
                   Pick(5, Candidate("eager"), 0.005)])
    emitter = Emitter(workload, settings, Budget(), NullProgress())
    out = tmp_path / "best"
    out.mkdir()
    chosen, artifact = export_first(out, emitter, candidates([unexportable], results, finalist_built, others))
    assert chosen is not None and chosen.trial == 5 and artifact["verified"] is True
    tried = {f["trial"]: f["error"] for f in artifact["fallbacks"]}
    assert list(tried) == [1, 2, 3, 4][: len(tried)] and "cannot be exported" in tried[1]
    assert sum("cannot be exported" in e for e in tried.values()) == 1 + KIND_FAILURES
    assert tried[4].startswith("skipped") and "failed already" in tried[4]
    assert (out / "artifact.json").is_file()


def test_an_export_that_would_outlast_the_budget_gives_way_to_one_that_fits(tmp_path: Path) -> None:
    workload = make_workload(tiny_model(), tiny_samples(), "cpu")
    settings = TuneSettings(study_name="e", output_dir=tmp_path, repeats=2, warmup=1)
    # Its trial compiled for 500 s: its export alone is expected to take that long, and 120 s are left.
    slow = Pick(1, lucky(0), 0.001, compile_s=500.0)
    quick = Pick(2, lucky(1), 0.002, compile_s=0.1)
    said = Said()
    emitter = Emitter(workload, settings, Budget(total_s=120.0), said)
    out = tmp_path / "best"
    out.mkdir()
    chosen, artifact = export_first(out, emitter, candidates([], {}, {}, iter([slow, quick])))
    assert chosen is not None and chosen.trial == 2 and artifact["verified"] is True
    [skipped] = artifact["fallbacks"]
    assert skipped["trial"] == 1 and "expected to take about 510 s" in skipped["error"]
    assert "a longer --timeout exports it" in skipped["error"]
    assert said.lines == []  # not a finalist: the report's fallbacks list it


def test_a_finalist_skipped_for_time_is_said(tmp_path: Path) -> None:
    workload = make_workload(tiny_model(), tiny_samples(), "cpu")
    settings = TuneSettings(study_name="e", output_dir=tmp_path, repeats=2, warmup=1)
    slow = Pick(1, lucky(0), 0.001, compile_s=500.0)
    built = {slow.name: get_backend("test_lucky").build(workload, slow.candidate).built}
    results = {slow.name: Result(slow.name, slow.candidate.describe(), total_ms=1.0)}
    said = Said()
    emitter = Emitter(workload, settings, Budget(total_s=120.0), said)
    out = tmp_path / "best"
    out.mkdir()
    chosen, _ = export_first(out, emitter, candidates([slow], results, built, iter([Pick(2, lucky(1), 0.002)])))
    assert chosen is not None and chosen.trial == 2
    [line] = said.lines
    assert line.startswith("trial 1: skipped: its export and fresh-process check are expected to take about")
    assert line.endswith("a longer --timeout exports it: trying the next candidate")
