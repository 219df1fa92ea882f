"""Each default is stated once (tuner.core.defaults): the CLI, the Python API, optimize() and the README agree."""

from __future__ import annotations

import inspect
from pathlib import Path

import typer

import tuner
from tuner.api.cli import app
from tuner.api.config import Config
from tuner.core import defaults
from tuner.core.records import MeasureConfig
from tuner.core.settings import TuneSettings

ROOT = Path(__file__).resolve().parents[3]


def readme_table_defaults() -> dict[str, str]:
    """``{option: default}`` from the README's tables (first column, last column)."""
    out = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) >= 3:
            out[cells[0].strip("`")] = cells[-1].strip("`")
    return out


def cli_defaults() -> dict[str, object]:
    command = typer.main.get_command(app)
    return {opt: p.default for p in command.params for opt in getattr(p, "opts", []) if opt.startswith("--")}


def test_the_cli_the_api_and_the_settings_read_the_same_defaults() -> None:
    cli = cli_defaults()
    api = inspect.signature(tuner.tune).parameters
    fields = TuneSettings.model_fields
    for option, param, value in [("--trials", "trials", defaults.TRIALS), ("--level", "level", defaults.LEVEL),
                                 ("--trial-timeout", "trial_timeout", defaults.TRIAL_TIMEOUT_S),
                                 ("--seed", "seed", defaults.SEED), ("--finalists", "finalists", defaults.FINALISTS)]:
        assert cli[option] == value, option
        assert api[param].default == value, param
    assert str(cli["--output-dir"]) == defaults.OUTPUT_DIR == str(api["output_dir"].default)
    assert cli["--repeats"] == defaults.REPEATS == fields["repeats"].default == MeasureConfig().repeats
    assert fields["trial_timeout_s"].default == defaults.TRIAL_TIMEOUT_S
    assert fields["finalists"].default == defaults.FINALISTS and fields["trials"].default == defaults.TRIALS
    assert fields["warmup"].default == defaults.WARMUP == MeasureConfig().warmup


def test_optimize_reads_its_own_short_search_defaults() -> None:
    cfg = Config()
    assert (cfg.trials, cfg.time_budget_s, cfg.trial_timeout_s, cfg.repeats) == (
        defaults.OPTIMIZE_TRIALS, defaults.OPTIMIZE_TIME_BUDGET_S, defaults.OPTIMIZE_TRIAL_TIMEOUT_S,
        defaults.OPTIMIZE_REPEATS)


def test_the_readme_quotes_the_defaults() -> None:
    table = readme_table_defaults()
    for option, value in [("--trials", defaults.TRIALS), ("--trial-timeout", defaults.TRIAL_TIMEOUT_S),
                          ("--seed", defaults.SEED), ("--finalists", defaults.FINALISTS),
                          ("--repeats", defaults.REPEATS), ("trials", defaults.OPTIMIZE_TRIALS),
                          ("time_budget_s", defaults.OPTIMIZE_TIME_BUDGET_S),
                          ("trial_timeout_s", defaults.OPTIMIZE_TRIAL_TIMEOUT_S)]:
        assert float(table[option].split()[0]) == value, option
    assert table["--level"] == defaults.LEVEL and table["--output-dir"] == defaults.OUTPUT_DIR
    assert table["repeats"] == f"{defaults.OPTIMIZE_REPEATS} (`tune`: {defaults.REPEATS})"
    assert table["--memory-limit"].startswith(f"{defaults.MEMORY_SHARE:.0%}".replace("%", " %"))
    for level, rule in defaults.ACCURACY.items():
        assert f"{level}: `{rule}" in table["--accuracy"], level  # the cell's last backquote is stripped
