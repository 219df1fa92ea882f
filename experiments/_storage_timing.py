"""Run ``tune`` with every Optuna storage call timed; write the per-trial storage time to a JSON file.

    python experiments/_storage_timing.py <out.json> <tune arguments ...>
    python experiments/_storage_timing.py <out.json> optuna <storage url> <trials>

The second form is the peer: a plain Optuna study (the same TPE sampler settings, the same
storage with heartbeats, one categorical of 400 values, an objective that does nothing), so that
the storage cost of the tuner's own bookkeeping can be quoted against Optuna's floor.

Used by ``bench_workers.py``. The RDB storage's methods (what ``_CachedStorage`` forwards to the
database, plus the heartbeat) are wrapped with a timer. A trial's storage time is the time spent
in storage calls between the end of the previous trial of this process and the end of this one
(its sampling reads, claims, budget checks, attribute writes, heartbeats and ``tell``), plus the
time taken to acquire and release the study's claim lock (waiting for other processes included). With one
trial thread per process (``--workers 1``) that is exactly its own cost.
"""

from __future__ import annotations

import atexit
import functools
import json
import sys
import threading
import time
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from tuner.search.trial_attrs import BatchRDBStorage

_lock = threading.Lock()
_current = {"s": 0.0, "calls": 0}
_per_trial: list[dict[str, float]] = []
_by_method: dict[str, list[float]] = {}


def _wrap(name: str, cls: type = RDBStorage) -> None:
    original = getattr(cls, name)

    @functools.wraps(original)
    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            dt = time.perf_counter() - t0
            with _lock:
                _by_method.setdefault(name, [0, 0.0])
                _by_method[name][0] += 1
                _by_method[name][1] += dt
                _current["s"] += dt
                _current["calls"] += 1
                state = kwargs.get("state", args[1] if name == "set_trial_state_values" and len(args) > 1 else None)
                if name == "set_trial_state_values" and isinstance(state, TrialState) and state.is_finished():
                    _per_trial.append({"storage_s": _current["s"], "calls": _current["calls"]})
                    _current["s"], _current["calls"] = 0.0, 0

    setattr(cls, name, timed)


for _name in [n for n in dir(optuna.storages.BaseStorage) if not n.startswith("_")] + [
        "record_heartbeat", "_get_stale_trial_ids", "_get_trials"]:
    if callable(getattr(RDBStorage, _name, None)):
        _wrap(_name)
# The tuner's one-transaction write of several attributes (tuner.search.trial_attrs) is storage time too.
# Wrapped where every such write ends up (set_trial_user_attrs calls it): timed once each.
_wrap("set_trial_user_attrs_and_values", BatchRDBStorage)


def _add(name: str, dt: float) -> None:
    with _lock:
        _by_method.setdefault(name, [0, 0.0])
        _by_method[name][0] += 1
        _by_method[name][1] += dt
        _current["s"] += dt
        _current["calls"] += 1


def _wrap_claim_lock(name: str) -> None:
    """Time taking and releasing the study's claim lock (its body's storage calls are timed above)."""
    import contextlib

    import tuner.search.study_lock

    original = getattr(tuner.search.study_lock, name)

    @contextlib.contextmanager
    def timed(*args: Any, **kwargs: Any) -> Any:
        context = original(*args, **kwargs)
        t0 = time.perf_counter()
        context.__enter__()
        _add(f"claim lock ({name.strip('_')})", time.perf_counter() - t0)
        try:
            yield
        finally:
            t0 = time.perf_counter()
            context.__exit__(None, None, None)
            _add(f"claim lock ({name.strip('_')})", time.perf_counter() - t0)

    setattr(tuner.search.study_lock, name, timed)


for _name in ("advisory_lock", "_file_lock"):
    _wrap_claim_lock(_name)

_OUT = sys.argv[1]


def _dump() -> None:
    with open(_OUT, "w") as f:
        json.dump({"per_trial": _per_trial, "by_method": _by_method}, f)


atexit.register(_dump)

def _plain_optuna(url: str, trials: int) -> None:
    import warnings

    from tuner.search.storage import open_storage

    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler = optuna.samplers.TPESampler(seed=None, multivariate=True, group=True, constant_liar=True)
    study = optuna.create_study(storage=open_storage(url), study_name="plain", sampler=sampler,
                                direction="minimize", load_if_exists=True)
    study.optimize(lambda t: (t.suggest_categorical("v", list(range(400))) % 20) * 1e-4,
                   callbacks=[optuna.study.MaxTrialsCallback(trials)])


if __name__ == "__main__" and sys.argv[2] == "optuna":
    _plain_optuna(sys.argv[3], int(sys.argv[4]))
elif __name__ == "__main__":
    sys.argv = ["tune", *sys.argv[2:]]
    from tuner.api.cli import main

    try:
        main()
    finally:
        _dump()
