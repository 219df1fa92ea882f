"""After the trials: the finalists are measured again side by side, and the fastest that exports is emitted."""

from __future__ import annotations

import json

import optuna
import pytest

import tuner
from backends.faulty import LuckyBackend
from tests.helpers import tiny_model, tiny_samples
from tuner.core.errors import UserError
from tuner.core.settings import TuneSettings
from tuner.export.artifact import MANIFEST

# The finalists are ranked by measured speed: run alone (see pyproject's serial marker).
pytestmark = pytest.mark.serial


def _variant(desc: str) -> int:
    return int(desc.split("variant=")[1].rstrip("]"))


def test_a_lucky_trial_loses_the_side_by_side_and_an_unexportable_winner_gives_way_to_the_next(tmp_path):
    # test_lucky: variant 2 is the fastest in its trial (0 ms in a worker) but 45 ms per call
    # outside one; variant 3 is the fastest measured again but cannot be exported.
    # Each variant is queued once: the seeded sampler's draws depend on which of the 2 workers
    # finishes first, and under load 8 trials once left variant 1 out.
    study = optuna.create_study(study_name="l", storage=f"sqlite:///{tmp_path / 'study.db'}")
    for variant in LuckyBackend.DELAY_MS:
        study.enqueue_trial({"backend": "test_lucky", "test_lucky/variant": variant})
    result = tuner.tune(tiny_model(), tiny_samples(), trials=8, device="cpu", backends=("test_lucky",),
                        output_dir=tmp_path, study_name="l", track=False, finalists=3)
    report = result.report
    fin = {_variant(f["candidate"]): f for f in report["finalists"]}
    # The study's three fastest distinct candidates, in its order: 2 (lucky), 3, 1.
    assert [_variant(f["candidate"]) for f in report["finalists"]] == [2, 3, 1]
    assert report["search"]["best_trial"] == fin[2]["trial"]
    # Measured again, the lucky one is the slowest of the three (it sleeps 45 ms per call here).
    assert fin[2]["side_by_side_ms"] > fin[1]["side_by_side_ms"] > fin[3]["side_by_side_ms"]
    assert fin[2]["objective_ms"] < fin[3]["objective_ms"]
    # 3 is the fastest but its export fails: 1 is emitted, and the report says why.
    assert fin[1]["chosen"] and not fin[3]["chosen"] and not fin[2]["chosen"]
    fallbacks = report["artifact"]["fallbacks"]
    assert [f["trial"] for f in fallbacks] == [fin[3]["trial"]] and "cannot be exported" in fallbacks[0]["error"]
    assert "error" not in report["artifact"] and report["artifact"]["verified"] is True
    assert result.best_config["options"] == {"test_lucky/variant": 1}
    assert result.best_config["side_by_side_ms"] == pytest.approx(fin[1]["side_by_side_ms"])
    on_disk = json.loads((result.artifact_dir / "best_config.json").read_text())
    assert on_disk["trial"] == fin[1]["trial"]
    # The emitted artifact is variant 1's (the manifest names its candidate).
    manifest = json.loads((result.artifact_dir / MANIFEST).read_text())
    assert manifest["candidate"]["options"] == {"test_lucky/variant": 1}
    assert report["chosen"]["trial"] == fin[1]["trial"]
    # The API's best_config answers with what was emitted, not with the study's best measurement.
    cfg = tuner.best_config("l", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert cfg["trial"] == fin[1]["trial"] and cfg["options"] == {"test_lucky/variant": 1}


def test_one_finalist_emits_the_study_best_as_measured(tmp_path):
    result = tuner.tune(tiny_model(), tiny_samples(), trials=4, device="cpu", backends=("test_lucky",),
                        output_dir=tmp_path, study_name="one", track=False, finalists=1)
    (only,) = result.report["finalists"]
    assert only["trial"] == result.report["search"]["best_trial"]
    # Measured again outside a worker: variant 2 (if it was the study's best) shows its 45 ms here.
    variant = _variant(only["candidate"])
    assert only["side_by_side_ms"] > LuckyBackend.DELAY_MS[variant][1] * len(tiny_samples())
    if variant != LuckyBackend.UNEXPORTABLE:
        assert only["chosen"] and result.best_config["trial"] == only["trial"]
    else:
        # The study's best cannot be exported: the next candidate down the study's ranking is.
        assert not only["chosen"] and result.best_config["trial"] != only["trial"]
        assert [f["trial"] for f in result.report["artifact"]["fallbacks"]] == [only["trial"]]
        assert result.report["artifact"]["verified"] is True


def test_finalists_below_one_is_refused():
    with pytest.raises(UserError, match="--finalists must be at least 1"):
        TuneSettings(study_name="s", finalists=0)

