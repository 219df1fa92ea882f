"""A conformance suite every backend passes (in the manner of optuna/testing/pytest_storages.py).

A backend's test module calls these checks with its own candidates:

- :func:`check_registered`: the backend is registered, available on the device, and declares
  valid shape modes.
- :func:`check_candidate`: ``build()`` succeeds, ``measure()`` gives one positive latency per
  test sample and outputs within the level's tolerance, and (given a folder) ``export()`` then
  ``load()`` gives a callable whose outputs on every sample match the reference.
- :func:`check_failure_is_data`: a candidate that cannot build or run comes back as a
  ``BuildResult`` or ``Measurement`` with ``error_msg``, never as an exception.

The model is tiny (Linear, GELU, LayerNorm, softmax; two inputs sharing a batch dim) and the test
data holds two distinct batch sizes, so that static and dynamic shape modes really differ. TF
backends pass the same checks on :func:`tiny_tf_workload` (the same computation as a frozen
TensorFlow GraphDef with feed-dict test data): pass ``workload=`` to the checks.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

import torch
from torch import nn

from backends import Backend, backend_class, backend_names, get_backend
from tuner.core.accuracy import accuracy_rule
from tuner.core.records import SHAPE_MODES, Built, Candidate, MeasureConfig, Measurement
from tuner.core.workload import Workload, flatten_outputs
from tuner.export.verify import verify_in_subprocess
from tuner.runtime.correctness import check_outputs
from tuner.workloads.loading import make_workload

#: Batch sizes of the test samples: two distinct shapes, the first one repeated.
BATCHES: tuple[int, ...] = (2, 3, 2)
#: Width of the tiny model's inputs.
IN_FEATURES = 8
HIDDEN = 16
#: Few repeats: the suite checks behaviour, not speed.
FAST = MeasureConfig(warmup=1, repeats=3, quick_repeats=1)


class TinyNet(nn.Module):
    """Linear + GELU + residual + LayerNorm + softmax; outputs stay O(1) so bf16 fits o2."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(IN_FEATURES, HIDDEN)
        self.norm = nn.LayerNorm(HIDDEN)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.norm(nn.functional.gelu(self.fc(x)) + y)
        return torch.softmax(h, dim=-1), h


class Boom(TinyNet):
    """Fails inside forward, whichever way it is compiled or run."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise RuntimeError("boom: this model always fails")


def tiny_samples() -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    return [(torch.randn(b, IN_FEATURES, generator=gen), torch.randn(b, HIDDEN, generator=gen)) for b in BATCHES]


@functools.cache
def tiny_workload(device: str = "cpu") -> Workload:
    """The tiny model with its test data and fp32 reference on ``device`` (built once per device)."""
    torch.manual_seed(0)
    return make_workload(TinyNet().eval(), tiny_samples(), device, name="tiny")


def tiny_tf_graph_def() -> object:
    """TinyNet's computation as a frozen tf.compat.v1 GraphDef: inputs ``x``, ``y``; outputs ``probs``, ``h``."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, IN_FEATURES], name="x")
        y = tf.compat.v1.placeholder(tf.float32, [None, HIDDEN], name="y")
        w = tf.constant(rng.standard_normal((IN_FEATURES, HIDDEN)).astype(np.float32) / IN_FEATURES ** 0.5)
        b = tf.constant(rng.standard_normal(HIDDEN).astype(np.float32) * 0.1)
        # The tanh GELU: tf2onnx has no converter for the exact form's Erfc.
        z = tf.nn.gelu(tf.nn.bias_add(x @ w, b), approximate=True) + y
        mean, var = tf.nn.moments(z, axes=[-1], keepdims=True)
        h = tf.identity((z - mean) * tf.math.rsqrt(var + 1e-5), name="h")
        tf.nn.softmax(h, axis=-1, name="probs")
    return graph.as_graph_def()


@functools.cache
def tiny_tf_workload(device: str = "cpu") -> Workload:
    """The tiny model as a TF workload (feed dicts, two distinct batch sizes), built once per device."""
    feeds = [{"x": x.numpy(), "y": y.numpy()} for x, y in tiny_samples()]
    return make_workload(tiny_tf_graph_def(), feeds, device, name="tiny_tf", inputs=["x", "y"],
                         outputs=["probs", "h"])


class ConvNet(nn.Module):
    """Conv + batch norm + ReLU + 1x1 conv + pooling: what cuDNN runs in a ResNet block."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.conv(x)))
        return nn.functional.adaptive_avg_pool2d(self.head(y), 1).flatten(1)


@functools.cache
def conv_workload(device: str) -> Workload:
    """A convolution model over batches 1, 4 and 1 of 16x16 images (cuDNN's and channels-last's checks)."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    samples = [(torch.randn(b, 3, 16, 16, generator=gen),) for b in (1, 4, 1)]
    return make_workload(ConvNet().eval(), samples, device, name="conv")


def broken_workload(device: str = "cpu") -> Workload:
    """The tiny workload whose model raises in forward (the reference comes from the good model)."""
    return dataclasses.replace(tiny_workload(device), model=Boom().eval())


def check_registered(backend_name: str, device: str = "cpu", framework: str = "torch") -> None:
    assert backend_name in backend_names()
    cls = backend_class(backend_name)
    assert cls.is_available(device), f"{backend_name} is not available on {device}"
    assert cls.shape_modes and set(cls.shape_modes) <= set(SHAPE_MODES)
    assert framework in cls.frameworks


def outputs_of(fn: object, workload: Workload) -> tuple[tuple[torch.Tensor, ...], ...]:
    """Run a callable on every test sample and flatten its outputs to CPU tensors."""
    assert callable(fn)
    with torch.no_grad():
        return tuple(tuple(t.detach().cpu().clone() for t in flatten_outputs(fn(*s))) for s in workload.samples)


def check_candidate(backend_name: str, candidate: Candidate, device: str = "cpu", *, level: str = "o1",
                    export_dir: Path | None = None, backend: Backend | None = None,
                    workload: Workload | None = None) -> tuple[Built, Measurement]:
    """Build, measure and check one candidate; export and load it too when ``export_dir`` is given.

    ``backend`` is the instance to use (one with a ``cache_dir``, say); by default a fresh one.
    ``workload`` is the workload to use (:func:`tiny_tf_workload` for TF backends); by default
    the tiny torch one.

    Returns:
        The built candidate and its measurement, for backend-specific checks.
    """
    assert candidate.backend == backend_name
    backend = backend or get_backend(backend_name)
    assert backend.is_available(device)
    assert candidate.shape_mode in backend.shape_modes
    workload = workload or tiny_workload(device)
    assert workload.framework in backend.frameworks

    result = backend.build(workload, candidate)
    assert result.ok, f"{candidate.describe()} did not build: {result.error_msg}"
    assert result.built is not None and result.built.build_s >= 0

    measurement = backend.measure(result.built, workload, FAST)
    assert measurement.ok, f"{candidate.describe()} did not run: {measurement.error_msg}"
    assert measurement.latencies_s is not None and len(measurement.latencies_s) == len(workload.samples)
    assert all(t > 0 for t in measurement.latencies_s)
    assert measurement.warmup_s > 0 and measurement.repeats == FAST.repeats
    assert measurement.outputs is not None
    correct = check_outputs(measurement.outputs, workload.reference, accuracy_rule(None, level))
    assert correct.ok, f"{candidate.describe()} is wrong: {correct.detail}"

    if export_dir is not None:
        check_export_load(backend_name, result.built, candidate, export_dir, device, level=level, workload=workload)
    return result.built, measurement


def check_export_load(backend_name: str, built: Built, candidate: Candidate, directory: Path, device: str = "cpu",
                      *, level: str = "o1", workload: Workload | None = None) -> dict[str, object]:
    """Export into ``directory``, load it back and compare the outputs on every sample.

    Returns:
        The artifact's meta, as it round-trips through JSON (``artifact.json``).
    """
    backend = get_backend(backend_name)
    workload = workload or tiny_workload(device)
    directory.mkdir(parents=True, exist_ok=True)
    meta = backend.export(built, workload, candidate, directory)
    # The caller stores meta in artifact.json: it must survive JSON unchanged.
    stored: dict[str, object] = json.loads(json.dumps(meta))
    assert stored == meta
    assert any(directory.iterdir()), "export wrote no files"
    # As the tuner checks an artifact: loaded by load_optimized in a fresh process.
    (directory / "artifact.json").write_text(json.dumps({"backend": backend_name, "device": device,
                                                         "candidate": candidate.to_dict(), "meta": stored}))
    result = verify_in_subprocess(directory, workload, accuracy_rule(None, level), warmup=1, repeats=1)
    assert result["verified"] is True
    if device == "gpu":
        # In-process loading is left out on the GPU: on torch 2.11 AOTInductor's loader can
        # segfault there in a process that compiled before; the fresh process above covers it.
        return stored
    loaded = backend_class(backend_name).load(directory, stored, device)
    correct = check_outputs(outputs_of(loaded, workload), workload.reference, accuracy_rule(None, level))
    assert correct.ok, f"loaded {candidate.describe()} is wrong: {correct.detail}"
    return stored


def check_failure_is_data(backend_name: str, candidate: Candidate, workload: Workload | None = None) -> str:
    """A candidate that cannot build or run yields an error message, never an exception.

    Returns:
        The error message (from the build, or else from the measurement).
    """
    backend = get_backend(backend_name)
    workload = workload or tiny_workload("cpu")
    result = backend.build(workload, candidate)
    if not result.ok:
        assert result.built is None and result.error_msg
        return result.error_msg
    assert result.built is not None
    measurement = backend.measure(result.built, workload, FAST)
    assert not measurement.ok, f"{candidate.describe()} was expected to fail but ran"
    assert measurement.latencies_s is None and measurement.error_msg
    return measurement.error_msg
