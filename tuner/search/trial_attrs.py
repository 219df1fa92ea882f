"""Several user attributes of a running trial written in one storage transaction.

Optuna writes each ``trial.set_user_attr`` in a transaction of its own: on a database server that
is a round trip (and a commit) per attribute. A trial of the tuner writes six or more (who runs
it, its candidate and key, its claim, its outcome, whether it was cached), which made attribute
writes a large share of the tuner's storage time per trial over Optuna's own
(``experiments/bench_workers.py`` measures it). :class:`BatchRDBStorage` is Optuna's ``RDBStorage`` with one
more method that writes several attributes in one transaction, through the same statements Optuna
uses for one; :func:`write_user_attrs` (and :func:`set_user_attrs`, for a running ``Trial``) use it
where the study's storage is one, and fall back to one write per attribute elsewhere (journal
files, in-memory studies).

A trial's intermediate value (the tuner reports one, at step 0, for the pruner) can ride along too:
:func:`report_deferred` gives it to the trial's own view at once (its pruner decides on that view)
and :func:`set_user_attrs` writes it with the trial's next attributes, the outcome. Only finished
COMPLETE trials' intermediate values are read by the pruner of other trials, so none of them misses it.

The method reaches into ``RDBStorage``'s private helpers (``_create_scoped_session``,
``_set_trial_attr_without_commit``, ``_set_trial_intermediate_value_without_commit``), pinned by the
Optuna version in ``pyproject.toml``; the tests that write and read attributes through it fail if
they change.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session


class BatchRDBStorage(RDBStorage):
    """Optuna's RDB storage, plus :meth:`set_trial_user_attrs`."""

    def set_trial_user_attrs(self, trial_id: int, attrs: Mapping[str, Any]) -> None:
        """Write several user attributes of a running trial in one transaction.

        Args:
            trial_id: The trial's storage id.
            attrs: Key -> JSON-serializable value.

        Raises:
            optuna.exceptions.UpdateFinishedTrialError: When the trial has finished (as Optuna's
                one-attribute write raises).
        """
        self.set_trial_user_attrs_and_values(trial_id, attrs, {})

    def set_trial_user_attrs_and_values(self, trial_id: int, attrs: Mapping[str, Any],
                                        intermediate_values: Mapping[int, float]) -> None:
        """Write user attributes and intermediate values of a running trial in one transaction.

        Args:
            trial_id: The trial's storage id.
            attrs: Key -> JSON-serializable value.
            intermediate_values: Step -> value (as ``Trial.report`` writes them).

        Raises:
            optuna.exceptions.UpdateFinishedTrialError: When the trial has finished.
        """
        with _create_scoped_session(self.scoped_session, True) as session:
            for step, value in intermediate_values.items():
                self._set_trial_intermediate_value_without_commit(session, trial_id, step, value)
            for key, attr in attrs.items():
                self._set_trial_attr_without_commit(session, models.TrialUserAttributeModel, trial_id, key, attr)


def write_user_attrs(storage: BaseStorage, trial_id: int, attrs: Mapping[str, Any],
                     intermediate_values: Mapping[int, float] | None = None) -> None:
    """Write several user attributes of a running trial, in one transaction where the storage allows.

    Args:
        storage: The study's storage (Optuna's caching layer over an RDB storage, or another kind).
        trial_id: The trial's storage id.
        attrs: Key -> JSON-serializable value.
        intermediate_values: Step -> value, written in the same transaction (None: none).
    """
    intermediate_values = intermediate_values or {}
    # Optuna wraps an RDB storage in its caching layer, which forwards attribute writes unchanged.
    backend = getattr(storage, "_backend", storage)
    if isinstance(backend, BatchRDBStorage):
        backend.set_trial_user_attrs_and_values(trial_id, attrs, intermediate_values)
        return
    for step, value in intermediate_values.items():
        storage.set_trial_intermediate_value(trial_id, step, value)
    for key, attr in attrs.items():
        storage.set_trial_user_attr(trial_id, key, attr)


#: Intermediate values reported with :func:`report_deferred` and not yet written, by trial.
_PENDING: weakref.WeakKeyDictionary[optuna.Trial, dict[int, float]] = weakref.WeakKeyDictionary()


def report_deferred(trial: optuna.Trial, value: float, step: int) -> None:
    """``trial.report``, except that the value reaches the storage with the trial's next :func:`set_user_attrs`.

    The trial's own view (what ``trial.should_prune()`` hands the pruner) has the value at once, so
    the pruner decides exactly as after ``trial.report``; the storage write, a round trip to a
    database server, joins the transaction of the trial's next attribute write. Until then other
    processes do not see it, which changes nothing for them: a pruner reads the intermediate
    values of finished COMPLETE trials only.

    Args:
        trial: A running trial.
        value: The intermediate value.
        step: Its step (non-negative).

    Raises:
        ValueError: For a negative step.
    """
    if step < 0:
        raise ValueError(f"step {step} must be non-negative")
    if step in trial._cached_frozen_trial.intermediate_values:
        return  # as Trial.report: a step's first report stands
    trial._cached_frozen_trial.intermediate_values[step] = float(value)
    _PENDING.setdefault(trial, {})[step] = float(value)


def set_user_attrs(trial: optuna.Trial, attrs: Mapping[str, Any]) -> None:
    """``trial.set_user_attr`` for each item, in one storage transaction where the storage allows.

    Intermediate values reported with :func:`report_deferred` since the last call go in the same
    transaction.

    Args:
        trial: A running trial.
        attrs: Key -> JSON-serializable value.
    """
    if not attrs:
        return
    pending = _PENDING.get(trial, {})
    write_user_attrs(trial.storage, trial._trial_id, attrs, pending)
    _PENDING.pop(trial, None)  # written (a failed write keeps them for the next one)
    # What Trial.set_user_attr does after its write: the trial's own view shows the new values.
    trial._cached_frozen_trial.user_attrs.update(attrs)


__all__ = ["BatchRDBStorage", "report_deferred", "set_user_attrs", "write_user_attrs"]
