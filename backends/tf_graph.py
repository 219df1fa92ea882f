"""The ``tf_graph`` backend: the frozen graph rewritten by TensorFlow's Grappler, run in a session.

Options (``tf_graph/<option>``, see ``search_space/tf_grappler.py`` and ``search_space/fusion.py``),
each ``"on"`` or ``"off"`` (Grappler's default, on, first):
    remapping: The remapper's op fusions (MatMul+BiasAdd+activation into ``_FusedMatMul``, ...).
    arithmetic: The arithmetic optimizer (common subexpressions, folded transposes, ...).
    layout: The layout optimizer (NHWC/NCHW conversions).
    constant_folding: Constant folding.
    loop: The loop optimizer (loop-invariant code motion, stack push removal).
    dependency: The dependency optimizer (control edges and Identity nodes removed).

The graph is rewritten once, offline (``tf_optimizer.OptimizeGraph`` with the candidate's
``RewriterConfig``, nodes placed on the CPU so that the CPU-only fusions apply), and run in a
session with Grappler off: what is measured is exactly the emitted graph. The artifact is that
GraphDef (``tf.io.write_graph``, as the seed writes its optimized model) plus the session config
that runs it unchanged (``session_config.pb``: Grappler off). The graph keeps the test data's
dynamic shapes (shape mode ``dynamic``). TensorFlow is CPU-only here, so is this backend.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backends.base import Backend
from tuner.core.records import Built, Candidate
from tuner.core.tf_model import TFModel
from tuner.core.workload import Workload
from tuner.runtime.tf_session import SessionRunner, export_graph, load_graph, quiet_tf, session_config

#: Option name -> Grappler ``RewriterConfig`` field.
REWRITERS: dict[str, str] = {
    "remapping": "remapping",
    "arithmetic": "arithmetic_optimization",
    "layout": "layout_optimizer",
    "constant_folding": "constant_folding",
    "loop": "loop_optimization",
    "dependency": "dependency_optimization",
}
#: The device every node is placed on before the rewrite (the remapper fuses only placed CPU nodes).
CPU = "/device:CPU:0"


def rewrites_of(candidate: Candidate) -> dict[str, bool]:
    """The candidate's Grappler choices as ``{RewriterConfig field: on}`` (unset options: on, TF's default).

    Args:
        candidate: A ``tf_graph`` candidate.

    Returns:
        The rewriter settings.

    Raises:
        ValueError: For an unknown option or a value other than ``on``/``off``.
    """
    unknown = sorted(k for k in candidate.options if k.split("/", 1)[1] not in REWRITERS)
    if unknown:
        raise ValueError(f"tf_graph has no options {unknown} (it has {sorted(REWRITERS)})")
    out = {}
    for option, field in REWRITERS.items():
        value = candidate.option(option, "on")
        if value not in ("on", "off"):
            raise ValueError(f"tf_graph/{option} is {value!r}, not 'on' or 'off'")
        out[field] = value == "on"
    return out


def optimize_graph(model: TFModel, rewrites: dict[str, bool]) -> Any:
    """Run Grappler on the model's graph with these rewriters, as a session would before its first run.

    Args:
        model: The model (its outputs are kept: Grappler prunes what they do not need).
        rewrites: ``{RewriterConfig field: on}``.

    Returns:
        The rewritten ``GraphDef``.
    """
    import tensorflow as tf
    from tensorflow.python.grappler import tf_optimizer

    quiet_tf()
    graph_def = model.parse()
    for node in graph_def.node:
        node.device = node.device or CPU
    for function in graph_def.library.function:
        for node in function.node_def:
            node.device = node.device or CPU
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
        meta = tf.compat.v1.train.export_meta_graph(graph=graph)
    # Grappler keeps the nodes of the "train_op" collection: the fetches.
    meta.collection_def["train_op"].node_list.value.extend(n.split(":")[0] for n in model.outputs)
    return tf_optimizer.OptimizeGraph(session_config(rewrites), meta, verbose=False, graph_id=b"tf_graph")


class TFGraphBackend(Backend):
    """Grappler's rewriters chosen per candidate; the rewritten GraphDef is the artifact."""

    name = "tf_graph"
    frameworks = frozenset({"tf"})
    shape_modes = ("dynamic",)
    devices = frozenset({"cpu"})
    precisions = frozenset({"fp32"})
    native_kinds = frozenset({"graphdef"})

    @classmethod
    def is_available(cls, device: str) -> bool:
        """Whether TensorFlow is installed (CPU only)."""
        return super().is_available(device) and importlib.util.find_spec("tensorflow") is not None

    def native_model(self, built: Built, workload: Workload, candidate: Candidate) -> Any | None:
        """The rewritten GraphDef, when a default session runs it as measured.

        A GraphDef cannot carry its session config (Grappler off): a user's session runs Grappler
        with TF's defaults over it again. That repeats what is already done only when every
        rewriter of the candidate is on (TF's default); a candidate that turned one off is not
        given as a GraphDef.
        """
        if not all(rewrites_of(candidate).values()):
            return None
        return built.state["graph_def"]

    def compile(self, workload: Workload, candidate: Candidate) -> Built:
        """Rewrite the graph with the candidate's Grappler options and open a session on it.

        Args:
            workload: A ``tf`` workload.
            candidate: Its ``tf_graph/*`` options.

        Returns:
            The session runner; ``state["graph_def"]`` is the rewritten graph.

        Raises:
            ValueError: For a non-TF workload, a non-fp32 precision or an unknown option.
        """
        if workload.framework != "tf":
            raise ValueError(f"tf_graph takes TensorFlow workloads, not {workload.framework}")
        if candidate.precision != "fp32":
            raise ValueError(f"tf_graph runs the frozen graph in fp32, not {candidate.precision}")
        model: TFModel = workload.model
        optimized = optimize_graph(model, rewrites_of(candidate))
        # Grappler off in the session: the graph is already rewritten, and a second pass with
        # TF's defaults would undo the candidate's "off" choices.
        runner = SessionRunner(optimized, model.inputs, model.outputs, session_config(grappler=False))
        return Built(fn=runner, build_s=0.0, state={"graph_def": optimized, "runner": runner})

    def export(self, built: Built, workload: Workload, candidate: Candidate, directory: Path) -> dict[str, Any]:
        """Write the rewritten GraphDef (``model.pb``) and the session config that runs it (``session_config.pb``).

        Args:
            built: The built candidate.
            workload: The workload (its tensor names).
            candidate: The candidate.
            directory: Where to write.

        Returns:
            The artifact meta (see ``tuner.runtime.tf_session.export_graph``).
        """
        return export_graph(built.state["graph_def"], workload.model, directory, config=session_config(grappler=False))

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any], device: str) -> Callable[..., Any]:
        """Load the GraphDef into a plain TensorFlow session with its config.

        Args:
            directory: The artifact folder.
            meta: What :meth:`export` returned.
            device: ``"cpu"``.

        Returns:
            A session runner over torch tensors.
        """
        return load_graph(directory, meta)
