"""Running a built model.

Timing, the correctness check, per-call torch switches, CUDA-graph replay, precision wrappers, the
per-device timing lock, time limits, and TensorFlow sessions.

Imports only :mod:`tuner.core`; ``backends`` and ``search_space`` may import it.
"""

from tuner.runtime.correctness import check_outputs
from tuner.runtime.cuda_graphs import CaptureError, GraphedCall
from tuner.runtime.exclusive import exclusive
from tuner.runtime.measure import measure
from tuner.runtime.precision import CastWrapper, apply_precision
from tuner.runtime.switches import CUDA_GRAPH, CUDNN_BENCHMARK, with_switches
from tuner.runtime.timelimit import TrialTimeout, time_limit

__all__ = ["CUDA_GRAPH", "CUDNN_BENCHMARK", "CaptureError", "CastWrapper", "GraphedCall", "TrialTimeout",
           "apply_precision", "check_outputs", "exclusive", "measure", "time_limit", "with_switches"]
