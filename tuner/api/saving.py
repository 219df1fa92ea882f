"""``tuner.save``: any model ``tuner.optimize`` returned, written so that ``tuner.load_optimized`` reads it.

A GraphDef is written as a binary ``.pb`` (what ``tf.train.write_graph(..., as_text=False)``
writes), a ScriptModule with ``torch.jit.save``, and any other returned model (a loaded artifact,
an ``nn.Module``) as a copy of its artifact folder, which ``optimize`` remembers here.
"""

from __future__ import annotations

import os
import shutil
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuner.core.errors import UserError
from tuner.core.files import write_dir_atomically, write_file_atomically
from tuner.core.kinds import GRAPHDEF, TORCHSCRIPT, model_kind

# Artifact folders of the models optimize returned, for ``save``: id -> (weak or strong ref, dir).
_ARTIFACTS: dict[int, tuple[Callable[[], Any], Path]] = {}


def remember(model: Any, directory: Path) -> None:
    """Note where ``model``'s artifact folder is, for :func:`save`."""
    key = id(model)
    try:
        ref: Callable[[], Any] = weakref.ref(model)
        weakref.finalize(model, _ARTIFACTS.pop, key, None)
    except TypeError:
        # Not weak-referenceable (a protobuf, say): keep it alive so that its id stays its own.
        def ref() -> Any:
            return model
    _ARTIFACTS[key] = (ref, directory)


def _artifact_of(model: Any) -> Path | None:
    entry = _ARTIFACTS.get(id(model))
    if entry is None or entry[0]() is not model:
        return None
    return entry[1]


def save(model: Any, path: str | os.PathLike[str]) -> Path:
    """Save a model that :func:`tuner.optimize` returned; :func:`tuner.load_optimized` reads it back.

    Files and folders are written under a temporary name and renamed into place.

    Args:
        model: The optimized model.
        path: A file for a GraphDef or ScriptModule, a folder otherwise.

    Returns:
        The path written.

    Raises:
        UserError: When the model was not returned by ``optimize`` and is not a GraphDef or
            ScriptModule, or when the path cannot be written.
    """
    target = Path(path)
    kind = model_kind(model)
    if kind in (GRAPHDEF, TORCHSCRIPT):
        if target.is_dir():
            raise UserError(f"{target} is a folder", "pass a file path to save a GraphDef or a ScriptModule to")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create {target.parent} ({e.strerror})", "pass a writable path") from None
        write_file_atomically(target, lambda tmp: _save_native(model, kind, tmp))
        return target
    source = _artifact_of(model)
    if source is None:
        raise UserError(f"cannot save this {type(model).__name__}: it was not returned by tuner.optimize "
                        "(or its artifact was not written)",
                        "pass the model tuner.optimize returned, or save it with its framework's own call")
    if target.exists() and not target.is_dir():
        raise UserError(f"{target} is a file", "pass a folder path: this model is saved as its artifact folder")

    def fill(tmp: Path) -> None:
        for item in source.iterdir():
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / item.name)

    write_dir_atomically(target, fill)
    return target


def _save_native(model: Any, kind: str, path: Path) -> None:
    if kind == GRAPHDEF:
        path.write_bytes(model.SerializeToString())
    else:
        import torch

        torch.jit.save(model, str(path))


__all__ = ["remember", "save"]
