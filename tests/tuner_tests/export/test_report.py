"""The report's Blade entries: each backend quoted from the fairest figure there is."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import create_trial

from tuner.core.records import Candidate
from tuner.export.report import build_report

BACKENDS = ["eager", "torchscript", "inductor", "tvm"]


def _study(best_s: dict[str, float]) -> optuna.Study:
    """An in-memory study whose backends' best trials took ``best_s`` (s, whole test data)."""
    study = optuna.create_study()
    study.set_user_attr("space", {"backends": BACKENDS})
    for backend, value in best_s.items():
        study.add_trial(create_trial(params={"backend": backend}, value=value,
                                     distributions={"backend": CategoricalDistribution(BACKENDS)}))
    return study


def _entries(study: optuna.Study, side_by_side_s: dict[str, float]) -> dict[str, dict[str, Any]]:
    report = build_report(study=study, samples=2, chosen=Candidate("torchscript"), chosen_trial=0,
                          pre_total_s=0.020, post_total_s=0.010, baseline_total_s=0.024, accuracy=None,
                          search={}, measurement={}, artifact=None, test_data={}, context={}, level="o1",
                          rule="elementwise:0.0001,0.0001", locations={}, side_by_side_s=side_by_side_s)
    return {e["name"]: e for e in report["optimizations"]}


def test_a_backend_that_lost_side_by_side_is_quoted_from_there_not_from_its_luckiest_trial() -> None:
    # Inductor's best trial (4 ms) looked faster than the winner, but side by side it took 12 ms.
    study = _study({"torchscript": 0.009, "inductor": 0.004, "tvm": 0.030})
    entries = _entries(study, {"torchscript": 0.010, "inductor": 0.012})
    assert list(entries) == ["torchscript", "inductor", "tvm"]  # the chosen one first
    assert entries["torchscript"]["post_run"] == "5.00 ms" and entries["torchscript"]["speedup"] == "2.00"
    assert entries["inductor"]["post_run"] == "6.00 ms" and entries["inductor"]["speedup"] == "1.67"
    # A backend with no finalist keeps its best trial, against the same eager figure.
    assert entries["tvm"]["post_run"] == "15.00 ms" and entries["tvm"]["pre_run"] == "10.00 ms"


def test_without_finalists_every_backend_is_quoted_from_its_best_trial() -> None:
    entries = _entries(_study({"torchscript": 0.009, "inductor": 0.004}), {})
    assert entries["inductor"]["post_run"] == "2.00 ms" and entries["inductor"]["speedup"] == "5.00"
    assert entries["tvm"]["status"] == "not tried"
