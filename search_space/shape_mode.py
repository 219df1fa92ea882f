"""Dimension ``shape_mode``: static (compile per distinct input shape) or dynamic (symbolic shapes).

Each backend declares the modes it can compile in (``Backend.shape_modes``); the test data's own
shape mix decides which wins, recompiles included. With ``static_only`` (Blade's
``enable_static_shape_compilation_opt``) only static candidates are searched.
"""

from __future__ import annotations

from collections.abc import Sequence

from search_space.base import Choice, Dimension, SpaceContext, modes_for


class ShapeModeDimension(Dimension):
    """``<backend>/shape_mode`` over the backend's modes."""

    name = "shape_mode"
    order = 10
    field = "shape_mode"

    def choices(self, backend: str, ctx: SpaceContext) -> Sequence[Choice]:
        """One choice over the backend's shape modes."""
        return (Choice(f"{backend}/shape_mode", modes_for(backend, ctx), "static or dynamic shapes"),)
