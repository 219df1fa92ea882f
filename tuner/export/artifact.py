"""The emitted model: written atomically, read back by ``load_optimized``.

``<output>/<study>/best/`` holds the backend's artifact files, ``artifact.json`` (which backend
wrote them and what its ``load`` needs), ``report.json`` and ``best_config.json``. The folder is
filled under a temporary name beside it and swapped in with one atomic exchange (Linux), so a
reader sees the old folder or the new one, never a half-written one.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

from backends import Backend, backend_class, get_backend
from tuner.core.errors import UserError, error_line
from tuner.core.files import write_json
from tuner.core.outputs import OutputSpec, Rebuilt
from tuner.core.records import Built, Candidate
from tuner.core.workload import Workload
from tuner.runtime.switches import with_switches

MANIFEST = "artifact.json"


def export_artifact(built: Built, workload: Workload, candidate: Candidate, directory: Path,
                    cache_dir: Path | None = None) -> None:
    """Write a built candidate's artifact and its ``artifact.json`` into ``directory`` (an empty folder).

    Args:
        built: The built candidate.
        workload: Its workload (some formats need example inputs).
        candidate: The candidate.
        directory: Where to write.
        cache_dir: The backends' cache folder.

    Raises:
        Exception: Whatever the backend's export raises.
    """
    backend = get_backend(candidate.backend, cache_dir=cache_dir)
    meta = backend.export(built, workload, candidate, directory)
    manifest: dict[str, Any] = {"backend": candidate.backend, "backend_module": type(backend).__module__,
                                "framework": workload.framework, "device": workload.device,
                                "candidate": candidate.to_dict(), "meta": meta}
    spec = workload.output_spec
    if spec is not None and not spec.flat:
        # The artifact returns the outputs' tensors; load_optimized gives them their structure back.
        manifest["outputs"] = spec.to_dict()
    write_json(directory / MANIFEST, manifest)


def load_optimized(directory: str | os.PathLike[str], device: str | None = None) -> Any:
    """Load an optimized model written by ``tune`` or saved by ``tuner.save``.

    Args:
        directory: The artifact folder (``<output>/<study>/best``), the study folder above it, or
            a folder ``tuner.save`` copied an artifact to; or a file ``tuner.save`` wrote: a
            GraphDef ``.pb`` or a TorchScript file.
        device: ``cpu`` or ``gpu``; the device it was tuned for when None (TorchScript files:
            where they were saved from).

    Returns:
        For a folder, a callable with the original model's inputs and outputs, in the model's own
        output structure (a library's output classes are imported here) and run under the torch
        switches its candidate was measured with (:mod:`tuner.runtime.switches`); for a ``.pb``, the
        ``tf.compat.v1.GraphDef``; for a TorchScript file, the ScriptModule.

    Raises:
        UserError: When the path holds no optimized model.
    """
    path = Path(directory)
    if path.is_file():
        return _load_model_file(path, device)
    if not (path / MANIFEST).is_file() and (path / "best" / MANIFEST).is_file():
        path = path / "best"
    if not (path / MANIFEST).is_file():
        raise UserError(f"{path} holds no optimized model ({MANIFEST} is missing)",
                        "pass the best/ folder that tune wrote (its path is in the tune output and report), "
                        "or a file or folder tuner.save wrote")
    meta = json.loads((path / MANIFEST).read_text())
    device = device or meta.get("device", "cpu")
    model = _backend_of(meta).load(path, meta.get("meta", {}), device)
    # The process-wide switches the candidate was measured under (cuDNN's benchmark mode, TF32)
    # are not in the model's files: set them around each call again. TF32 is torch's, on CUDA only.
    candidate = meta.get("candidate", {})
    model = with_switches(model, candidate.get("options", {}), candidate.get("precision", "fp32"),
                          loaded=device == "gpu" and meta.get("framework", "torch") == "torch")
    return Rebuilt(model, OutputSpec.from_dict(meta["outputs"])) if "outputs" in meta else model


def _backend_of(meta: dict[str, Any]) -> type[Backend]:
    """The backend class that wrote an artifact; one defined outside ``backends`` is imported from its module."""
    try:
        return backend_class(meta["backend"])
    except KeyError:
        if meta.get("backend_module"):
            importlib.import_module(str(meta["backend_module"]))
            return backend_class(meta["backend"])
        raise


def _load_model_file(path: Path, device: str | None) -> Any:
    """A GraphDef ``.pb`` or a TorchScript file, as ``tuner.save`` writes them."""
    if path.suffix == ".pb":
        import tensorflow as tf

        graph_def = tf.compat.v1.GraphDef()
        try:
            graph_def.ParseFromString(path.read_bytes())
        except Exception as e:  # noqa: BLE001 - any parse failure means a bad file
            raise UserError(f"{path} is not a binary GraphDef ({type(e).__name__})",
                            "pass a .pb that tuner.save or tf.train.write_graph(..., as_text=False) wrote") from None
        return graph_def
    import torch

    from tuner.core.devices import torch_device

    try:
        return torch.jit.load(str(path), map_location=None if device is None else torch_device(device))  # type: ignore[no-untyped-call]
    except Exception as e:  # noqa: BLE001
        raise UserError(f"{path} is neither a GraphDef .pb nor a TorchScript file ({error_line(e)})",
                        "pass a file or folder that tuner.save wrote") from None
