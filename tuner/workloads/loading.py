"""Workloads: the user's model, the test data it will really see, and the reference outputs.

A model is given as a Python factory ``module:function`` (returning the model, or the model and
its test data), a TorchScript file (``torch.jit.load``) or a ``torch.export`` program (``.pt2``).
Test data is a list of input tuples in a ``torch.save`` file (``.pt``) or an ``.npz`` (arrays
named ``s<i>_<j>``: input ``j`` of sample ``i``; or ``arr_0..arr_n`` for a single sample).
Reference outputs come from the original model, in fp32 with TF32 off, on the study's device.

TensorFlow models (a GraphDef, a frozen ``.pb``, a SavedModel directory) with feed-dict test data
make ``"tf"`` workloads (see :mod:`tuner.workloads.tf_graphs`): their samples are CPU tensors in input order
and their reference comes from plain TensorFlow running the original graph.
"""

from __future__ import annotations

import contextlib
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

from tuner.core.devices import torch_device
from tuner.core.errors import UserError, first_line
from tuner.core.outputs import OutputSpec, flatten_outputs
from tuner.core.workload import Sample, Workload
from tuner.runtime.precision import tf32
from tuner.workloads.samples import as_samples, load_test_data
from tuner.workloads.tf_graphs import is_tf_model, load_feed_dicts, make_tf_workload

#: The built-in demo workload's factory.
DEMO_FACTORY = "tuner.workloads.demo:make_demo"
#: Factories that moved, by their old spec: a study fingerprints its factory by its spec, so a
#: study made under the old one keeps its fingerprint (and continues), and the old spec still loads.
MOVED_FACTORIES = {"tuner.demo:make_demo": DEMO_FACTORY}


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
                f"model file {path} is not a readable torch.export program ({first_line(e)})",
                "save it with torch.export.save(torch.export.export(model, example_inputs), path)",
            ) from None
        return program, None, name, _file_digest(path)
    try:
        model = torch.jit.load(path, map_location="cpu")  # type: ignore[no-untyped-call]
    except Exception as e:  # noqa: BLE001
        raise UserError(
            f"model file {path} is not a readable TorchScript file ({first_line(e)})",
            "save it with torch.jit.save(torch.jit.script(model), path), or pass a .pt2 export or a factory",
        ) from None
    return model, None, name, _file_digest(path)


def _load_factory(spec: str) -> tuple[Any, list[Sample] | None, str, str]:
    old_spec = next((old for old, new in MOVED_FACTORIES.items() if spec in (old, new)), spec)
    module_name, func_name = MOVED_FACTORIES.get(spec, spec).split(":")
    # The user's own package is usually in the working directory, not installed.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UserError(f"cannot import {module_name!r} for --model {spec} ({first_line(e)})",
                        "check the module path, or run tune from the directory that holds it") from None
    factory = getattr(module, func_name, None)
    if not callable(factory):
        raise UserError(f"{module_name} has no function {func_name!r}", "name a function that returns the model")
    made = factory()
    data: list[Sample] | None = None
    if isinstance(made, tuple) and len(made) == 2 and not isinstance(made[0], torch.Tensor):
        made, data = made
        data = as_samples(data, f"the test data returned by {spec}")
    if not callable(made):
        raise UserError(f"{spec} returned {type(made).__name__}, not a model",
                        "return an nn.Module (or (model, test_data)) from the factory")
    return made, data, func_name.removeprefix("make_"), f"{old_spec}:{_module_digest(made)}"


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
            SavedModel directory (see :func:`tuner.workloads.tf_graphs.load_tf_model`).
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
    if is_tf_model(model):
        return make_tf_workload(model, test_data, device, name=name, inputs=inputs, outputs=outputs)
    samples = as_samples(list(test_data), "the test data")
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
    spec, reference = _reference(model, placed)
    signature = ";".join(",".join(f"{t.dim()}:{t.dtype}" for t in s) for s in samples[:1])
    fingerprint = hashlib.sha256(f"{digest or _module_digest(model)}|{signature}".encode()).hexdigest()[:16]
    return Workload(name=name, framework="torch", model=model, samples=placed, reference=reference, device=device,
                    source=source, fingerprint=fingerprint, output_spec=spec)


def _reference(model: Any, samples: tuple[Sample, ...]) -> tuple[OutputSpec, tuple[tuple[torch.Tensor, ...], ...]]:
    """The structure of the model's outputs, and their tensors per sample (fp32, TF32 off), on the CPU.

    Raises:
        UserError: When a sample does not fit the model, the outputs hold no tensor or a value
            that cannot be shipped, or their structure differs between samples.
    """
    spec: OutputSpec | None = None
    reference = []
    with torch.no_grad(), tf32(False):
        for i, sample in enumerate(samples):
            try:
                out = model(*sample)
            except Exception as e:  # noqa: BLE001 - any failure here is the input's fault
                shapes = ", ".join(f"{tuple(t.shape)}:{str(t.dtype).removeprefix('torch.')}" for t in sample)
                raise UserError(f"test sample {i} ({shapes}) does not fit the model ({first_line(e)})",
                                "give test data with the inputs, shapes and dtypes the model takes") from None
            # First: it registers the library classes among the outputs, so that they flatten.
            this = _output_spec(out)
            if spec is not None and this.treespec != spec.treespec:
                raise UserError(f"test sample {i} gives outputs of another structure than sample 0",
                                "give test data on which the model returns the same structure")
            spec = this
            flat = flatten_outputs(out)
            if not flat:
                raise UserError("the model returned no tensors", "return a tensor or a tuple of tensors")
            reference.append(tuple(t.detach().cpu() for t in flat))
    assert spec is not None
    return spec, tuple(reference)


def _output_spec(out: Any) -> OutputSpec:
    try:
        return OutputSpec.of(out)
    except ValueError as e:
        raise UserError(str(e), "return tensors in tuples, lists, dicts or a library's output classes") from None


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
