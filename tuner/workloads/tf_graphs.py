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

import hashlib
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from tuner.core.errors import UserError
from tuner.core.tf_model import FRAMEWORK, TFModel, import_tf, tensor_name
from tuner.core.workload import Workload
from tuner.runtime.tf_session import plain_runner
from tuner.workloads.samples import as_samples


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


def make_tf_workload(model: Any, test_data: Sequence[Any], device: str, *, name: str,
                      inputs: Sequence[str] | str | None, outputs: Sequence[str] | str | None) -> Workload:
    """A ``"tf"`` workload: the frozen graph, its feed dicts as tensors, plain TensorFlow's outputs.

    Args:
        model: GraphDef, ``.pb`` path, SavedModel directory or ``TFModel``.
        test_data: Feed dicts (or tuples of tensors already in input order).
        device: ``"cpu"`` or ``"gpu"`` (TF itself runs on the CPU here; the GPU reaches the graph
            through its ONNX export).
        name: Short name.
        inputs: Input tensor names.
        outputs: Output tensor names.

    Returns:
        The workload; ``model`` is the :class:`~tuner.core.tf_model.TFModel`.

    Raises:
        UserError: For unknown tensor names or test data that does not fit the graph.
    """
    tf_model = load_tf_model(model, inputs, outputs)
    data = list(test_data)
    if data and isinstance(data[0], (tuple, list)):
        samples = as_samples(data, "the test data")
        if {len(s) for s in samples} != {len(tf_model.inputs)}:
            raise UserError(f"the test samples have {len(samples[0])} tensors for {len(tf_model.inputs)} inputs",
                            "give one tensor per input, in --inputs order (or feed dicts)")
    else:
        samples = samples_from_feeds(tf_model, data, "the test data")
    runner = plain_runner(tf_model)
    reference = []
    for i, sample in enumerate(samples):
        try:
            reference.append(runner(*sample))
        except Exception as e:  # noqa: BLE001 - any failure here is the input's fault
            shapes = ", ".join(f"{n}={tuple(t.shape)}:{str(t.dtype).removeprefix('torch.')}"
                               for n, t in zip(tf_model.inputs, sample, strict=True))
            raise UserError(f"test sample {i} ({shapes}) does not fit the graph ({_tf_error_line(e)})",
                            "feed the shapes and dtypes the placeholders take") from None
    runner.close()
    signature = ";".join(",".join(f"{t.dim()}:{t.dtype}" for t in s) for s in samples[:1])
    fingerprint = hashlib.sha256(f"{tf_model.digest()}|{signature}".encode()).hexdigest()[:16]
    return Workload(name=name, framework=FRAMEWORK, model=tf_model, samples=tuple(samples),
                    reference=tuple(reference), device=device, source=tf_model.source, fingerprint=fingerprint)


def _tf_error_line(e: BaseException) -> str:
    # TF's session errors open with "Graph execution error:" and a blank line; the cause follows.
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and "Graph execution error" not in ln]
    return f"{type(e).__name__}: {lines[0][:200]}" if lines else type(e).__name__
