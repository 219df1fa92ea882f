"""Which ONNX Runtime execution providers run a model on a device here.

The ``onnxruntime`` backend runs its sessions on them, and the search space offers them as a
choice; both ask here, so the two agree.
"""

from __future__ import annotations

import importlib.util

#: Providers that are no compute device (ONNX Runtime lists them as available all the same).
NOT_COMPUTE: frozenset[str] = frozenset({"AzureExecutionProvider"})


def providers_for(device: str) -> tuple[str, ...]:
    """The execution providers this ONNX Runtime build offers for ``device``, the usual one first.

    Args:
        device: ``"cpu"`` or ``"gpu"``.

    Returns:
        Provider names (empty when none fits).
    """
    if importlib.util.find_spec("onnxruntime") is None:
        return ()
    import onnxruntime as ort

    available = [p for p in ort.get_available_providers() if p not in NOT_COMPUTE]
    gpu_side = ("CUDAExecutionProvider", "TensorrtExecutionProvider", "ROCMExecutionProvider")
    if device == "gpu":
        return tuple(p for p in gpu_side if p in available)
    return tuple(["CPUExecutionProvider"] + [p for p in available if p not in gpu_side and p != "CPUExecutionProvider"])


__all__ = ["providers_for"]
