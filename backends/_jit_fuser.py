"""TorchScript's JIT fuser switches, set around each call of a TorchScript module.

The profiling executor fuses during a module's first runs, and it reads process-wide switches
when it does, so a module that must run under one fuser (the ``torchscript`` backend's ``fuser``
option, or none at all for a traced eager model) is wrapped in :class:`FuserCall`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch

#: The JIT switches of each fuser, as ``torch.jit.fuser`` sets them, less its nvFuser calls: those
#: are no-ops since torch 2.2 that print a C++ warning on every call (that is, every measured run).
FUSER_FLAGS: dict[str, dict[str, bool]] = {
    "none": {"cpu": False, "gpu": False, "texpr": False, "llga": False},
    "fuser0": {"cpu": True, "gpu": True, "texpr": False, "llga": False},
    "fuser1": {"cpu": True, "gpu": True, "texpr": True, "llga": False},
    "fuser3": {"cpu": True, "gpu": False, "texpr": True, "llga": True},
}


@contextlib.contextmanager
def fuser_flags(name: str) -> Iterator[None]:
    """Switch the TorchScript fuser for the duration, like ``torch.jit.fuser(name)``.

    Args:
        name: A key of :data:`FUSER_FLAGS`.

    Raises:
        ValueError: For an unknown fuser name.
    """
    if name not in FUSER_FLAGS:
        raise ValueError(f"unknown TorchScript fuser {name!r}: use one of {sorted(FUSER_FLAGS)}")
    c = torch._C
    flags = FUSER_FLAGS[name]
    old = (c._jit_can_fuse_on_cpu(), c._jit_can_fuse_on_gpu(), c._jit_texpr_fuser_enabled(), c._jit_llga_enabled())
    if flags["texpr"]:
        # NNC and oneDNN Graph fuse only under the profiling executor with optimization on.
        old_exec = c._jit_set_profiling_executor(True)
        old_opt = c._get_graph_executor_optimize(True)
    c._jit_override_can_fuse_on_cpu(flags["cpu"])
    c._jit_override_can_fuse_on_gpu(flags["gpu"])
    c._jit_set_texpr_fuser_enabled(flags["texpr"])
    c._jit_set_llga_enabled(flags["llga"])
    try:
        yield
    finally:
        c._jit_override_can_fuse_on_cpu(old[0])
        c._jit_override_can_fuse_on_gpu(old[1])
        c._jit_set_texpr_fuser_enabled(old[2])
        c._jit_set_llga_enabled(old[3])
        if flags["texpr"]:
            c._jit_set_profiling_executor(old_exec)
            c._get_graph_executor_optimize(old_opt)


def current_flags() -> dict[str, bool]:
    """The process's JIT fuser switches now, keyed as :data:`FUSER_FLAGS`' entries."""
    c = torch._C
    return {"cpu": c._jit_can_fuse_on_cpu(), "gpu": c._jit_can_fuse_on_gpu(), "texpr": c._jit_texpr_fuser_enabled(),
            "llga": c._jit_llga_enabled()}


def fusion_on(flags: dict[str, bool], device: str) -> tuple[bool, ...]:
    """The switches that decide what fuses on ``device``.

    CPU fusion needs ``cpu`` (and oneDNN Graph ``llga``); GPU fusion needs ``gpu``, by NNC when
    ``texpr`` is on.
    """
    return (flags["cpu"], flags["llga"]) if device == "cpu" else (flags["gpu"], flags["texpr"])


class FuserCall:
    """A TorchScript module called under its fuser (:func:`fuser_flags`) on every call.

    Args:
        module: The TorchScript module.
        fuser: A ``torch.jit.fuser`` name (``"none"``, ``"fuser1"``, ...).
    """

    def __init__(self, module: Callable[..., Any], fuser: str) -> None:
        self.module = module
        self.fuser = fuser

    def __call__(self, *args: Any) -> Any:
        """Run the module under the fuser.

        Args:
            *args: The model's inputs.

        Returns:
            The module's outputs.
        """
        with fuser_flags(self.fuser):
            return self.module(*args)
