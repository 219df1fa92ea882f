"""The ``eager`` backend: the model as it is, in the candidate's precision (the baseline).

On a TensorFlow workload it is plain TensorFlow: the original frozen graph in a session with
TF's default config, written back as the same GraphDef (``model.pb``).

On a PyTorch workload its artifact is a ``torch.export`` program (``model.pt2``) with the test data's varying dims
symbolic, or several where the model branches on shapes the test data varies
(:mod:`backends._export_cover`); a model that ``torch.export`` cannot capture falls back to
``torch.jit.trace`` (``model.ts``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import torch

from backends._export_cover import export_covering, load_covering, write_covering
from backends._jit_fuser import FuserCall
from backends._torch_export import example_inputs, load_program
from backends.base import Backend
from tuner.core.devices import torch_device
from tuner.core.errors import error_line
from tuner.core.outputs import with_flat_outputs
from tuner.core.records import Built, Candidate
from tuner.core.workload import Workload
from tuner.runtime.models import in_precision

#: Artifact formats :meth:`EagerBackend.export` writes.
EXPORT_FORMAT = "torch.export"
TRACE_FORMAT = "torchscript"


def _check_no_options(candidate: Candidate, backend: str) -> None:
    # A stray option would otherwise be silently ignored, and two "different" candidates would
    # be measured as the same thing.
    unknown = sorted(k for k in candidate.options if k.startswith(f"{backend}/"))
    if unknown:
        raise ValueError(f"{backend} takes no options, got {unknown}")


class EagerBackend(Backend):
    """Runs the model uncompiled: PyTorch's eager mode, the reference every speedup is against."""

    name = "eager"
    frameworks = frozenset({"torch", "tf"})
    shape_modes: ClassVar[tuple[str, ...]] = ("dynamic",)
    native_kinds = frozenset({"torchscript", "nn.Module", "graphdef"})
    # Eager builds nothing, but its artifact is torch.export's programs: on 4 loaded cores of an
    # H100 host GPT-2's two programs took 15.7 s to write and its fresh-process check 23.2 s, 6 s
    # past the workers' start (experiments/results/2026-12-06-h100-levels-run4-tune-reports.json);
    # kept out of the reserve, that run ended at 1.11x its --timeout.
    export_s = MappingProxyType({"gpu": 15.0})
    load_s = MappingProxyType({"gpu": 6.0})

    def compile(self, workload: Workload, candidate: Candidate) -> Built:
        """Return the model in the candidate's precision; nothing is compiled.

        Args:
            workload: The model and device.
            candidate: Its precision is applied.

        Returns:
            The model as the callable.

        Raises:
            ValueError: When the candidate carries ``eager/`` options (eager has none).
        """
        _check_no_options(candidate, self.name)
        if workload.framework == "tf":
            from tuner.runtime.tf_session import plain_runner

            if candidate.precision != "fp32":
                raise ValueError(f"plain TensorFlow runs the graph as frozen (fp32), not {candidate.precision}")
            runner = plain_runner(workload.model)
            return Built(fn=runner, build_s=0.0, state={"tf_runner": runner})
        # The model as the user has it (optimize() may return it), its outputs flat as every
        # backend's are.
        model = in_precision(workload.model, workload, candidate)
        return Built(fn=with_flat_outputs(model, workload.output_spec), build_s=0.0, state={"model": model})

    def native_model(self, built: Built, workload: Workload, candidate: Candidate) -> Any | None:
        """The model itself (fp32), or its low-precision wrapper (an ``nn.Module``, not TorchScript).

        A TF workload's model is its frozen GraphDef, as given. TF32 is a process-wide switch that a
        saved model does not carry: None for it.
        """
        if candidate.precision == "tf32":
            return None
        if workload.framework == "tf":
            return workload.model.parse()
        return built.state.get("model", built.fn)

    def export(self, built: Built, workload: Workload, candidate: Candidate, directory: Path) -> dict[str, Any]:
        """Write ``model.pt2`` (``torch.export`` with symbolic varying dims) or, failing that, ``model.ts``.

        Args:
            built: The built candidate (its model in the candidate's precision).
            workload: The test data: the example sample and the dims that vary.
            candidate: The candidate.
            directory: Where to write.

        Returns:
            ``{"format": "torch.export" | "torchscript", "file": ...}``, with ``programs`` where
            several programs take the test data's shapes; after a fallback also ``export_error``,
            the reason ``torch.export`` failed.

        Raises:
            Exception: When the ``torch.jit.trace`` fallback fails too.
        """
        if workload.framework == "tf":
            from tuner.runtime.tf_session import export_graph

            return export_graph(workload.model.parse(), workload.model, directory)
        model = with_flat_outputs(built.state.get("model", built.fn), workload.output_spec)
        example = example_inputs(workload)
        try:
            return {"format": EXPORT_FORMAT,
                    **write_covering(export_covering(model, workload), directory, torch.export.save)}
        except Exception as e:  # noqa: BLE001 - any capture failure means: use the tracer instead
            reason = error_line(e)
        for written in directory.glob("model*.pt2"):
            written.unlink()
        traced = torch.jit.trace(model, example, check_trace=False, strict=False)  # type: ignore[no-untyped-call]
        ts_path = directory / "model.ts"
        torch.jit.save(traced, str(ts_path))
        return {"format": TRACE_FORMAT, "file": ts_path.name, "export_error": reason}

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any], device: str) -> Callable[..., Any]:
        """Read back what :meth:`export` wrote.

        Args:
            directory: The artifact folder.
            meta: What :meth:`export` returned.
            device: ``"cpu"`` or ``"gpu"``.

        Returns:
            The exported program's module (moved to ``device``) or the TorchScript module, run
            with TorchScript's fusers off.

        Raises:
            ValueError: For an unknown artifact format.
        """
        if meta["format"] == "tf-graphdef":
            from tuner.runtime.tf_session import load_graph

            return load_graph(directory, meta)
        path = directory / str(meta["file"])
        dev = torch_device(device)
        if meta["format"] == EXPORT_FORMAT:
            return load_covering(directory, meta, lambda file: load_program(file, device))
        if meta["format"] == TRACE_FORMAT:
            # Eager fuses nothing: without this the profiling executor would fuse the trace with
            # NNC on the GPU (torch's default there), compiling kernels during its first runs, a
            # different model from the one measured.
            return FuserCall(torch.jit.load(str(path), map_location=dev), "none")  # type: ignore[no-untyped-call]
        raise ValueError(f"eager artifact format {meta['format']!r} is not one of {EXPORT_FORMAT!r}, {TRACE_FORMAT!r}")
