"""A TensorFlow model as the tuner keeps it: a frozen GraphDef with named input and output tensors.

Whatever the source (a ``tf.compat.v1.GraphDef`` object, a frozen ``.pb`` file, a SavedModel
signature), the tuner keeps a :class:`TFModel`: the serialized frozen graph and the tensor names
of its inputs and outputs, in the order the test samples and the reference outputs use. Reading
one is :mod:`tuner.workloads.tf_graphs`' job.

TensorFlow is imported inside functions: without it ``import tuner`` still works.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
from typing import Any

#: What the tuner calls the TF framework (``Workload.framework``).
FRAMEWORK = "tf"


def import_tf() -> Any:
    """TensorFlow, imported with its native start-up lines kept off stderr.

    TF 2.21 writes absl and oneDNN notices to file descriptor 2 while it loads, before
    ``TF_CPP_MIN_LOG_LEVEL`` applies, so a one-line user error (a wrong tensor name, say) would
    come with five lines of TF chatter. Later TF notices below warnings are turned off too, unless
    the user set ``TF_CPP_MIN_LOG_LEVEL``. Import errors are Python exceptions and still surface.

    Returns:
        The ``tensorflow`` module.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            import tensorflow as tf
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return tf


@dataclasses.dataclass(frozen=True)
class TFModel:
    """A frozen TensorFlow graph with its input and output tensors.

    Attributes:
        graph_def: The serialized frozen ``GraphDef`` (weights as constants).
        inputs: Input tensor names (``"name:0"``), in the order of each test sample's tensors.
        outputs: Output tensor names, in the order of the reference outputs.
        source: Where it came from (a path, or ``"GraphDef object"``).
        signature: For a SavedModel, the signature that was frozen; else None.
        onnx: The graph's ONNX export (tf2onnx), when it was converted ahead of time: a host
            without TensorFlow (the GPU machine) then runs the ONNX-based backends on it.
    """

    graph_def: bytes
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    source: str
    signature: str | None = None
    onnx: bytes | None = dataclasses.field(default=None, repr=False)

    def parse(self) -> Any:
        """A fresh ``tf.compat.v1.GraphDef`` parsed from :attr:`graph_def`."""
        tf = import_tf()

        graph_def = tf.compat.v1.GraphDef()
        graph_def.ParseFromString(self.graph_def)
        return graph_def

    @property
    def input_ops(self) -> tuple[str, ...]:
        """The input op (placeholder) names, without the output index."""
        return tuple(n.split(":")[0] for n in self.inputs)

    def digest(self) -> str:
        """A digest of the graph and of the tensor names (part of the workload's fingerprint)."""
        h = hashlib.sha256(self.graph_def)
        h.update(repr((self.inputs, self.outputs)).encode())
        return h.hexdigest()


def tensor_name(name: str | bytes) -> str:
    """``name`` as a tensor name: bytes decoded, ``:0`` added to an op name.

    Args:
        name: ``"x"``, ``"x:0"`` or ``b"x"`` (``np.load(..., encoding='bytes')`` gives bytes keys).

    Returns:
        ``"x:0"``.
    """
    text = name.decode() if isinstance(name, bytes) else str(name)
    op, _, index = text.partition(":")
    return f"{op}:{index or 0}"


__all__ = ["FRAMEWORK", "TFModel", "import_tf", "tensor_name"]
