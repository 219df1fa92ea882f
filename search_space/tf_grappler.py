"""Dimension ``tf_grappler``: which of Grappler's graph rewriters run (``tf_graph`` backend).

Each rewriter is on or off; TensorFlow's default, on, comes first. The remapper (op fusion) is a
fusion choice and lives in ``search_space/fusion.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

from search_space.base import Choice, Dimension, SpaceContext

#: Grappler rewriters searched here (``tf_graph/<option>``) and what they do.
GRAPPLER: tuple[Choice, ...] = (
    Choice("tf_graph/arithmetic", ("on", "off"), "arithmetic optimizer: common subexpressions, folded ops"),
    Choice("tf_graph/layout", ("on", "off"), "layout optimizer: NHWC/NCHW conversions"),
    Choice("tf_graph/constant_folding", ("on", "off"), "constant folding"),
    Choice("tf_graph/loop", ("on", "off"), "loop optimizer: loop-invariant code motion"),
    Choice("tf_graph/dependency", ("on", "off"), "dependency optimizer: redundant control edges and Identities"),
)


class TfGrapplerDimension(Dimension):
    """The Grappler rewriters of ``tf_graph``."""

    name = "tf_grappler"
    order = 40

    def choices(self, backend: str, ctx: SpaceContext) -> Sequence[Choice]:
        """The rewriters, for ``tf_graph``; nothing for other backends."""
        return GRAPPLER if backend == "tf_graph" else ()
