"""The ``onnxruntime`` backend: a TensorFlow graph exported to ONNX (tf2onnx), run by ONNX Runtime.

Options (``onnxruntime/<option>``, see ``search_space/onnxruntime_options.py``):
    graph_optimization_level: ONNX Runtime's graph optimizations: ``all`` (its default: layout
        and hardware-specific fusions too), ``extended`` (fusions such as GELU, attention,
        MatMul+Add), ``basic`` (constant folding, redundant nodes) or ``disabled``.
    execution_provider: Where the kernels run: ``CPUExecutionProvider``, or on a GPU
        ``CUDAExecutionProvider`` (and others the installed build offers).

Shape modes: ``dynamic`` runs one session whose input dims stay as TF left them (unknown dims
symbolic); ``static`` one session per distinct test-data shape with every input dim fixed in
the ONNX graph, so that shape inference and the fusions see concrete shapes.

The ONNX export needs TensorFlow (done once per model, on the CPU side); measuring and loading
need only ONNX Runtime, so a GPU machine without TensorFlow runs the exported model. The artifact
is the ONNX model(s) (``model.onnx``, or ``model_<i>.onnx`` per shape) with the session options in
``artifact.json``; ``load`` opens them with those options.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backends._torch_export import pick_by_shape, shape_key_str
from backends.base import Backend
from tuner.core.records import Built, Candidate
from tuner.core.workload import Workload
from tuner.runtime.onnx_providers import providers_for

#: ``onnxruntime/graph_optimization_level`` values -> ``GraphOptimizationLevel`` member names.
LEVELS: dict[str, str] = {"all": "ORT_ENABLE_ALL", "extended": "ORT_ENABLE_EXTENDED", "basic": "ORT_ENABLE_BASIC",
                          "disabled": "ORT_DISABLE_ALL"}
#: Key of the single session of a dynamic-shape build.
ANY_SHAPE = "*"
def fixed_shapes(proto_bytes: bytes, shapes: Sequence[tuple[int, ...]]) -> bytes:
    """The ONNX model with every graph input's dims set to ``shapes`` (static mode).

    Args:
        proto_bytes: The serialized model.
        shapes: One shape per graph input (non-initializer), in order.

    Returns:
        The serialized model with concrete input shapes.
    """
    import onnx

    proto = onnx.load_from_string(proto_bytes)
    inits = {i.name for i in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in inits]
    for value, shape in zip(inputs, shapes, strict=True):
        dims = value.type.tensor_type.shape.dim
        del dims[:]
        for d in shape:
            dims.add().dim_value = int(d)
    data: bytes = proto.SerializeToString()
    return data


def session(model: bytes, level: str, provider: str) -> Any:
    """An ``InferenceSession`` with this optimization level on this provider (CPU as its fallback).

    Args:
        model: The serialized ONNX model.
        level: A key of :data:`LEVELS`.
        provider: The execution provider.

    Returns:
        The session.

    Raises:
        ValueError: For an unknown level.
    """
    import onnxruntime as ort

    if level not in LEVELS:
        raise ValueError(f"onnxruntime/graph_optimization_level {level!r} is not one of {sorted(LEVELS)}")
    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, LEVELS[level])
    options.log_severity_level = 3
    providers = [provider] if provider == "CPUExecutionProvider" else [provider, "CPUExecutionProvider"]
    return ort.InferenceSession(model, sess_options=options, providers=providers)


class OrtRunner:
    """Runs the ONNX Runtime session of each call's input shapes on torch tensors.

    Args:
        sessions: Session per shape key, or one under :data:`ANY_SHAPE`.
    """

    def __init__(self, sessions: dict[str, Any]) -> None:
        self.sessions = sessions
        first = next(iter(sessions.values()))
        self.input_names = [i.name for i in first.get_inputs()]
        self.output_names = [o.name for o in first.get_outputs()]

    def __call__(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Run on one sample.

        Args:
            *args: The input tensors, in the model's input order.

        Returns:
            The outputs, as CPU tensors.

        Raises:
            ValueError: When a static build has no session for these input shapes.
        """
        sess = self.sessions.get(ANY_SHAPE)
        if sess is None:
            sess = pick_by_shape(self.sessions, args, "ONNX Runtime build has no session",
                                 "use the dynamic shape mode for other shapes")
        feed = {name: a.detach().cpu().numpy() for name, a in zip(self.input_names, args, strict=True)}
        return tuple(torch.from_numpy(np.asarray(o)) for o in sess.run(self.output_names, feed))


def onnx_of(workload: Workload) -> bytes:
    """The workload's model as ONNX bytes (tf2onnx for a TF workload; needs TensorFlow once).

    Raises:
        ValueError: For a framework without an ONNX route here.
    """
    if workload.framework != "tf":
        raise ValueError(f"onnxruntime takes TensorFlow workloads (through tf2onnx), not {workload.framework}")
    from tuner.runtime.tf_session import to_onnx

    return to_onnx(workload.model)


class OnnxRuntimeBackend(Backend):
    """ONNX Runtime on the tf2onnx export: graph optimization level and execution provider."""

    name = "onnxruntime"
    frameworks = frozenset({"tf"})
    shape_modes = ("dynamic", "static")
    precisions = frozenset({"fp32"})

    @classmethod
    def is_available(cls, device: str) -> bool:
        """Whether ONNX Runtime is installed with a provider for ``device``."""
        return device in cls.devices and bool(providers_for(device))

    def compile(self, workload: Workload, candidate: Candidate) -> Built:
        """Export to ONNX and open one session (dynamic) or one per distinct input shape (static).

        Args:
            workload: A ``tf`` workload.
            candidate: Shape mode and ``onnxruntime/*`` options.

        Returns:
            The runner; ``state["models"]`` holds the ONNX bytes per shape key.

        Raises:
            ValueError: For a non-fp32 precision, an unknown option, or a provider not here.
            Exception: What tf2onnx or ONNX Runtime raise.
        """
        if candidate.precision != "fp32":
            raise ValueError(f"onnxruntime runs the exported graph in fp32, not {candidate.precision}")
        unknown = sorted(k for k in candidate.options
                         if k.split("/", 1)[1] not in ("graph_optimization_level", "execution_provider"))
        if unknown:
            raise ValueError(f"onnxruntime has no options {unknown}")
        level = str(candidate.option("graph_optimization_level", "all"))
        provider = str(candidate.option("execution_provider", providers_for(workload.device)[0]))
        if provider not in providers_for(workload.device):
            raise ValueError(f"execution provider {provider} is not available for {workload.device} here "
                             f"(have {providers_for(workload.device)})")
        base = onnx_of(workload)
        if candidate.shape_mode == "dynamic":
            models = {ANY_SHAPE: base}
        elif candidate.shape_mode == "static":
            models = {shape_key_str(key): fixed_shapes(base, key) for key in workload.shape_counts()}
        else:
            raise ValueError(f"onnxruntime shape mode {candidate.shape_mode!r} is not one of {self.shape_modes}")
        runner = OrtRunner({key: session(m, level, provider) for key, m in models.items()})
        return Built(fn=runner, build_s=0.0, state={"models": models, "level": level, "provider": provider})

    def export(self, built: Built, workload: Workload, candidate: Candidate, directory: Path) -> dict[str, Any]:
        """Write the ONNX model(s) and the session options.

        Args:
            built: The built candidate.
            workload: The workload.
            candidate: The candidate.
            directory: Where to write.

        Returns:
            ``{"format": "onnx", "models": {shape key: file}, "graph_optimization_level", "execution_provider"}``.
        """
        files = {}
        for i, (key, data) in enumerate(built.state["models"].items()):
            name = "model.onnx" if key == ANY_SHAPE else f"model_{i}.onnx"
            (directory / name).write_bytes(data)
            files[key] = name
        return {"format": "onnx", "models": files, "graph_optimization_level": built.state["level"],
                "execution_provider": built.state["provider"]}

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any], device: str) -> Callable[..., Any]:
        """Open the ONNX model(s) with the stored session options (ONNX Runtime only, no TensorFlow).

        Args:
            directory: The artifact folder.
            meta: What :meth:`export` returned.
            device: ``"cpu"`` or ``"gpu"``.

        Returns:
            A runner over torch tensors.

        Raises:
            ValueError: For another artifact format.
        """
        if meta.get("format") != "onnx":
            raise ValueError(f"onnxruntime artifact format {meta.get('format')!r} is not 'onnx'")
        return OrtRunner({key: session((directory / file).read_bytes(), meta["graph_optimization_level"],
                                       meta["execution_provider"]) for key, file in meta["models"].items()})
