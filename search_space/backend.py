"""Dimension ``backend``: which compiler runs the model; its choices are the study's backends."""

from __future__ import annotations

from collections.abc import Sequence

import optuna

from search_space.base import Choice, Dimension, SpaceContext


class BackendDimension(Dimension):
    """The first decision of every trial; the other dimensions are conditional on it."""

    name = "backend"
    order = 0

    def choices(self, backend: str, ctx: SpaceContext) -> Sequence[Choice]:
        """No per-backend parameters: the backend choice itself is :meth:`choice`."""
        return ()

    @staticmethod
    def choice(ctx: SpaceContext) -> Choice:
        """The ``backend`` parameter over the study's backends (fixed when the study is created)."""
        return Choice("backend", tuple(ctx.backends), "compiler backend")

    def suggest_backend(self, trial: optuna.trial.BaseTrial, ctx: SpaceContext) -> str:
        """Suggest the backend.

        Args:
            trial: The trial.
            ctx: The study's fixed context.

        Returns:
            The backend name.
        """
        return str(trial.suggest_categorical("backend", list(self.choice(ctx).values)))
