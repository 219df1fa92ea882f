"""An autotuner over deep-learning compilation strategies.

``tune`` searches, with an Optuna study, over how to compile a model (backend, shape mode, fusion,
precision), measures every candidate on the test data, checks it against the reference outputs,
logs it to MLflow and emits the fastest correct one. ``optimize`` is the seed's
``blade.optimize(...)`` call over a short study (with ``Config``, ``save`` and ``load_optimized``).

The API is imported on first use (PEP 562), so that ``backends`` and ``search_space`` can import
``tuner``'s records and measurement without importing the study driver, which imports them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tuner.errors import UserError

if TYPE_CHECKING:
    from tuner.api import best_config, load_optimized, tune
    from tuner.config import Config
    from tuner.finalize import TuneResult
    from tuner.optimize_api import OptSpec, optimize, save

_LAZY = {"tune": "tuner.api", "best_config": "tuner.api", "load_optimized": "tuner.api",
         "TuneResult": "tuner.finalize", "Config": "tuner.config", "optimize": "tuner.optimize_api",
         "save": "tuner.optimize_api", "OptSpec": "tuner.optimize_api"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tuner' has no attribute {name!r}")


__all__ = ["Config", "OptSpec", "TuneResult", "UserError", "best_config", "load_optimized", "optimize", "save",
           "tune"]
