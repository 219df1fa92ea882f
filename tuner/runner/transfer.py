"""Hand a workload to a worker process: written once to a file, read once by each worker.

A warm worker loads the workload when it starts and keeps it, so a trial sends only its candidate
(a small dict) over the pipe. The file is ``torch.save`` of the workload's fields (pickle, so an
``nn.Module`` travels with its class reference, and tensors keep their device); a TorchScript
module cannot be pickled and travels as ``torch.jit.save`` bytes instead.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any

import torch

from tuner.core.files import write_file_atomically
from tuner.core.workload import Workload

_SCRIPT_KEY = "_torchscript_bytes"


def dump_workload(workload: Workload, path: Path) -> None:
    """Write the workload for worker processes (atomically: a worker never reads half a file).

    Args:
        workload: The workload.
        path: Target file.

    Raises:
        Exception: Whatever pickling raises for a model that cannot be sent (the caller falls back
            to evaluating in its own process).
    """
    fields: dict[str, Any] = {f.name: getattr(workload, f.name) for f in dataclasses.fields(workload)}
    if isinstance(workload.model, torch.jit.ScriptModule):
        buf = io.BytesIO()
        torch.jit.save(workload.model, buf)
        fields["model"] = None
        fields[_SCRIPT_KEY] = buf.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file_atomically(path, lambda tmp: torch.save(fields, tmp))


def load_workload_file(path: Path) -> Workload:
    """Read a workload written by :func:`dump_workload` (in the worker process).

    Args:
        path: The file.

    Returns:
        The workload, its tensors on the devices they were saved from (a worker pinned with
        ``CUDA_VISIBLE_DEVICES`` sees its one GPU as ``cuda:0``).
    """
    fields = torch.load(path, weights_only=False)
    script = fields.pop(_SCRIPT_KEY, None)
    if script is not None:
        fields["model"] = torch.jit.load(io.BytesIO(script))  # type: ignore[no-untyped-call]
    return Workload(**fields)


__all__ = ["dump_workload", "load_workload_file"]
