"""TensorFlow models as workloads: a frozen GraphDef with named input and output tensors.

A TF model arrives as a ``tf.compat.v1.GraphDef`` object, a frozen ``.pb`` file, or a SavedModel
directory (one of its signatures, frozen here into a GraphDef). Whatever the source, the tuner
keeps a :class:`TFModel`: the serialized frozen graph and the tensor names of its inputs and
outputs, in the order the test samples and the reference outputs use. Test data is what the seed
passes to ``blade.optimize``: feed dicts ``{placeholder name: ndarray}`` (keys str or bytes, with
or without ``:0``), converted here to tuples of CPU tensors in input order, so that the rest of
the tuner (measurement, correctness) is framework-agnostic.

TensorFlow is imported inside functions: without it ``import tuner`` still works.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from tuner.errors import UserError

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


def _names(values: Sequence[str] | str | None, what: str) -> tuple[str, ...]:
    if values is None:
        raise UserError(f"a TensorFlow graph needs its {what} tensor names",
                        f"pass --{what} a,b (Python: {what}=['a', 'b'])")
    items = [v for v in (values.split(",") if isinstance(values, str) else values)]
    names = tuple(tensor_name(v.strip() if isinstance(v, str) else v) for v in items if str(v).strip())
    if not names:
        raise UserError(f"the {what} tensor names are empty", f"name at least one tensor in --{what}")
    return names


def is_tf_model(model: Any) -> bool:
    """Whether ``model`` is a TF model the tuner takes: a GraphDef, a ``.pb`` file or a SavedModel dir."""
    if isinstance(model, TFModel):
        return True
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        return path.endswith((".pb", ".pbtxt")) or os.path.isfile(os.path.join(path, "saved_model.pb"))
    return type(model).__name__ == "GraphDef" and hasattr(model, "node")


def load_tf_model(model: Any, inputs: Sequence[str] | str | None, outputs: Sequence[str] | str | None,
                  *, signature: str = "serving_default") -> TFModel:
    """Read a TF model and check its input and output names.

    Args:
        model: A ``tf.compat.v1.GraphDef``, a frozen ``.pb`` path, a SavedModel directory, or a
            :class:`TFModel` (returned as is).
        inputs: Input names (placeholders of a GraphDef; argument names of a SavedModel
            signature, optional there); ``"a,b"`` or a list.
        outputs: Output names (tensors of a GraphDef; output keys of a SavedModel signature,
            optional there).
        signature: The SavedModel signature to freeze.

    Returns:
        The model.

    Raises:
        UserError: When the file is missing or unreadable, or a name is not in the graph.
    """
    if isinstance(model, TFModel):
        return model
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if os.path.isdir(path):
            return _load_saved_model(path, inputs, outputs, signature)
        if not os.path.isfile(path):
            raise UserError(f"model file {path} does not exist", "pass an existing frozen .pb or SavedModel directory")
        tf = import_tf()

        graph_def = tf.compat.v1.GraphDef()
        try:
            with open(path, "rb") as f:
                data = f.read()
            if path.endswith(".pbtxt"):
                from google.protobuf import text_format

                text_format.Parse(data.decode(), graph_def)
            else:
                graph_def.ParseFromString(data)
        except Exception as e:  # noqa: BLE001 - any failure to parse means a bad file
            raise UserError(f"model file {path} is not a readable GraphDef ({type(e).__name__})",
                            "write it with tf.io.write_graph(graph_def, dir, 'frozen.pb', as_text=False)") from None
        if not graph_def.node:
            raise UserError(f"model file {path} holds an empty GraphDef", "pass a frozen graph with its nodes")
        return _checked(graph_def, inputs, outputs, path)
    if type(model).__name__ == "GraphDef":
        return _checked(model, inputs, outputs, "GraphDef object")
    raise UserError(f"{type(model).__name__} is not a TensorFlow model the tuner takes",
                    "pass a tf.compat.v1.GraphDef, a frozen .pb file or a SavedModel directory")


def _checked(graph_def: Any, inputs: Sequence[str] | str | None, outputs: Sequence[str] | str | None,
             source: str, signature: str | None = None) -> TFModel:
    """A TFModel, after checking that every named tensor exists (one-line errors that list the candidates)."""
    ins, outs = _names(inputs, "inputs"), _names(outputs, "outputs")
    nodes = {n.name: n for n in graph_def.node}
    placeholders = [n.name for n in graph_def.node if n.op == "Placeholder"]
    for name in ins:
        op = name.split(":")[0]
        if op not in nodes:
            raise UserError(f"input {op!r} is not a node of the graph {source}",
                            f"name its placeholders in --inputs (the graph has: {', '.join(placeholders) or 'none'})")
    for name in outs:
        op = name.split(":")[0]
        if op not in nodes:
            hint = ", ".join(n.name for n in graph_def.node[-5:])
            raise UserError(f"output {op!r} is not a node of the graph {source}",
                            f"name existing tensors in --outputs (its last nodes are: {hint})")
    return TFModel(graph_def=graph_def.SerializeToString(deterministic=True), inputs=ins, outputs=outs,
                   source=source, signature=signature)


def _load_saved_model(path: str, inputs: Sequence[str] | str | None, outputs: Sequence[str] | str | None,
                      signature: str) -> TFModel:
    """Freeze a SavedModel signature into a GraphDef and map its argument and output keys to tensors."""
    tf = import_tf()
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    try:
        loaded = tf.saved_model.load(path)
    except Exception as e:  # noqa: BLE001
        raise UserError(f"{path} is not a readable SavedModel ({type(e).__name__})",
                        "save it with tf.saved_model.save(module, path)") from None
    if signature not in loaded.signatures:
        raise UserError(f"SavedModel {path} has no signature {signature!r}",
                        f"pick one of: {', '.join(loaded.signatures) or '(none: save with signatures=...)'}")
    fn = loaded.signatures[signature]
    frozen = convert_variables_to_constants_v2(fn)
    graph_def = frozen.graph.as_graph_def()
    # Signature functions take keyword arguments; their placeholders are named after them.
    arg_specs = fn.structured_input_signature[1]
    # Their flat inputs follow the sorted argument names (nest.flatten of a dict).
    arg_tensors = dict(zip(sorted(arg_specs), [t.name for t in frozen.inputs], strict=True))
    out_keys = sorted(fn.structured_outputs)
    out_tensors = dict(zip(out_keys, [t.name for t in frozen.outputs], strict=False))
    want_in = [tensor_name(n).split(":")[0] for n in _names(inputs, "inputs")] if inputs else list(arg_tensors)
    want_out = [tensor_name(n).split(":")[0] for n in _names(outputs, "outputs")] if outputs else out_keys
    for name in want_in:
        if name not in arg_tensors:
            raise UserError(f"input {name!r} is not an argument of signature {signature!r} of {path}",
                            f"pass --inputs from: {', '.join(arg_tensors)}")
    for name in want_out:
        if name not in out_tensors:
            raise UserError(f"output {name!r} is not an output of signature {signature!r} of {path}",
                            f"pass --outputs from: {', '.join(out_keys)}")
    return TFModel(graph_def=graph_def.SerializeToString(deterministic=True),
                   inputs=tuple(tensor_name(arg_tensors[n]) for n in want_in),
                   outputs=tuple(tensor_name(out_tensors[n]) for n in want_out), source=path, signature=signature)


def samples_from_feeds(model: TFModel, feeds: Sequence[Mapping[Any, Any]], what: str) -> list[tuple[torch.Tensor, ...]]:
    """Feed dicts as tuples of CPU tensors in the model's input order.

    Args:
        model: The model (its input names).
        feeds: ``{name: array}`` per sample; keys str or bytes, with or without ``:0``. For a
            SavedModel, keys may also be the signature's argument names.
        what: How to name the data in messages.

    Returns:
        One tuple per sample.

    Raises:
        UserError: When a feed dict lacks an input, names an unknown one, or is not a dict.
    """
    if isinstance(feeds, Mapping):
        feeds = [feeds]
    if not isinstance(feeds, Sequence) or not feeds:
        raise UserError(f"{what} is not a non-empty list of feed dicts",
                        "give [{'input_name': array, ...}, ...] (one dict per sample)")
    samples = []
    for i, feed in enumerate(feeds):
        if not isinstance(feed, Mapping):
            raise UserError(f"sample {i} of {what} is a {type(feed).__name__}, not a feed dict",
                            "make every sample a dict {placeholder_name: array}")
        by_name = {tensor_name(k): v for k, v in feed.items()}
        unknown = sorted(set(by_name) - set(model.inputs))
        if unknown:
            raise UserError(f"sample {i} of {what} feeds {', '.join(unknown)}, which is not among the inputs "
                            f"{', '.join(model.inputs)}", "feed exactly the tensors named in --inputs")
        missing = [n for n in model.inputs if n not in by_name]
        if missing:
            raise UserError(f"sample {i} of {what} has no value for input {', '.join(missing)}",
                            "feed every tensor named in --inputs")
        # from_numpy shares the array's memory (no copy) once it is contiguous.
        samples.append(tuple(torch.from_numpy(np.ascontiguousarray(np.asarray(by_name[n]))) for n in model.inputs))
    return samples


def load_feed_dicts(path: str) -> list[dict[Any, Any]]:
    """Read feed dicts from an ``.npy`` (a pickled dict or list of dicts, as the seed's test_bc4.npy) or ``.npz``.

    An ``.npz`` holds either one sample (arrays named after the inputs) or pickled dicts.

    Args:
        path: The file.

    Returns:
        The feed dicts.

    Raises:
        UserError: When the file is missing, unreadable or holds no feed dicts.
    """
    if not os.path.isfile(path):
        raise UserError(f"test data file {path} does not exist", "pass an existing file to --test-data")
    try:
        # encoding='bytes' as in the seed: Python 2 pickles give bytes keys, which are accepted.
        loaded = np.load(path, allow_pickle=True, encoding="bytes")
    except Exception as e:  # noqa: BLE001
        raise UserError(f"test data file {path} is not a readable .npy/.npz ({type(e).__name__})",
                        "write it with np.save(path, feed_dict) or np.savez(path, **feed_dict)") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            arrays = {k: loaded[k] for k in loaded.files}
        if all(a.dtype != object for a in arrays.values()):
            return [arrays]
        items: list[Any] = [a for a in arrays.values()]
    else:
        items = [loaded]
    feeds: list[dict[Any, Any]] = []
    for item in items:
        value = item.item() if isinstance(item, np.ndarray) and item.dtype == object and item.ndim == 0 else item
        if isinstance(value, np.ndarray) and value.dtype == object:
            value = list(value.ravel())
        for feed in value if isinstance(value, (list, tuple)) else [value]:
            if not isinstance(feed, Mapping):
                raise UserError(f"test data file {path} holds a {type(feed).__name__}, not feed dicts",
                                "save a dict {placeholder_name: array} or a list of such dicts")
            feeds.append(dict(feed))
    if not feeds:
        raise UserError(f"test data file {path} holds no feed dicts", "save at least one sample")
    return feeds


__all__ = ["FRAMEWORK", "TFModel", "is_tf_model", "load_feed_dicts", "load_tf_model", "samples_from_feeds",
           "tensor_name"]
