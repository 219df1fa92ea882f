"""Log a benchmark workload's record to MLflow: one run per workload and call in the ``bench`` experiment.

Params: the workload, device, size and trial budget. Metrics: each row's total (ms), the floor,
and the convergence (best so far, ``tuner_best_ms``, with the counted trial as its step).
Artifacts: the record as JSON and the convergence plots. The tracking store is a SQLite file
(``sqlite:///<work dir>/mlflow.db`` by default; MLflow's file store is refused by MLflow 3), with
artifacts under ``<work dir>/mlartifacts``.
"""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path
from typing import Any

EXPERIMENT = "bench"


def metric_key(name: str) -> str:
    """A row name as an MLflow metric key (letters, digits, ``_ - . /`` only)."""
    return re.sub(r"[^A-Za-z0-9_./-]+", "_", name).strip("_")


def log_record(uri: str, artifact_root: Path, record: dict[str, Any], plots: list[Path]) -> str:
    """Log one workload's record as a run of the ``bench`` experiment.

    Args:
        uri: Tracking URI.
        artifact_root: Where the experiment keeps artifacts (used when it is created).
        record: The workload's record.
        plots: Plot files to attach.

    Returns:
        The run id.
    """
    import json

    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    exp_id = exp.experiment_id if exp is not None else client.create_experiment(
        EXPERIMENT, artifact_location=artifact_root.resolve().as_uri())
    run = client.create_run(exp_id, run_name=f"{record['workload']}-{record['device']}-{record['date']}",
                            tags={"workload": record["workload"], "device_name": str(record.get("device_name"))})
    run_id = str(run.info.run_id)
    now = int(time.time() * 1000)
    params = [Param(k, str(record.get(k))) for k in ("workload", "device", "size", "trials", "snapshot", "command")]
    metrics = [Metric(metric_key(f"{r['name']}_ms"), float(r["total_ms"]), now, 0)
               for r in record["rows"] if r.get("total_ms") is not None]
    if record.get("floor", {}).get("floor_ms") is not None:
        metrics.append(Metric("floor_ms", float(record["floor"]["floor_ms"]), now, 0))
    conv = record.get("convergence", {})
    for step, best in enumerate(conv.get("best_ms", []), start=1):
        if best is not None:
            metrics.append(Metric("tuner_best_ms", float(best), now, step))
    # log_batch takes at most 1000 metrics per call.
    for i in range(0, max(len(metrics), 1), 1000):
        client.log_batch(run_id, metrics=metrics[i:i + 1000], params=params if i == 0 else [])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{record['workload']}.json"
        path.write_text(json.dumps(record, indent=2, default=str))
        client.log_artifact(run_id, str(path))
    for p in plots:
        client.log_artifact(run_id, str(p))
    client.set_terminated(run_id, "FINISHED")
    return run_id


__all__ = ["EXPERIMENT", "log_record", "metric_key"]
