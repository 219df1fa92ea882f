"""The ``tf_xla`` backend: TensorFlow with XLA, compiled once per distinct input shape (static mode).

Option ``tf_xla/clustering`` (see ``search_space/fusion.py``), how ops are grouped into XLA clusters:
    jit_compile: The whole graph is one XLA computation: the frozen graph, pruned to its inputs
        and outputs (its placeholders become arguments, which XLA needs), inside
        ``tf.function(jit_compile=True)``. XLA compiles it once per input shape. Needs functional
        control flow: a TF1 graph's Enter/Exit loop frames are refused by XLA (a build failure).
    auto<N>: XLA auto-clustering in a session (``global_jit_level`` ON_1 with
        ``--tf_xla_cpu_global_jit``), where TF groups compilable ops into clusters and compiles
        those of at least N ops (``--tf_xla_min_cluster_size``), once per shape each; the rest of
        the graph runs in TensorFlow.

Artifacts, which plain TensorFlow loads and which keep the XLA compilation:
    jit_compile: a SavedModel (``saved_model/``) whose ``serve`` function (and ``serving_default``
        signature) has ``jit_compile=True``, with the varying dims of the test data left unknown.
    auto<N>: the frozen GraphDef (``model.pb``) with a session config that turns auto-clustering
        on (``session_config.pb``); the two process-wide XLA flags it needs are in ``artifact.json``
        (``tf_xla_flags``: set ``TF_XLA_FLAGS`` to them before TF starts, or let ``load`` set them).

Either way the build checks that XLA really compiled something (a build that silently runs
without XLA fails), and the first call per shape (the compile) is done at build time.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from backends.base import Backend
from tuner.core.records import Built, Candidate
from tuner.core.tf_model import TFModel
from tuner.core.workload import Workload
from tuner.runtime.tf_session import (
    FunctionRunner,
    SessionRunner,
    export_graph,
    load_graph,
    pruned_function,
    quiet_tf,
    session_config,
    xla_ops,
)

#: The clustering choices (``tf_xla/clustering``).
JIT_COMPILE = "jit_compile"
#: TF's default minimum cluster size (restored after a build).
DEFAULT_MIN_CLUSTER_SIZE = 4
SAVED_MODEL = "saved_model"
SAVED_MODEL_FORMAT = "tf-saved-model-xla"


def min_cluster_size(candidate: Candidate) -> int | None:
    """The candidate's auto-clustering minimum cluster size; None for whole-graph ``jit_compile``.

    Raises:
        ValueError: For an unknown option or value.
    """
    unknown = sorted(k for k in candidate.options if k != "tf_xla/clustering")
    if unknown:
        raise ValueError(f"tf_xla has no options {unknown} (it has ['clustering'])")
    value = str(candidate.option("clustering", JIT_COMPILE))
    if value == JIT_COMPILE:
        return None
    if value.startswith("auto") and value[4:].isdigit() and int(value[4:]) > 0:
        return int(value[4:])
    raise ValueError(f"tf_xla/clustering {value!r} is not 'jit_compile' or 'auto<N>'")


@contextlib.contextmanager
def xla_cpu_flags(min_size: int) -> Iterator[None]:
    """XLA auto-clustering's minimum cluster size, for the sessions made inside.

    The flag is process-wide (TF reads it when a session builds its executors, which
    ``SessionRunner`` does at once); it is put back to TF's default on exit, and sessions made
    inside keep their clusters. CPU auto-clustering itself is allowed by
    :func:`tuner.runtime.tf_session.quiet_tf`, before the process's first session.

    Args:
        min_size: ``--tf_xla_min_cluster_size``.

    Yields:
        Nothing.
    """
    from tensorflow.python.client import pywrap_tf_session

    quiet_tf()
    pywrap_tf_session.TF_SetXlaMinClusterSize(min_size)
    try:
        yield
    finally:
        pywrap_tf_session.TF_SetXlaMinClusterSize(DEFAULT_MIN_CLUSTER_SIZE)


def _specs(workload: Workload) -> list[Any]:
    """Input signature: the test data's dtypes, its varying dims unknown (XLA compiles per concrete shape)."""
    import tensorflow as tf

    specs = []
    for j, (name, first) in enumerate(zip(workload.model.input_ops, workload.samples[0], strict=True)):
        varying = workload.varying_dims()[j]
        shape = [None if d in varying else int(first.shape[d]) for d in range(first.dim())]
        specs.append(tf.TensorSpec(shape, tf.as_dtype(first.numpy().dtype), name=name))
    return specs


def xla_module(model: TFModel, specs: list[Any]) -> Any:
    """A ``tf.Module`` whose ``serve`` runs the pruned graph under ``jit_compile=True``.

    Args:
        model: The model.
        specs: The input signature.

    Returns:
        The module (saveable with ``tf.saved_model.save``).
    """
    import tensorflow as tf

    pruned = pruned_function(model)

    class XlaGraph(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.serve = tf.function(lambda *args: pruned(*args), jit_compile=True, input_signature=specs)

    return XlaGraph()


class TFXlaBackend(Backend):
    """XLA on the frozen graph: whole-graph jit_compile or auto-clustering by minimum cluster size."""

    name = "tf_xla"
    frameworks = frozenset({"tf"})
    shape_modes = ("static",)
    devices = frozenset({"cpu"})
    precisions = frozenset({"fp32"})

    @classmethod
    def is_available(cls, device: str) -> bool:
        """Whether TensorFlow is installed (CPU only)."""
        return super().is_available(device) and importlib.util.find_spec("tensorflow") is not None

    def compile(self, workload: Workload, candidate: Candidate) -> Built:
        """Build the XLA runner and compile it for every distinct input shape of the test data.

        Args:
            workload: A ``tf`` workload.
            candidate: Its ``tf_xla/clustering``.

        Returns:
            The runner; ``state`` holds what :meth:`export` writes.

        Raises:
            ValueError: For a non-TF workload, a non-fp32 precision, an unknown option, or an
                auto-clustering that formed no XLA cluster.
            Exception: What XLA raises for a graph it cannot compile.
        """
        if workload.framework != "tf":
            raise ValueError(f"tf_xla takes TensorFlow workloads, not {workload.framework}")
        if candidate.precision != "fp32":
            raise ValueError(f"tf_xla runs the frozen graph in fp32, not {candidate.precision}")
        quiet_tf()
        model: TFModel = workload.model
        size = min_cluster_size(candidate)
        firsts = [next(s for i, s in enumerate(workload.samples) if workload.shape_key(i) == key)
                  for key in workload.shape_counts()]
        if size is None:
            module = xla_module(model, _specs(workload))
            fn: Callable[..., Any] = FunctionRunner(module.serve)
            for sample in firsts:
                fn(*sample)
            return Built(fn=fn, build_s=0.0, state={"module": module})
        with xla_cpu_flags(size):
            runner = SessionRunner(model.parse(), model.inputs, model.outputs, session_config(autocluster=True))
            launched = xla_ops(runner.run_traced(*firsts[0]))
            for sample in firsts:
                runner(*sample)
        if not launched:
            raise ValueError(f"XLA auto-clustering formed no cluster of at least {size} ops: nothing is compiled")
        return Built(fn=runner, build_s=0.0, state={"runner": runner, "min_cluster_size": size,
                                                    "xla_launches": len(launched)})

    def export(self, built: Built, workload: Workload, candidate: Candidate, directory: Path) -> dict[str, Any]:
        """Write the SavedModel (jit_compile) or the GraphDef with its auto-clustering config.

        Args:
            built: The built candidate.
            workload: The workload (its graph and tensor names).
            candidate: The candidate.
            directory: Where to write.

        Returns:
            The artifact meta.
        """
        import tensorflow as tf

        if "module" in built.state:
            module = built.state["module"]
            path = directory / SAVED_MODEL
            tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
            return {"format": SAVED_MODEL_FORMAT, "dir": SAVED_MODEL, "function": "serve",
                    "inputs": list(workload.model.inputs), "outputs": list(workload.model.outputs)}
        size = int(built.state["min_cluster_size"])
        meta = export_graph(workload.model.parse(), workload.model, directory, config=session_config(autocluster=True))
        meta["tf_xla_flags"] = f"--tf_xla_cpu_global_jit --tf_xla_min_cluster_size={size}"
        meta["min_cluster_size"] = size
        return meta

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any], device: str) -> Callable[..., Any]:
        """Load with plain TensorFlow: the SavedModel's jit_compile function, or the auto-clustered session.

        Args:
            directory: The artifact folder.
            meta: What :meth:`export` returned.
            device: ``"cpu"``.

        Returns:
            A runner over torch tensors.
        """
        import tensorflow as tf

        quiet_tf()
        if meta.get("format") == SAVED_MODEL_FORMAT:
            loaded = tf.saved_model.load(str(directory / meta["dir"]))
            return FunctionRunner(getattr(loaded, meta["function"]))
        with xla_cpu_flags(int(meta["min_cluster_size"])):
            runner = load_graph(directory, meta)
        return runner
