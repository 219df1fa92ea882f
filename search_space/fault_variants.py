"""Dimension ``test_variant``: the one option of the test-only backends in :mod:`backends.faulty`."""

from __future__ import annotations

from collections.abc import Sequence

from search_space.base import Choice, Dimension, SpaceContext

#: Variants per test-only backend.
VARIANTS = {"test_faulty": 10, "test_cheap": 400, "test_lucky": 4, "test_slow": 2, "test_picky": 20}


class FaultVariantDimension(Dimension):
    """Which variant of a test-only backend runs (it decides its fault or its speed)."""

    name = "test_variant"
    order = 90

    def choices(self, backend: str, ctx: SpaceContext) -> Sequence[Choice]:
        """``<backend>/variant`` for the test-only backends; nothing for real ones."""
        if backend in VARIANTS:
            return (Choice(f"{backend}/variant", tuple(range(VARIANTS[backend])), "test-only behaviour"),)
        return ()
