"""Several user attributes of a running trial written in one storage transaction.

Optuna writes each ``trial.set_user_attr`` in a transaction of its own: on a database server that
is a round trip (and a commit) per attribute. A trial of the tuner writes six or more (who runs
it, its candidate and key, its claim, its outcome, whether it was cached), which made attribute
writes a large share of the tuner's storage time per trial over Optuna's own (stop 10's
``experiments/bench_workers.py``). :class:`BatchRDBStorage` is Optuna's ``RDBStorage`` with one
more method that writes several attributes in one transaction, through the same statements Optuna
uses for one; :func:`write_user_attrs` (and :func:`set_user_attrs`, for a running ``Trial``) use it
where the study's storage is one, and fall back to one write per attribute elsewhere (journal
files, in-memory studies).

The method reaches into ``RDBStorage``'s private helpers (``_create_scoped_session``,
``_set_trial_attr_without_commit``), pinned by the Optuna version in ``pyproject.toml``; the tests
that write and read attributes through it fail if they change.
"""

from __future__ import annotations

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
        with _create_scoped_session(self.scoped_session, True) as session:
            for key, value in attrs.items():
                self._set_trial_attr_without_commit(session, models.TrialUserAttributeModel, trial_id, key, value)


def write_user_attrs(storage: BaseStorage, trial_id: int, attrs: Mapping[str, Any]) -> None:
    """Write several user attributes of a running trial, in one transaction where the storage allows.

    Args:
        storage: The study's storage (Optuna's caching layer over an RDB storage, or another kind).
        trial_id: The trial's storage id.
        attrs: Key -> JSON-serializable value.
    """
    # Optuna wraps an RDB storage in its caching layer, which forwards attribute writes unchanged.
    backend = getattr(storage, "_backend", storage)
    if isinstance(backend, BatchRDBStorage):
        backend.set_trial_user_attrs(trial_id, attrs)
        return
    for key, value in attrs.items():
        storage.set_trial_user_attr(trial_id, key, value)


def set_user_attrs(trial: optuna.Trial, attrs: Mapping[str, Any]) -> None:
    """``trial.set_user_attr`` for each item, in one storage transaction where the storage allows.

    Args:
        trial: A running trial.
        attrs: Key -> JSON-serializable value.
    """
    if not attrs:
        return
    write_user_attrs(trial.storage, trial._trial_id, attrs)
    # What Trial.set_user_attr does after its write: the trial's own view shows the new values.
    trial._cached_frozen_trial.user_attrs.update(attrs)


__all__ = ["BatchRDBStorage", "set_user_attrs", "write_user_attrs"]
