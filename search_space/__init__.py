"""The search space over compilation strategies: one module per dimension.

``build_candidate(trial, ctx)`` decodes a trial into a :class:`~tuner.core.records.Candidate`; the
same code rebuilds a stored config from ``optuna.trial.FixedTrial(params)``.
"""

from __future__ import annotations

import importlib
import itertools
import pkgutil
from collections.abc import Iterator
from typing import Any

import optuna

from search_space.base import Choice, Dimension, SpaceContext, modes_for
from search_space.fp32_fallback import refused_shares
from tuner.core.records import Candidate

_loaded = False


def dimensions() -> list[Dimension]:
    """Every registered dimension, in suggestion order (modules of this package are imported once)."""
    global _loaded
    if not _loaded:
        for info in pkgutil.iter_modules(__path__):
            if info.name != "base":
                importlib.import_module(f"{__name__}.{info.name}")
        _loaded = True
    return [cls() for cls in sorted(Dimension._registry.values(), key=lambda c: (c.order, c.name))]


def build_candidate(trial: optuna.trial.BaseTrial, ctx: SpaceContext) -> Candidate:
    """Decode a trial into a candidate.

    Args:
        trial: A live trial, or ``optuna.trial.FixedTrial`` with stored params.
        ctx: The study's fixed context.

    Returns:
        The candidate.
    """
    backend = str(trial.suggest_categorical("backend", list(ctx.backends)))
    fields: dict[str, Any] = {"shape_mode": "dynamic", "precision": "fp32"}
    options: dict[str, Any] = {}
    for dim in dimensions():
        if dim.name == "backend":
            continue
        values = dim.suggest(trial, backend, ctx)
        if dim.field is not None:
            # Field dimensions hold one choice, "<backend>/<field>".
            for value in values.values():
                fields[dim.field] = value
        else:
            options.update(values)
    return Candidate(backend=backend, shape_mode=fields["shape_mode"], precision=fields["precision"],
                     options=options)


def _points(backend: str, dims: list[Dimension], ctx: SpaceContext, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if not dims:
        yield params
        return
    dim, rest = dims[0], dims[1:]
    if not dim.asked(backend, params):
        yield from _points(backend, rest, ctx, params)
        return
    choices = [c for c in dim.offered(backend, ctx) if len(c.values) > 1]
    for values in itertools.product(*(c.values for c in choices)):
        yield from _points(backend, rest, ctx, {**params, **{c.key: v for c, v in zip(choices, values, strict=True)}})


def all_params(ctx: SpaceContext) -> Iterator[dict[str, Any]]:
    """Every point of the space as the trial params that select it (single-valued choices omitted).

    A dimension that is not asked after the parameters before it (:meth:`Dimension.asked`) adds
    nothing to that point.

    Args:
        ctx: The study's fixed context.

    Yields:
        ``{"backend": ..., "<backend>/<option>": ...}`` for each distinct candidate.
    """
    dims = [dim for dim in dimensions() if dim.name != "backend"]
    for backend in ctx.backends:
        yield from _points(backend, dims, ctx, {"backend": backend})


def space_size(ctx: SpaceContext) -> int:
    """How many distinct candidates the space holds (for the cache and progress display)."""
    return sum(1 for _ in all_params(ctx))


__all__ = ["Choice", "Dimension", "SpaceContext", "all_params", "build_candidate", "dimensions", "modes_for",
           "refused_shares", "space_size"]
