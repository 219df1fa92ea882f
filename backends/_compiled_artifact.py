"""An Inductor candidate shipped for ``torch.compile`` to rebuild: ``torch.export`` programs, settings, caches.

An AOTInductor package compiles the model a second time ahead of time, with a C++ wrapper, and has
no CUDA graphs of its own. On a 4-core share of an H100 host, ViT-B/16's package took 79-97 s to
write and 45-60 s to check in a fresh process (``experiments/results/2026-12-06-h100-levels.md``),
so a ``reduce-overhead`` winner found in a 270 s run was skipped for want of time, and a
TorchScript finalist 25 % slower shipped instead (``...-h100-levels-run4.md``). The inductor
backend therefore ships every GPU candidate in this format (``backends.inductor.COMPILED_FORMAT_DEVICES``).

This format writes what ``torch.compile`` needs to rebuild the candidate warm in another process:

* the model's ``torch.export`` programs (the eager backend's format, one per range of shapes), so
  no Python source of the model is needed;
* ``torch.compile``'s mode settings and shape mode, in the artifact's meta;
* Inductor's cache artifacts (``torch.compiler.save_cache_artifacts``: compiled graphs, their
  kernels, autotuning results), recorded while the reloaded programs ran every test shape here.

The loader hot-loads the caches (``torch.compiler.load_cache_artifacts``) and compiles the programs
in the same mode: the first call of each shape traces the program again but finds its compiled
graph in the cache, and ``reduce-overhead`` replays from CUDA graph trees as the candidate did. On
another GPU or torch build the caches miss and the first calls compile cold: slower to start, same
model.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils import _pytree as pytree

from backends._export_cover import export_covering, load_covering, write_covering
from backends._torch_export import load_program
from tuner.core.workload import Workload

#: The ``format`` of such an artifact's meta.
COMPILED_FORMAT = "torch.compile"
#: The file of Inductor's cache artifacts in the artifact folder.
CACHE_FILE = "compile_cache.bin"

#: Compiles a loaded program's module as the candidate was compiled.
Compile = Callable[[torch.nn.Module], Callable[..., Any]]

@functools.cache
def starting_config() -> dict[str, Any]:
    """Inductor's settings as the first call found them: call it before this process compiles anything.

    A fresh process that loads the artifact has these settings too. Settings are part of the
    caches' keys, and an AOTInductor export leaves some set for the rest of its process
    (``aot_inductor.metadata`` among them): after one, the caches recorded here missed in a fresh
    process. Taken on first use, not on import: importing Inductor's settings costs over a second,
    which every process that imports the backends would pay.
    """
    import torch._inductor.config as inductor_config

    return inductor_config.get_config_copy()


def _as_started() -> contextlib.AbstractContextManager[Any]:
    """Inductor's settings put back, for the duration, to :func:`starting_config`'s."""
    import torch._inductor.config as inductor_config

    now = inductor_config.get_config_copy()
    changed: dict[str, Any] = {k: v for k, v in starting_config().items() if now.get(k) != v}
    patch: contextlib.AbstractContextManager[Any] = inductor_config.patch(changed)
    return patch


class CompiledModel:
    """Calls the compiled programs under ``torch.no_grad()``, copying the outputs out of CUDA graph buffers.

    ``reduce-overhead`` returns outputs in the graph trees' memory, which the next call overwrites:
    a deployed model must not hand those to a caller who keeps them.

    Args:
        fn: The compiled programs (:func:`~backends._export_cover.load_covering` over them).
        graphed: Whether they replay CUDA graphs (the outputs are copied then).
    """

    def __init__(self, fn: Callable[..., Any], graphed: bool) -> None:
        self.fn = fn
        self.graphed = graphed

    def __call__(self, *args: Any) -> Any:
        """Run the model.

        Args:
            *args: The model's inputs.

        Returns:
            Its outputs, owned by the caller.
        """
        with torch.no_grad():
            out = self.fn(*args)
        return pytree.tree_map_only(torch.Tensor, torch.clone, out) if self.graphed else out


def write_compiled(model: Any, workload: Workload, directory: Path, compile_fn: Compile,
                   graphed: bool) -> dict[str, Any]:
    """Export the model, then compile the written programs as :func:`load_compiled` will and save Inductor's caches.

    Args:
        model: The candidate's model (its precision, layout and flat outputs).
        workload: The test data: every sample is run once through the compiled programs.
        directory: Where to write (the programs, :data:`CACHE_FILE`).
        compile_fn: Compiles one loaded program's module in the candidate's mode and shape mode.
        graphed: Whether the compiled programs replay CUDA graphs.

    Returns:
        ``{"format": "torch.compile", "file": ..., "cache": ...}``, with ``programs`` where several
        programs take the test data's shapes (:func:`~backends._export_cover.write_covering`).

    Raises:
        Exception: Whatever ``torch.export``, Dynamo or Inductor raise.
    """
    meta = {"format": COMPILED_FORMAT, **write_covering(export_covering(model, workload), directory, torch.export.save)}
    # Compile what the loader will compile (the reloaded programs, not the model in memory), so
    # that the cache keys it looks up are the ones recorded here.
    loaded = _compiled_programs(directory, meta, workload.device, compile_fn)
    with _as_started(), torch.no_grad():
        for sample in workload.samples:
            loaded(*sample)
    saved = torch.compiler.save_cache_artifacts()
    if saved is not None:
        (directory / CACHE_FILE).write_bytes(saved[0])
        meta["cache"] = CACHE_FILE
    meta["cuda_graph"] = graphed
    return meta


def load_compiled(directory: Path, meta: dict[str, Any], device: str, compile_fn: Compile) -> CompiledModel:
    """Read back what :func:`write_compiled` wrote: hot-load the caches, compile the programs lazily.

    Args:
        directory: The artifact folder.
        meta: What :func:`write_compiled` returned.
        device: ``cpu`` or ``gpu``.
        compile_fn: Compiles one loaded program's module as the candidate was compiled.

    Returns:
        The model; each input shape compiles on its first call (from the caches where they hit).
    """
    if meta.get("cache"):
        torch.compiler.load_cache_artifacts((directory / str(meta["cache"])).read_bytes())
    return CompiledModel(_compiled_programs(directory, meta, device, compile_fn), bool(meta.get("cuda_graph")))


def _compiled_programs(directory: Path, meta: dict[str, Any], device: str, compile_fn: Compile) -> Callable[..., Any]:
    """The written programs, each loaded on ``device`` and compiled."""
    return load_covering(directory, meta, lambda file: compile_fn(load_program(file, device)))


__all__ = ["CACHE_FILE", "COMPILED_FORMAT", "CompiledModel", "load_compiled", "starting_config", "write_compiled"]
