"""The results' Markdown: every row's score under the run's accuracy rule, a wrong row as 'fails <rule> (score X)'."""

from __future__ import annotations

from typing import Any

from experiments.bench_report import accuracy_of, render


def _record() -> dict[str, Any]:
    rows = [
        {"name": "eager", "role": "peer", "total_ms": 2.0, "rounds_ms": [2.0], "accuracy": ["rel-l2:0.02", 0.0]},
        {"name": "eager .half()", "role": "peer", "total_ms": 1.0, "rounds_ms": [1.0],
         "accuracy": ["rel-l2:0.02", 0.0012]},
        {"name": "eager autocast bf16", "role": "peer", "total_ms": None, "max_abs_err": 0.5,
         "accuracy": ["rel-l2:0.02", 0.0513],
         "error": "wrong results: sample 3 output 0: rel-l2 score 0.0513 (rule rel-l2:0.02)"},
        {"name": "TVM default pipeline fp16", "role": "peer", "total_ms": None,
         "error": "not run: the tvm backend is not available on gpu here"},
    ]
    return {"workload": "mlp", "title": "small MLP", "rows": rows, "phase": "peers",
            "measure": {"level": "o2", "accuracy": "rel-l2:0.02", "rounds": 1, "warmup": 1, "repeats": 1}}


def test_every_judged_row_shows_its_score_and_a_wrong_one_the_rule_it_fails() -> None:
    md = render({"date": "2000-01-01", "device_name": "cpu", "workloads": {"mlp": _record()}})
    lines = {line.split(" | ")[0][2:]: line for line in md.splitlines() if line.startswith("| ")}
    assert " | 0.0012 | " in lines["eager .half()"]
    wrong = lines["eager autocast bf16"]
    assert " | 0.0513 | fails rel-l2:0.02 (score 0.0513): sample 3 output 0" in wrong
    assert " | - | not run: the tvm backend" in lines["TVM default pipeline fp16"]
    assert "Level o2; every row judged by the accuracy rule `rel-l2:0.02`" in md
    assert "Peers only (`--phase peers`)" in md


def test_accuracy_of() -> None:
    rows = _record()["rows"]
    assert accuracy_of(rows[1]) == ("rel-l2:0.02", 0.0012, True)
    assert accuracy_of(rows[2]) == ("rel-l2:0.02", 0.0513, False)
    assert accuracy_of(rows[3]) == (None, None, None)
