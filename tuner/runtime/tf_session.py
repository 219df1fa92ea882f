"""Running TensorFlow graphs on torch tensors: sessions, pruned functions, ONNX export.

Shared by the TF backends (``eager`` on TF workloads, ``tf_graph``, ``tf_xla``) and the ONNX-based
ones (``onnxruntime``, ``tvm``) that take TF workloads through tf2onnx. Every runner takes one test
sample's torch tensors (CPU) and returns the outputs as a tuple of torch tensors, in the model's
output order, so that measurement and correctness checks stay framework-agnostic.

This module defines no backend; importing it imports no framework (TensorFlow is imported inside
the functions).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from tuner.core.tf_model import TFModel

#: The ONNX opset of the tf2onnx export (ONNX Runtime 1.2x and TVM 0.27's importer both take it).
ONNX_OPSET = 17


_initialized = False


def quiet_tf() -> None:
    """Prepare TensorFlow for the tuner: its Python logger to errors, and XLA's CPU auto-clustering allowed.

    TF decides once per process, when it first creates its devices, whether XLA may auto-cluster
    CPU ops (``--tf_xla_cpu_global_jit``); set later, the flag has no effect (seen with TF 2.21:
    no cluster forms). So it is set here, before the first session of the tuner. It changes
    nothing for sessions that leave ``global_jit_level`` off, which is TF's default: only the
    ``tf_xla`` auto-clustering candidates turn it on.
    """
    global _initialized
    from tuner.core.tf_model import import_tf

    # The one import path of TensorFlow: its start-up lines stay off stderr in every process.
    tf = import_tf()
    if not _initialized:
        from tensorflow.python.client import pywrap_tf_session

        tf.get_logger().setLevel("ERROR")
        pywrap_tf_session.TF_SetTfXlaCpuGlobalJit(True)
        _initialized = True


def _to_torch(values: Sequence[Any]) -> tuple[torch.Tensor, ...]:
    # np.asarray: a scalar fetch may come back as a NumPy scalar; from_numpy needs an array.
    return tuple(torch.from_numpy(np.array(v, copy=False) if isinstance(v, np.ndarray) else np.asarray(v))
                 for v in values)


def session_config(rewrites: dict[str, bool] | None = None, *, grappler: bool = True,
                   autocluster: bool = False) -> Any:
    """A ``tf.compat.v1.ConfigProto`` for a session.

    Args:
        rewrites: Grappler rewriters to turn on (True) or off (False), by ``RewriterConfig`` field
            name (``remapping``, ``arithmetic_optimization``, ...); unnamed ones keep TF's default.
        grappler: False turns Grappler off entirely (for a graph Grappler already rewrote).
        autocluster: Turn XLA auto-clustering on (``global_jit_level`` ON_1).

    Returns:
        The config.
    """
    from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2

    config = config_pb2.ConfigProto()
    options = config.graph_options.rewrite_options
    if not grappler:
        options.disable_meta_optimizer = True
    for field, on in (rewrites or {}).items():
        setattr(options, field, rewriter_config_pb2.RewriterConfig.ON if on else rewriter_config_pb2.RewriterConfig.OFF)
    if autocluster:
        config.graph_options.optimizer_options.global_jit_level = config_pb2.OptimizerOptions.ON_1
    return config


class SessionRunner:
    """Runs a GraphDef in a ``tf.compat.v1.Session``, as a TF1 user deploys a frozen graph.

    Args:
        graph_def: The graph (a ``GraphDef``).
        inputs: Input tensor names, in sample order.
        outputs: Output tensor names.
        config: The session's ``ConfigProto`` (None: TF's defaults).
    """

    def __init__(self, graph_def: Any, inputs: Sequence[str], outputs: Sequence[str], config: Any = None) -> None:
        import tensorflow as tf

        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
        self.session = tf.compat.v1.Session(graph=self.graph, config=config)
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        # A callable skips the per-call parsing of fetches and feeds that Session.run does.
        self._call = self.session.make_callable(list(self.outputs), feed_list=list(self.inputs))

    def __call__(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Run the graph on one sample.

        Args:
            *args: The input tensors, in the model's input order.

        Returns:
            The outputs.
        """
        return _to_torch(self._call(*(a.detach().cpu().numpy() for a in args)))

    def run_traced(self, *args: torch.Tensor) -> Any:
        """Run once keeping the partition graphs (what the runtime really executed, XLA ops included).

        Args:
            *args: The input tensors.

        Returns:
            The ``RunMetadata``.
        """
        import tensorflow as tf

        metadata = tf.compat.v1.RunMetadata()
        feed = {name: a.detach().cpu().numpy() for name, a in zip(self.inputs, args, strict=True)}
        self.session.run(list(self.outputs), feed, options=tf.compat.v1.RunOptions(output_partition_graphs=True),
                         run_metadata=metadata)
        return metadata

    def close(self) -> None:
        """Release the session."""
        self.session.close()


def plain_runner(model: TFModel) -> SessionRunner:
    """Plain TensorFlow on the original graph: a session with TF's default config (the baseline)."""
    quiet_tf()
    return SessionRunner(model.parse(), model.inputs, model.outputs)


def xla_ops(metadata: Any) -> list[str]:
    """The XLA launch ops a run executed (``_XlaRun`` / ``XlaLaunch``), from its partition graphs."""
    return [n.op for g in metadata.partition_graphs for n in g.node if n.op in ("_XlaRun", "XlaLaunch")]


def pruned_function(model: TFModel) -> Any:
    """The graph as a TF2 ConcreteFunction from the input tensors to the outputs.

    The GraphDef is imported inside ``wrap_function`` and pruned to its inputs and outputs, so
    that its placeholders become the function's arguments (XLA cannot compile a Placeholder).

    Args:
        model: The model.

    Returns:
        A ``ConcreteFunction`` taking the inputs positionally and returning a list of outputs.
    """
    import tensorflow as tf

    quiet_tf()
    graph_def = model.parse()

    def imported() -> None:
        tf.compat.v1.import_graph_def(graph_def, name="")

    wrapped = tf.compat.v1.wrap_function(imported, [])
    graph = wrapped.graph
    return wrapped.prune([graph.get_tensor_by_name(n) for n in model.inputs],
                         [graph.get_tensor_by_name(n) for n in model.outputs])


class FunctionRunner:
    """Runs a ``tf.function`` (or a loaded SavedModel function) on torch tensors.

    Args:
        fn: Takes the inputs positionally, returns a list or tuple of output tensors.
    """

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def __call__(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Run on one sample; outputs come back as torch tensors (a copy out of TF's buffers)."""
        import tensorflow as tf

        out = self.fn(*(tf.convert_to_tensor(a.detach().cpu().numpy()) for a in args))
        if isinstance(out, dict):
            out = [out[k] for k in sorted(out)]
        return _to_torch([o.numpy() for o in (out if isinstance(out, (list, tuple)) else [out])])


@functools.lru_cache(maxsize=4)
def _onnx_bytes(graph_def: bytes, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> bytes:
    import tensorflow as tf
    import tf2onnx

    quiet_tf()
    parsed = tf.compat.v1.GraphDef()
    parsed.ParseFromString(graph_def)
    proto, _ = tf2onnx.convert.from_graph_def(parsed, input_names=list(inputs), output_names=list(outputs),
                                              opset=ONNX_OPSET)
    data: bytes = proto.SerializeToString()
    return data


def to_onnx(model: TFModel) -> bytes:
    """The model as a serialized ONNX ``ModelProto`` (tf2onnx; converted once per model and process).

    A model that carries its export already (:attr:`TFModel.onnx`, converted on a host with
    TensorFlow) is not converted again, so that this works without TensorFlow.

    Its graph inputs and outputs keep the TF tensor names (``"name:0"``), in the model's order;
    dims TF leaves unknown stay symbolic.

    Args:
        model: The model.

    Returns:
        The ONNX bytes.

    Raises:
        Exception: Whatever tf2onnx raises (an op it cannot convert, say).
    """
    if model.onnx is not None:
        return model.onnx
    return _onnx_bytes(model.graph_def, model.inputs, model.outputs)


#: Artifact format of a GraphDef written with ``tf.io.write_graph`` (plus, optionally, a session config).
GRAPHDEF_FORMAT = "tf-graphdef"


def export_graph(graph_def: Any, model: TFModel, directory: Any, *, config: Any = None,
                 file: str = "model.pb") -> dict[str, Any]:
    """Write a GraphDef as the seed does (``tf.io.write_graph``), and the session config to run it with.

    Args:
        graph_def: The graph to write.
        model: The model (its input and output tensor names).
        directory: The artifact folder.
        config: The session ``ConfigProto`` that reproduces the measured run (None: TF's default).
        file: The graph's file name.

    Returns:
        The artifact meta: format, file, inputs, outputs and the config's file (or None).
    """
    import tensorflow as tf

    tf.io.write_graph(graph_def, str(directory), file, as_text=False)
    config_file = None
    if config is not None:
        config_file = "session_config.pb"
        (directory / config_file).write_bytes(config.SerializeToString())
    return {"format": GRAPHDEF_FORMAT, "file": file, "inputs": list(model.inputs), "outputs": list(model.outputs),
            "session_config": config_file}


def load_graph(directory: Any, meta: dict[str, Any]) -> SessionRunner:
    """Load what :func:`export_graph` wrote into a session (plain TensorFlow, no tuner code in the graph).

    Args:
        directory: The artifact folder.
        meta: What :func:`export_graph` returned.

    Returns:
        The runner.

    Raises:
        ValueError: For another artifact format.
    """
    import tensorflow as tf
    from tensorflow.core.protobuf import config_pb2

    if meta.get("format") != GRAPHDEF_FORMAT:
        raise ValueError(f"artifact format {meta.get('format')!r} is not {GRAPHDEF_FORMAT!r}")
    quiet_tf()
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString((directory / meta["file"]).read_bytes())
    config = None
    if meta.get("session_config"):
        config = config_pb2.ConfigProto()
        config.ParseFromString((directory / meta["session_config"]).read_bytes())
    return SessionRunner(graph_def, meta["inputs"], meta["outputs"], config)


__all__ = ["GRAPHDEF_FORMAT", "ONNX_OPSET", "FunctionRunner", "SessionRunner", "export_graph", "load_graph",
           "plain_runner", "pruned_function", "quiet_tf", "session_config", "to_onnx", "xla_ops"]
