"""After the search: the finalists side by side, the artifact, its check in a fresh process, the report.

Imports every room below it (it reads the study, rebuilds candidates and logs to MLflow).
"""

from tuner.export.artifact import MANIFEST, export_artifact, load_optimized
from tuner.export.finalize import TuneResult, finalize
from tuner.export.sidebyside import Result, run_side_by_side

__all__ = ["MANIFEST", "Result", "TuneResult", "export_artifact", "finalize", "load_optimized", "run_side_by_side"]
