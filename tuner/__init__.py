"""An autotuner over deep-learning compilation strategies.

``tune`` searches, with an Optuna study, over how to compile a model (backend, shape mode, fusion,
precision), measures every candidate on the test data, checks it against the reference outputs,
logs it to MLflow and emits the fastest correct one. ``optimize`` is the seed's
``blade.optimize(...)`` call over a short study (with ``Config``, ``save`` and ``load_optimized``).

The code lives in rooms, one per role, in the order data flows; each imports only rooms above it
in this list (``tests/test_architecture.py`` checks it):

- ``tuner.core``: typed records, the workload record, defaults, errors, devices, files;
- ``tuner.runtime``: running a built model (measure, correctness, switches, CUDA graphs, ...);
- ``tuner.workloads``: loading models and test data (factories, files, TF graphs, the demo);
- ``tuner.runner``: one candidate built, measured and checked in an isolated worker;
- ``tuner.search``: the Optuna study and its trial loop;
- ``tuner.tracking``: MLflow;
- ``tuner.export``: the finalists side by side, the artifact, its fresh-process check, the report;
- ``tuner.api``: the CLI, ``tune()``, ``optimize()``.

``backends`` and ``search_space`` import only ``tuner.core`` and ``tuner.runtime``. The public
names below are imported on first use (PEP 562): the lower rooms import ``tuner.core`` and
``tuner.runtime`` without pulling the study driver, which imports them. ``import tuner``
registers ``torch.ops.tuner.run_artifact`` (:mod:`tuner.script_op`), which the ScriptModules that
``optimize`` returns call, as PAI-Blade's runtime does for its own.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tuner import script_op  # noqa: F401  (registers torch.ops.tuner.run_artifact)
from tuner.core.errors import UserError

if TYPE_CHECKING:
    from tuner.api import Config, OptSpec, TuneResult, best_config, load_optimized, optimize, save, tune

__all__ = ["Config", "OptSpec", "TuneResult", "UserError", "best_config", "load_optimized", "optimize", "save",
           "tune"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("tuner.api"), name)
    raise AttributeError(f"module 'tuner' has no attribute {name!r}")
