"""Dimension ``backend``: which compiler runs the model; its choices are the study's backends."""

from __future__ import annotations

from collections.abc import Sequence

from search_space.base import Choice, Dimension, SpaceContext


class BackendDimension(Dimension):
    """The first decision of every trial; the other dimensions are conditional on it."""

    name = "backend"
    order = 0

    def choices(self, backend: str, ctx: SpaceContext) -> Sequence[Choice]:
        """No per-backend parameters: ``build_candidate`` suggests the backend itself, over ``ctx.backends``."""
        return ()
