"""Compiler backends, one module each.

Every module in this package is imported on first use, so that each
:class:`~backends.base.Backend` subclass registers itself.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from backends.base import Backend
from tuner.core.errors import error_line

_loaded = False


def _discover() -> None:
    global _loaded
    if _loaded:
        return
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")
    _loaded = True


def get_backend(name: str, cache_dir: Path | None = None) -> Backend:
    """An instance of the backend registered as ``name``.

    Args:
        name: The registered name.
        cache_dir: Where the backend keeps what later candidates and studies reuse (TVM's tuning
            databases); None: nothing persists beyond the instance.

    Raises:
        KeyError: For an unknown name.
    """
    _discover()
    return Backend._registry[name](cache_dir=cache_dir)


def backend_names(*, include_test_only: bool = False) -> list[str]:
    """Every registered backend name, in a stable order (eager first)."""
    _discover()
    names = [n for n, cls in Backend._registry.items() if include_test_only or not cls.test_only]
    return sorted(names, key=lambda n: (n != "eager", n))


def available_backends(framework: str, device: str) -> list[str]:
    """Backends that accept ``framework`` and can run on ``device`` here."""
    _discover()
    return [n for n in backend_names() if framework in Backend._registry[n].frameworks
            and Backend._registry[n].is_available(device)]


def backend_class(name: str) -> type[Backend]:
    """The class registered as ``name`` (KeyError when unknown)."""
    _discover()
    return Backend._registry[name]


__all__ = ["Backend", "available_backends", "backend_class", "backend_names", "error_line", "get_backend"]
