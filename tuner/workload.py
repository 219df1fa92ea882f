"""Workloads: the user's model, the test data it will really see, and the reference outputs.

A model is given as a Python factory ``module:function`` (returning the model, or the model and
its test data), a TorchScript file (``torch.jit.load``) or a ``torch.export`` program (``.pt2``).
Test data is a list of input tuples in a ``torch.save`` file (``.pt``) or an ``.npz`` (arrays
named ``s<i>_<j>``: input ``j`` of sample ``i``; or ``arr_0..arr_n`` for a single sample).
Reference outputs come from the original model, in fp32 with TF32 off, on the study's device.

TensorFlow models (a GraphDef, a frozen ``.pb``, a SavedModel directory) with feed-dict test data
make ``"tf"`` workloads (see :mod:`tuner.tf_model`): their samples are CPU tensors in input order
and their reference comes from plain TensorFlow running the original graph.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import importlib
import logging
import os
import re
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from tuner.devices import torch_device
from tuner.errors import UserError
from tuner.precision import tf32

Sample = tuple[torch.Tensor, ...]

#: The built-in demo workload's factory.
DEMO_FACTORY = "tuner.demo:make_demo"


@dataclasses.dataclass(frozen=True)
class Workload:
    """A model with its test data and reference outputs, placed on one device.

    Attributes:
        name: Short name (the default study name).
        framework: ``"torch"`` or ``"tf"``.
        model: The original model, in eval mode, on ``device``; for ``"tf"`` a
            :class:`~tuner.tf_model.TFModel` (a record, not a callable).
        samples: Test inputs, one tuple per sample, on ``device`` (on the CPU for ``"tf"``).
        reference: Flattened reference outputs per sample, on the CPU.
        device: ``"cpu"`` or ``"gpu"``.
        source: Where the model came from (file path, factory or ``"python object"``).
        fingerprint: Digest of the model and of its input signature: one study holds one workload.
    """

    name: str
    framework: str
    model: Any
    samples: tuple[Sample, ...]
    reference: tuple[tuple[torch.Tensor, ...], ...]
    device: str
    source: str
    fingerprint: str

    def shape_key(self, index: int) -> tuple[tuple[int, ...], ...]:
        """The input shapes of sample ``index`` (static mode compiles once per distinct key)."""
        return tuple(tuple(t.shape) for t in self.samples[index])

    def shape_counts(self) -> dict[tuple[tuple[int, ...], ...], int]:
        """How often each distinct input shape occurs in the test data, in first-seen order."""
        return dict(collections.Counter(self.shape_key(i) for i in range(len(self.samples))))

    def varying_dims(self) -> tuple[tuple[int, ...], ...]:
        """Per input, the dims whose size differs between test samples (symbolic in dynamic modes)."""
        out = []
        for j, first in enumerate(self.samples[0]):
            out.append(tuple(d for d in range(first.dim()) if len({s[j].shape[d] for s in self.samples}) > 1))
        return tuple(out)

    def dim_groups(self) -> dict[tuple[int, int], str]:
        """Names for the varying dims, one name per group of dims that always agree in size.

        ``torch.export`` needs dims that the model forces equal (say every input's batch dim) to
        share one ``Dim``; dims whose sizes agree on every test sample are taken to be one.

        Returns:
            ``{(input_index, dim): group_name}`` for every varying dim.
        """
        names: dict[tuple[int, ...], str] = {}
        groups: dict[tuple[int, int], str] = {}
        for j, dims in enumerate(self.varying_dims()):
            for d in dims:
                pattern = tuple(s[j].shape[d] for s in self.samples)
                names.setdefault(pattern, f"d{len(names)}")
                groups[(j, d)] = names[pattern]
        return groups

    def example_index(self) -> int:
        """The sample with the most elements: the example to export/trace with.

        A large example avoids size-1 dims, which ``torch.export`` would specialise on.
        """
        return max(range(len(self.samples)), key=lambda i: sum(t.numel() for t in self.samples[i]))

    def has_convolutions(self) -> bool:
        """Whether the model holds torch convolution modules (cuDNN runs them on the GPU).

        Scripted submodules keep their class name in ``original_name``. Convolutions called as
        functions (``F.conv2d``) are not seen; such a model is searched without the cuDNN choices.

        Returns:
            True for a torch model with a ``Conv1d/2d/3d`` or ``ConvTranspose`` module; False for
            TF models and everything else.
        """
        if self.framework != "torch" or not isinstance(self.model, torch.nn.Module):
            return False
        names = {"Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"}
        return any(isinstance(m, torch.nn.modules.conv._ConvNd) or getattr(m, "original_name", None) in names
                   for m in self.model.modules())

    def shapes_summary(self) -> list[dict[str, Any]]:
        """The test-data shape distribution, for the report."""
        return [{"shapes": [list(s) for s in key], "count": n} for key, n in self.shape_counts().items()]


def flatten_outputs(out: Any) -> tuple[torch.Tensor, ...]:
    """The tensors of a model's output (tensor, tuple, list, dict, ...) in a fixed order."""
    leaves, _ = torch.utils._pytree.tree_flatten(out)
    return tuple(leaf for leaf in leaves if isinstance(leaf, torch.Tensor))


def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _module_digest(model: Any) -> str:
    h = hashlib.sha256(type(model).__qualname__.encode())
    if isinstance(model, nn.Module):
        for k, v in model.state_dict().items():
            h.update(k.encode())
            if isinstance(v, torch.Tensor):
                h.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def load_model(spec: str) -> tuple[Any, list[Sample] | None, str, str]:
    """Load a model from a factory spec or a file.

    Args:
        spec: ``module:function`` (a factory), a TorchScript file or a ``.pt2`` export.

    Returns:
        ``(model, test_data_or_None, name, digest)``; the factory may return test data too.

    Raises:
        UserError: When the file is missing or corrupt, or the factory cannot be imported.
    """
    if os.path.exists(spec) or spec.endswith((".pt", ".pth", ".pt2", ".ts", ".jit")):
        return _load_model_file(spec)
    if re.fullmatch(r"[\w.]+:\w+", spec):
        return _load_factory(spec)
    raise UserError(
        f"model {spec!r} is neither an existing file nor a factory 'module:function'",
        "pass a TorchScript file, a .pt2 export or a factory such as my_pkg.models:make_model to --model",
    )


def _load_model_file(path: str) -> tuple[Any, list[Sample] | None, str, str]:
    if not os.path.isfile(path):
        raise UserError(f"model file {path} does not exist", "pass an existing file to --model")
    name = os.path.splitext(os.path.basename(path))[0]
    if path.endswith(".pt2"):
        try:
            # torch.export.load logs a traceback (a warning) before it raises on a bad file; the
            # one-line error below says all of it.
            with _quiet_logger("torch.export"):
                program = torch.export.load(path)
        except Exception as e:  # noqa: BLE001 - any failure to read means a bad file
            raise UserError(
                f"model file {path} is not a readable torch.export program ({_first_line(e)})",
                "save it with torch.export.save(torch.export.export(model, example_inputs), path)",
            ) from None
        return program, None, name, _file_digest(path)
    try:
        model = torch.jit.load(path, map_location="cpu")  # type: ignore[no-untyped-call]
    except Exception as e:  # noqa: BLE001
        raise UserError(
            f"model file {path} is not a readable TorchScript file ({_first_line(e)})",
            "save it with torch.jit.save(torch.jit.script(model), path), or pass a .pt2 export or a factory",
        ) from None
    return model, None, name, _file_digest(path)


def _load_factory(spec: str) -> tuple[Any, list[Sample] | None, str, str]:
    module_name, func_name = spec.split(":")
    # The user's own package is usually in the working directory, not installed.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UserError(f"cannot import {module_name!r} for --model {spec} ({_first_line(e)})",
                        "check the module path, or run tune from the directory that holds it") from None
    factory = getattr(module, func_name, None)
    if not callable(factory):
        raise UserError(f"{module_name} has no function {func_name!r}", "name a function that returns the model")
    made = factory()
    data: list[Sample] | None = None
    if isinstance(made, tuple) and len(made) == 2 and not isinstance(made[0], torch.Tensor):
        made, data = made
        data = _as_samples(data, f"the test data returned by {spec}")
    if not callable(made):
        raise UserError(f"{spec} returned {type(made).__name__}, not a model",
                        "return an nn.Module (or (model, test_data)) from the factory")
    return made, data, func_name.removeprefix("make_"), f"{spec}:{_module_digest(made)}"


def load_test_data(path: str) -> list[Sample]:
    """Read test data: a list of input tuples from ``torch.save`` (.pt) or an ``.npz``.

    Args:
        path: The file.

    Returns:
        The samples, each a tuple of CPU tensors.

    Raises:
        UserError: When the file is missing, unreadable or not a list of input tuples.
    """
    if not os.path.isfile(path):
        raise UserError(f"test data file {path} does not exist", "pass an existing file to --test-data")
    if path.endswith(".npz"):
        import numpy as np

        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except Exception as e:  # noqa: BLE001
            raise UserError(f"test data file {path} is not a readable .npz ({_first_line(e)})",
                            "write it with numpy.savez") from None
        return _samples_from_npz(arrays, path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise UserError(f"test data file {path} is not a readable torch.save file ({_first_line(e)})",
                        "write a list of input tuples with torch.save(samples, path)") from None
    return _as_samples(data, f"test data file {path}")


def _samples_from_npz(arrays: dict[str, Any], path: str) -> list[Sample]:
    keyed: dict[int, dict[int, Any]] = collections.defaultdict(dict)
    for key, value in arrays.items():
        m = re.fullmatch(r"s(\d+)_(\d+)", key)
        if m:
            keyed[int(m.group(1))][int(m.group(2))] = value
        elif re.fullmatch(r"arr_(\d+)", key):
            keyed[0][int(key[4:])] = value
        else:
            raise UserError(f"test data file {path} has an array named {key!r}",
                            "name arrays s<sample>_<input> (e.g. s0_0, s0_1) or save one sample as arr_0..arr_n")
    if not keyed:
        raise UserError(f"test data file {path} holds no arrays", "save at least one sample")
    samples = []
    for i in sorted(keyed):
        inputs = keyed[i]
        if sorted(inputs) != list(range(len(inputs))):
            raise UserError(f"sample {i} of {path} has inputs {sorted(inputs)}", "number inputs 0..n-1 without gaps")
        samples.append(tuple(torch.from_numpy(inputs[j]) for j in range(len(inputs))))
    return samples


def _as_samples(data: Any, what: str) -> list[Sample]:
    if isinstance(data, torch.Tensor):
        data = [(data,)]
    if not isinstance(data, (list, tuple)) or not data:
        raise UserError(f"{what} is not a non-empty list of input tuples",
                        "give a list such as [(x1, y1), (x2, y2)] with one tuple of tensors per sample")
    samples = []
    for i, sample in enumerate(data):
        if isinstance(sample, torch.Tensor):
            sample = (sample,)
        if not isinstance(sample, (list, tuple)) or not all(isinstance(t, torch.Tensor) for t in sample):
            raise UserError(f"sample {i} of {what} is not a tuple of tensors", "make every sample a tuple of tensors")
        samples.append(tuple(sample))
    arity = {len(s) for s in samples}
    if len(arity) > 1:
        raise UserError(f"the samples of {what} have different numbers of inputs {sorted(arity)}",
                        "give every sample the same inputs")
    return samples


@contextlib.contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    """Hide a library logger's warnings for the duration (its errors still show)."""
    logger = logging.getLogger(name)
    old = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(old)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    if not text:
        return type(e).__name__
    line = text[0]
    if len(line) > 200 and ". " in line[:200]:
        # Keep whole sentences: torch's file errors go on for several after the one that says why.
        line = line[: line.rindex(". ", 0, 200) + 1]
    return f"{type(e).__name__}: {line[:200]}"


def make_workload(
    model: Any,
    test_data: Sequence[Sample] | Sequence[Any],
    device: str,
    *,
    name: str = "model",
    source: str = "python object",
    digest: str | None = None,
    inputs: Sequence[str] | str | None = None,
    outputs: Sequence[str] | str | None = None,
) -> Workload:
    """Place a model and its test data on a device and compute the reference outputs.

    Args:
        model: A callable taking one test sample's tensors (an ``nn.Module`` or ScriptModule), or
            a TensorFlow model: a ``tf.compat.v1.GraphDef``, a frozen ``.pb`` path or a
            SavedModel directory (see :func:`tuner.tf_model.load_tf_model`).
        test_data: One tuple of input tensors per sample; for a TF model, feed dicts
            ``{placeholder name: array}``.
        device: ``"cpu"`` or ``"gpu"``.
        name: Short name for the workload.
        source: Where the model came from, for the report.
        digest: Digest of the model; computed from its weights when not given.
        inputs: A TF model's input tensor names (e.g. ``["encoder_memory_placeholder"]``).
        outputs: A TF model's output tensor names.

    Returns:
        The workload.

    Raises:
        UserError: When a sample does not fit the model, or a TF tensor name is not in the graph.
    """
    from tuner.tf_model import is_tf_model

    if is_tf_model(model):
        return _make_tf_workload(model, test_data, device, name=name, inputs=inputs, outputs=outputs)
    samples = _as_samples(list(test_data), "the test data")
    dev = torch_device(device)
    if isinstance(model, torch.export.ExportedProgram):
        if device == "gpu":
            from torch.export.passes import move_to_device_pass

            model = move_to_device_pass(model, dev)
        # An exported program's module cannot switch train/eval: it was exported in one mode.
        model = model.module()
    elif isinstance(model, nn.Module):
        model = model.to(dev).eval()
    placed = tuple(tuple(t.to(dev) for t in s) for s in samples)
    reference = []
    with torch.no_grad(), tf32(False):
        for i, sample in enumerate(placed):
            try:
                out = flatten_outputs(model(*sample))
            except Exception as e:  # noqa: BLE001 - any failure here is the input's fault
                shapes = ", ".join(f"{tuple(t.shape)}:{str(t.dtype).removeprefix('torch.')}" for t in sample)
                raise UserError(f"test sample {i} ({shapes}) does not fit the model ({_first_line(e)})",
                                "give test data with the inputs, shapes and dtypes the model takes") from None
            if not out:
                raise UserError("the model returned no tensors", "return a tensor or a tuple of tensors")
            reference.append(tuple(t.detach().cpu() for t in out))
    signature = ";".join(",".join(f"{t.dim()}:{t.dtype}" for t in s) for s in samples[:1])
    fingerprint = hashlib.sha256(f"{digest or _module_digest(model)}|{signature}".encode()).hexdigest()[:16]
    return Workload(
        name=name,
        framework="torch",
        model=model,
        samples=placed,
        reference=tuple(reference),
        device=device,
        source=source,
        fingerprint=fingerprint,
    )


def load_workload(model: str | None, test_data: str | Sequence[str] | None, device: str, *,
                  inputs: str | Sequence[str] | None = None, outputs: str | Sequence[str] | None = None) -> Workload:
    """The workload a CLI user names: a model spec and test-data files (the demo when neither).

    Args:
        model: Model spec (see :func:`load_model`), a TF frozen ``.pb`` or SavedModel directory,
            or None for the built-in demo.
        test_data: Test-data file(s), or None when the factory returns its own; several files
            are concatenated.
        device: ``"cpu"`` or ``"gpu"``.
        inputs: A TF model's input tensor names (``--inputs``).
        outputs: A TF model's output tensor names (``--outputs``).

    Returns:
        The workload.

    Raises:
        UserError: When the model or the test data cannot be used.
    """
    from tuner.tf_model import is_tf_model, load_feed_dicts

    files = [test_data] if isinstance(test_data, str) else list(test_data or [])
    if model is not None and is_tf_model(model):
        if not files:
            raise UserError(f"no test data for TF model {model}",
                            "pass --test-data FILE (.npy/.npz feed dicts {placeholder: array})")
        feeds = [feed for path in files for feed in load_feed_dicts(path)]
        name = os.path.splitext(os.path.basename(os.path.normpath(model)))[0]
        return make_workload(model, feeds, device, name=name, source=model, inputs=inputs, outputs=outputs)
    if inputs is not None or outputs is not None:
        raise UserError("--inputs/--outputs name the tensors of a TensorFlow graph, but the model is not one",
                        "leave them out for a PyTorch model, or pass a frozen .pb / SavedModel directory")
    obj, data, name, digest = load_model(model or DEMO_FACTORY)
    if files:
        data = [sample for path in files for sample in load_test_data(path)]
    if data is None:
        raise UserError(f"no test data for model {model}", "pass --test-data FILE (a list of input tuples)")
    return make_workload(obj, data, device, name=name, source=model or DEMO_FACTORY, digest=digest)


def _make_tf_workload(model: Any, test_data: Sequence[Any], device: str, *, name: str,
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
        The workload; ``model`` is the :class:`~tuner.tf_model.TFModel`.

    Raises:
        UserError: For unknown tensor names or test data that does not fit the graph.
    """
    from tuner.tf_model import FRAMEWORK, load_tf_model, samples_from_feeds

    tf_model = load_tf_model(model, inputs, outputs)
    data = list(test_data)
    if data and isinstance(data[0], (tuple, list)):
        samples = _as_samples(data, "the test data")
        if {len(s) for s in samples} != {len(tf_model.inputs)}:
            raise UserError(f"the test samples have {len(samples[0])} tensors for {len(tf_model.inputs)} inputs",
                            "give one tensor per input, in --inputs order (or feed dicts)")
    else:
        samples = samples_from_feeds(tf_model, data, "the test data")
    from backends._tf_runtime import plain_runner

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
