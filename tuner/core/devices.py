"""Which device a study runs on, and what to say about the machine in reports."""

from __future__ import annotations

import os
import platform
from typing import Any

from tuner.core.errors import UserError


def cuda_available() -> bool:
    """Whether torch sees a CUDA GPU."""
    import torch

    return bool(torch.cuda.is_available())


def resolve_device(device: str) -> str:
    """Turn ``auto``/``cpu``/``gpu`` into ``cpu`` or ``gpu``.

    Args:
        device: What the user asked for.

    Returns:
        ``"gpu"`` or ``"cpu"``.

    Raises:
        UserError: For an unknown name, or ``gpu`` on a machine without a CUDA GPU.
    """
    if device not in ("auto", "cpu", "gpu"):
        raise UserError(f"unknown device {device!r}", "use --device cpu, gpu or auto")
    if device == "auto":
        return "gpu" if cuda_available() else "cpu"
    if device == "gpu" and not cuda_available():
        raise UserError("--device gpu was asked for but torch sees no CUDA GPU", "use --device cpu or auto")
    return device


def torch_device(device: str) -> Any:
    """The ``torch.device`` for ``cpu``/``gpu``."""
    import torch

    return torch.device("cuda" if device == "gpu" else "cpu")


def device_name(device: str) -> str:
    """A name for the hardware that figures were measured on, e.g. ``NVIDIA H100 80GB HBM3``."""
    if device == "gpu":
        import torch

        return str(torch.cuda.get_device_name())
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def hardware_context(device: str) -> dict[str, Any]:
    """Software and hardware facts for the report.

    Args:
        device: ``cpu`` or ``gpu``.

    Returns:
        Versions of Python and the frameworks present, the device name, and the host.
    """
    import importlib.metadata as md

    versions: dict[str, str] = {}
    for dist in ("torch", "optuna", "mlflow", "mlflow-skinny", "apache-tvm", "tensorflow-cpu", "tensorflow",
                 "onnxruntime", "numpy"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            continue
    ctx: dict[str, Any] = {
        "device": device,
        "device_name": device_name(device),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "versions": versions,
    }
    if device == "gpu":
        import torch

        ctx["cuda"] = torch.version.cuda
        ctx["gpu_count"] = torch.cuda.device_count()
    return ctx


#: The number of compile threads a study worker's compilers may use (set per worker by
#: ``tuner.runner.worker.worker_env``; Inductor reads ``TORCHINDUCTOR_COMPILE_THREADS`` itself).
BUILD_THREADS_ENV = "TUNER_BUILD_THREADS"


def usable_cores() -> int:
    """The cores this process may run on (its affinity, where the OS tells)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def build_threads() -> int:
    """Threads a compiler's build pool may use here: the worker's share of the cores, else all."""
    return int(os.environ.get(BUILD_THREADS_ENV) or usable_cores())
