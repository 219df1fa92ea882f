"""Emitting goes down the study's ranking until a candidate exports; kinds that keep failing are skipped."""

from __future__ import annotations

import json
from pathlib import Path

from backends import get_backend
from backends.faulty import LuckyBackend
from tests.helpers import tiny_model, tiny_samples
from tuner.core.budget import Budget
from tuner.core.progress import NullProgress
from tuner.core.records import Candidate
from tuner.core.settings import TuneSettings
from tuner.export.artifact import MANIFEST
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


def _finalists(workload, *picks_ms: tuple[Pick, float]):
    """The finalists' builds and side-by-side results, each pick with the figure it measured there."""
    built = {p.name: get_backend("test_lucky").build(workload, p.candidate).built for p, _ in picks_ms}
    results = {p.name: Result(p.name, p.candidate.describe(), total_ms=ms) for p, ms in picks_ms}
    return [p for p, _ in picks_ms], results, built


def test_a_shipped_artifact_slower_reloaded_than_the_next_finalist_side_by_side_gives_way_to_it(tmp_path):
    # Variant 2 sleeps 45 ms per call outside a tuner worker and variant 1 15 ms: as if variant 2
    # had won the side by side (0.5 ms) and its exported format then lost its speed reloaded.
    workload = make_workload(tiny_model(), tiny_samples(), "cpu")
    settings = TuneSettings(study_name="e", output_dir=tmp_path, repeats=2, warmup=1)
    fast_here, next_one = Pick(1, lucky(2), 0.001), Pick(2, lucky(1), 0.002)
    picks, results, built = _finalists(workload, (fast_here, 0.5), (next_one, 1.0))
    side_ms = {name: r.total_ms for name, r in results.items()}
    said = Said()
    out = tmp_path / "best"
    out.mkdir()
    chosen, artifact = export_first(out, Emitter(workload, settings, Budget(), said),
                                    candidates(picks, results, built, iter([])), side_ms)
    assert chosen is not None and chosen.trial == 2 and artifact["verified"] is True
    per_call = artifact["reloaded_total_ms"] / len(tiny_samples())
    assert LuckyBackend.DELAY_MS[1][1] <= per_call < LuckyBackend.DELAY_MS[2][1]
    [passed_over] = artifact["fallbacks"]
    assert passed_over["trial"] == 1 and passed_over["error"].startswith("not shipped: its artifact ran")
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["candidate"]["options"] == {"test_lucky/variant": 1}
    assert [p.name for p in out.parent.iterdir() if "contender" in p.name] == []  # no leftover folder
    assert any("checking trial 2's artifact too" in line for line in said.lines)


def test_the_shipped_artifact_stays_where_the_next_finalist_runs_slower_reloaded(tmp_path):
    workload = make_workload(tiny_model(), tiny_samples(), "cpu")
    settings = TuneSettings(study_name="e", output_dir=tmp_path, repeats=2, warmup=1)
    first, lucky_one = Pick(1, lucky(1), 0.001), Pick(2, lucky(2), 0.002)
    picks, results, built = _finalists(workload, (first, 0.5), (lucky_one, 1.0))
    out = tmp_path / "best"
    out.mkdir()
    chosen, artifact = export_first(out, Emitter(workload, settings, Budget(), NullProgress()),
                                    candidates(picks, results, built, iter([])),
                                    {name: r.total_ms for name, r in results.items()})
    assert chosen is not None and chosen.trial == 1
    [tried] = artifact["fallbacks"]
    assert tried["trial"] == 2 and "ran the test data in" in tried["error"] and "trial 1's in" in tried["error"]
    assert json.loads((out / MANIFEST).read_text())["candidate"]["options"] == {"test_lucky/variant": 1}
    # Without side-by-side figures (or with the next finalist slower there) nothing more is exported.
    out2 = tmp_path / "best2"
    out2.mkdir()
    chosen, artifact = export_first(out2, Emitter(workload, settings, Budget(), NullProgress()),
                                    candidates(picks, results, built, iter([])))
    assert chosen is not None and chosen.trial == 1 and "fallbacks" not in artifact
