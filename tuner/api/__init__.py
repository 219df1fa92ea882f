"""What users call: the ``tune`` command line, ``tune()``, ``optimize()`` and their checks.

``tune()``/``best_config()``/``load_optimized()``, the seed's ``optimize()`` with ``Config`` and
``save``, the checks of a run's places, and the progress display.

The top room: it may import every other.
"""

from tuner.api.config import Config
from tuner.api.optimize import OptSpec, optimize
from tuner.api.saving import save
from tuner.api.tuning import TuneResult, best_config, load_optimized, run, tune

__all__ = ["Config", "OptSpec", "TuneResult", "best_config", "load_optimized", "optimize", "run", "save", "tune"]
