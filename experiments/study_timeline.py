"""Summarise a study's timeline from its storage: trials per state, per backend, and wall time.

    python experiments/study_timeline.py STUDY_DB STUDY_NAME [--json FILE]

Wall time is the span from the first trial's start to the last trial's end; ``busy`` is the sum
of trial durations (larger than the span when several workers ran at once).
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
from pathlib import Path
from typing import Any

import optuna


def timeline(storage: str, study_name: str) -> dict[str, Any]:
    """Per-backend trial counts and durations, and the study's span."""
    study = optuna.load_study(study_name=study_name, storage=storage)
    trials = [t for t in study.trials if t.datetime_start is not None]
    per: dict[str, list[float]] = collections.defaultdict(list)
    states: collections.Counter[str] = collections.Counter()
    reasons: collections.Counter[str] = collections.Counter()
    for t in trials:
        states[t.state.name] += 1
        if t.user_attrs.get("failure_kind"):  # a failed candidate's trial may be PRUNED (tuner.search.study)
            reasons[str(t.user_attrs.get("failure_kind", "?"))] += 1
        if t.datetime_complete is not None and t.datetime_start is not None:
            per[str(t.params.get("backend", "?"))].append((t.datetime_complete - t.datetime_start).total_seconds())
    ends = [t.datetime_complete for t in trials if t.datetime_complete is not None]
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    span = (max(ends) - min(starts)).total_seconds() if ends and starts else 0.0
    return {
        "trials": len(trials), "states": dict(states), "fail_reasons": dict(reasons), "span_s": round(span, 1),
        "busy_s": round(sum(sum(v) for v in per.values()), 1),
        "backends": {b: {"n": len(v), "median_s": round(statistics.median(v), 2), "max_s": round(max(v), 1)}
                     for b, v in sorted(per.items())},
        "best_ms": None if not any(t.state.name == "COMPLETE" for t in trials) else study.best_value * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", type=Path)
    parser.add_argument("study")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    out = timeline(f"sqlite:///{args.db}", args.study)
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
