"""The report: Blade's ``optimizations`` entries and everything a user needs to trust the result.

Blade reports ``{name, status, speedup, pre_run, post_run}`` per optimization. Here there is one
entry per searched backend, the chosen one first, each against the eager figure measured side by
side at the end of the run. A backend with a finalist there is quoted from that same side-by-side
measurement; the others from their best trial in the study, which was measured apart and is the
best of many (the report's ``finalists`` list which were measured there). Then come the chosen
config, the accuracy and its tolerance, the search summary, the measurement protocol, the artifact,
the test-data shapes and the software and hardware context.
"""

from __future__ import annotations

import datetime
from typing import Any

import optuna
from optuna.trial import TrialState

from tuner.core.records import Candidate
from tuner.search.claims import is_failure

#: A backend whose best is not at least this much faster than eager is "ineffective".
EFFECTIVE_SPEEDUP = 1.02


def fmt_ms(seconds: float | None) -> str:
    """Blade's latency format: ``"53.99 ms"``."""
    return "-" if seconds is None else f"{seconds * 1e3:.2f} ms"


def optimization_entry(name: str, pre_s: float | None, post_s: float | None, failed: bool = False) -> dict[str, Any]:
    """One Blade-style ``optimizations`` entry.

    Args:
        name: The backend.
        pre_s: Eager's latency per sample (s).
        post_s: The backend's best latency per sample (s), None when it never succeeded.
        failed: Every trial of this backend failed.

    Returns:
        ``{name, status, speedup, pre_run, post_run}`` (strings, as Blade prints them).
    """
    if post_s is None or pre_s is None:
        return {"name": name, "status": "failed" if failed else "not tried", "speedup": "-",
                "pre_run": fmt_ms(pre_s), "post_run": "-"}
    speedup = pre_s / post_s
    return {
        "name": name,
        "status": "effective" if speedup >= EFFECTIVE_SPEEDUP else "ineffective",
        "speedup": f"{speedup:.2f}",
        "pre_run": fmt_ms(pre_s),
        "post_run": fmt_ms(post_s),
    }


def per_backend_best(study: optuna.Study) -> dict[str, tuple[float | None, bool]]:
    """For each searched backend: its best objective (s) and whether all its trials failed."""
    out: dict[str, tuple[float | None, bool]] = {}
    for backend in study.user_attrs["space"]["backends"]:
        trials = [t for t in study.get_trials(deepcopy=False)
                  if t.params.get("backend") == backend and t.state.is_finished()]
        values = [t.value for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
        out[backend] = (min(values) if values else None,
                        bool(trials) and all(is_failure(t) for t in trials))
    return out


def build_report(
    *,
    study: optuna.Study,
    samples: int,
    chosen: Candidate | None,
    chosen_trial: int | None,
    pre_total_s: float | None,
    post_total_s: float | None,
    baseline_total_s: float | None,
    accuracy: dict[str, Any] | None,
    search: dict[str, Any],
    measurement: dict[str, Any],
    artifact: dict[str, Any] | None,
    test_data: dict[str, Any],
    context: dict[str, Any],
    level: str,
    rule: str,
    locations: dict[str, Any],
    finalists: list[dict[str, Any]] | None = None,
    native_output: dict[str, Any] | None = None,
    timing: dict[str, Any] | None = None,
    side_by_side_s: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Assemble the report (``report.json``).

    Args:
        study: The study (for per-backend bests).
        samples: Number of test samples (latencies are reported per sample).
        chosen: The winning candidate, None when no trial succeeded.
        chosen_trial: Its trial number.
        pre_total_s: Eager over the test data, measured side by side with the winner.
        post_total_s: The winner over the test data, same run.
        baseline_total_s: Eager over the test data at the start of the run (used when the end-of-run
            measurement is missing).
        accuracy: The winner's errors against the reference.
        search: The study summary (trials, failures by reason, best trial, wall time).
        measurement: The protocol and device.
        artifact: Where the artifact is and how it checked out after reloading.
        test_data: Sample count and shape distribution.
        context: Software and hardware.
        level: ``o1`` or ``o2``.
        rule: The accuracy rule every candidate was judged by (``--accuracy``'s form).
        locations: Study name, storage, MLflow URI, output folder.
        finalists: The fastest distinct candidates measured again side by side, and which won.
        native_output: How many lines native code printed (kept in the logs, not shown), and where.
        timing: The time budget and the seconds of each phase (load, search, finalists, export, verify).
        side_by_side_s: Each backend's fastest finalist over the test data (s), measured beside
            ``pre_total_s``.

    Returns:
        The report.
    """
    entries = []

    def per_sample(total_s: float | None) -> float | None:
        return None if total_s is None else total_s / samples

    if chosen is not None and chosen.backend != "eager":
        entries.append(optimization_entry(chosen.backend, per_sample(pre_total_s), per_sample(post_total_s)))
    # The other backends are set against the same eager figure as the chosen entry where there is
    # one (measured warm, at the end); the start-of-run baseline is the fallback. A study's best
    # trial is the luckiest of its measurements, so a finalist's side-by-side figure is preferred:
    # otherwise a backend that lost side by side could show a larger speedup than the winner.
    eager_s = pre_total_s if pre_total_s is not None else baseline_total_s
    sbs = side_by_side_s or {}
    for backend, (best_s, all_failed) in per_backend_best(study).items():
        if backend == "eager" or (chosen is not None and backend == chosen.backend):
            continue
        entries.append(optimization_entry(backend, per_sample(eager_s), per_sample(sbs.get(backend, best_s)),
                                          all_failed))
    status = "ok" if chosen is not None else "no successful trial" if artifact is None else "no exportable candidate"
    return {
        "status": status,
        "optimizations": entries,
        "chosen": None if chosen is None else {**chosen.to_dict(), "trial": chosen_trial,
                                               "description": chosen.describe()},
        "speedup": None if chosen is None or not post_total_s or not pre_total_s else round(
            pre_total_s / post_total_s, 4),
        "level": level,
        "accuracy_rule": rule,
        "accuracy": accuracy,
        "finalists": finalists or [],
        "search": search,
        "measurement": measurement,
        "artifact": artifact,
        "test_data": test_data,
        "context": context,
        "native_output": native_output,
        "timing": timing,
        "study": locations,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
