"""The bottom room: typed records, the workload record, defaults, errors, devices, files and places.

Everything else of the project may import it; it imports nothing else of the project.
"""

from tuner.core import defaults, stopping
from tuner.core.accuracy import AccuracyRule, accuracy_rule, parse_accuracy
from tuner.core.defaults import LEVELS
from tuner.core.errors import UserError, error_line, first_line
from tuner.core.files import file_lock, write_dir_atomically, write_file_atomically, write_json
from tuner.core.progress import NullProgress, Progress
from tuner.core.records import (
    PRECISIONS,
    SHAPE_MODES,
    BuildResult,
    Built,
    Candidate,
    Correctness,
    MeasureConfig,
    Measurement,
    Outcome,
)
from tuner.core.settings import TuneSettings
from tuner.core.tf_model import TFModel
from tuner.core.workload import Sample, Workload, flatten_outputs

__all__ = ["LEVELS", "PRECISIONS", "SHAPE_MODES", "AccuracyRule", "BuildResult", "Built", "Candidate", "Correctness",
           "MeasureConfig", "Measurement", "NullProgress", "Outcome", "Progress", "Sample", "TFModel",
           "TuneSettings", "UserError", "Workload", "accuracy_rule", "defaults", "error_line", "file_lock",
           "first_line", "flatten_outputs", "parse_accuracy", "stopping", "write_dir_atomically",
           "write_file_atomically", "write_json"]
