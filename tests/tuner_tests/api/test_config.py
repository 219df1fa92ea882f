"""tuner.Config: validated fields, one-line errors for typos and bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

import tuner
from tuner.api.config import Config
from tuner.core.defaults import OPTIMIZE_TIME_BUDGET_S, OPTIMIZE_TRIALS
from tuner.core.errors import UserError


def one_line(exc: pytest.ExceptionInfo[UserError]) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_defaults_are_a_short_search() -> None:
    cfg = tuner.Config()
    assert cfg.trials == OPTIMIZE_TRIALS and cfg.time_budget_s == OPTIMIZE_TIME_BUDGET_S and cfg.repeats == 10
    assert cfg.enable_static_shape_compilation_opt is False
    assert cfg.output == "same_kind" and cfg.backends is None
    assert cfg.summary()["output_dir"] == "tune-output"


def test_blade_field_and_bounds() -> None:
    cfg = Config(enable_static_shape_compilation_opt=True, trials=3, time_budget_s=60, backends=["eager", "inductor"],
                 output="any", output_dir="x")
    assert cfg.enable_static_shape_compilation_opt and cfg.trials == 3 and cfg.time_budget_s == 60.0
    assert cfg.backends == ("eager", "inductor") and cfg.output_dir == Path("x")
    assert Config(backends="eager, torchscript").backends == ("eager", "torchscript")
    assert Config(time_budget_s=None).time_budget_s is None


def test_typo_names_the_field_and_suggests() -> None:
    with pytest.raises(UserError) as exc:
        Config(enable_static_shape_compilation=True)
    text = one_line(exc)
    assert "no field 'enable_static_shape_compilation'" in text
    assert "did you mean 'enable_static_shape_compilation_opt'" in text
    assert "valid fields: enable_static_shape_compilation_opt, trials" in text
    with pytest.raises(UserError) as exc:
        Config(trails=5)
    assert "did you mean 'trials'" in one_line(exc)
    with pytest.raises(UserError) as exc:
        Config(zzz=1)
    assert "did you mean" not in one_line(exc) and "valid fields" in str(exc.value)


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"trials": 0}, "trials=0"),
    ({"trials": "ten"}, "trials='ten'"),
    ({"trials": 2.5}, "trials=2.5"),
    ({"enable_static_shape_compilation_opt": "yes"}, "enable_static_shape_compilation_opt='yes'"),
    ({"time_budget_s": 0}, "time limit 0"),
    ({"trial_timeout_s": -1}, "time limit -1"),
    ({"output": "graphdef"}, "output='graphdef'"),
    ({"backends": []}, "backends=[]"),
    ({"track": "no"}, "track='no'"),
    ({"repeats": 0}, "repeats=0"),
    ({"accuracy": "l2:0.1"}, "unknown accuracy rule 'l2:0.1'"),
    ({"accuracy": "rel-l2:-1"}, "--accuracy"),
])
def test_bad_values_are_one_line(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(UserError) as exc:
        Config(**kwargs)
    assert needle in one_line(exc)


def test_unknown_backend_suggests() -> None:
    with pytest.raises(UserError) as exc:
        Config(backends=["inducter"])
    text = one_line(exc)
    assert "unknown backend 'inducter'" in text and "did you mean 'inductor'" in text


def test_frozen() -> None:
    cfg = Config()
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        cfg.trials = 5  # type: ignore[misc]
