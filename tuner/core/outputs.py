"""A model's outputs as the tuner passes them (a flat tuple of tensors), and back in the model's own structure.

Models return tensors in structures of their library's classes: Hugging Face's ``ModelOutput``
subclasses, a ``DynamicCache``, named tuples, dicts. Exporters, tracers and compilers each take
some of these and refuse others, and a fresh process can rebuild them only once the classes are
registered with torch's pytree again. So every backend compiles the model with its outputs
flattened to a tuple of tensors (:class:`FlatOutputs`), and an artifact keeps the structure as an
:class:`OutputSpec`: torch's own serialized ``TreeSpec`` (``treespec_dumps``), the non-tensor leaves
(``None``, numbers), and the classes it names, which the loader imports (and registers) itself,
so the user needs no import to get the structure back.

Some library classes flatten only once their library registers them, with a call of its own that
a user would have to know: :data:`REGISTRATIONS` names it, and the spec makes the call.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json
from collections.abc import Iterator
from typing import Any

import torch
import torch.utils._pytree as pytree
from torch import nn

#: Classes that torch's pytree flattens only after their library's own registration call:
#: ``"module.Class": "module:function"``.
REGISTRATIONS: dict[str, str] = {
    "transformers.cache_utils.DynamicCache":
        "transformers.integrations.executorch:register_dynamic_cache_export_support",
}
#: Node types torch's pytree knows by itself: nothing to import or register for them.
_BUILTIN_NODES = ("builtins.", "collections.")


def flatten_outputs(out: Any) -> tuple[torch.Tensor, ...]:
    """The tensors of a model's output (tensor, tuple, list, dict, a library's class), in pytree order."""
    return tuple(leaf for leaf in pytree.tree_leaves(out) if isinstance(leaf, torch.Tensor))


def _fqn(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _resolve(fqn: str) -> type:
    """The class named ``module.Qualname``, imported (the longest importable module prefix wins)."""
    parts = fqn.split(".")
    for n in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:n]))
        except ImportError:
            continue
        for attr in parts[n:]:
            obj = getattr(obj, attr)
        return obj  # type: ignore[no-any-return]
    raise ImportError(f"cannot import {fqn}")


def _register(cls: type) -> None:
    """Make ``cls`` a pytree node that serializes: its library's call, or torch's for a named tuple."""
    fqn = _fqn(cls)
    if fqn in REGISTRATIONS and cls not in pytree.SUPPORTED_NODES:
        module, function = REGISTRATIONS[fqn].split(":")
        getattr(importlib.import_module(module), function)()
    elif issubclass(cls, tuple) and hasattr(cls, "_fields") and cls not in pytree.SUPPORTED_SERIALIZED_TYPES:
        pytree._register_namedtuple(cls, serialized_type_name=fqn)


def _node_types(spec: pytree.TreeSpec) -> Iterator[type]:
    """The classes of a spec's nodes (a named tuple's own class, not pytree's marker)."""
    if spec.is_leaf():
        return
    if spec.type is not None and spec.type is not tuple and spec.type is not list and spec.type is not dict:
        yield spec.context if pytree.is_namedtuple_class(spec.context) else spec.type
    for i in range(spec.num_children):
        yield from _node_types(spec.child(i))


def _known_leaves(output: Any) -> None:
    """Register the library classes among ``output``'s leaves, so that they flatten into tensors."""
    for leaf in pytree.tree_leaves(output):
        if not isinstance(leaf, torch.Tensor) and _fqn(type(leaf)) in REGISTRATIONS:
            _register(type(leaf))


@functools.cache
def _loaded_tree(treespec: str, types: tuple[str, ...]) -> pytree.TreeSpec:
    """A spec's ``TreeSpec``, once per process (a loaded artifact rebuilds its outputs on every call).

    Kept per process, not on the spec: a spec that travels to a worker must register its classes there.
    """
    for fqn in types:
        _register(_resolve(fqn))
    return pytree.treespec_loads(treespec)


@dataclasses.dataclass(frozen=True)
class OutputSpec:
    """How to rebuild a model's outputs from the tuple of their tensors.

    Attributes:
        treespec: torch's serialized ``TreeSpec`` of the outputs (``treespec_dumps``).
        constants: The non-tensor leaves (``None``, numbers, strings) by leaf index.
        types: The classes the spec names (``module.Qualname``), imported and registered before
            it is read back.
    """

    treespec: str
    constants: tuple[tuple[int, Any], ...] = ()
    types: tuple[str, ...] = ()

    @classmethod
    def of(cls, output: Any) -> OutputSpec:
        """The spec of one output of the model.

        Raises:
            ValueError: When a leaf is neither a tensor nor a JSON value, or a class cannot be
                serialized (the message names it).
        """
        _known_leaves(output)
        leaves, spec = pytree.tree_flatten(output)
        types = tuple(dict.fromkeys(_fqn(t) for t in _node_types(spec) if not _fqn(t).startswith(_BUILTIN_NODES)))
        for t in _node_types(spec):
            _register(t)
        constants = []
        for i, leaf in enumerate(leaves):
            if isinstance(leaf, torch.Tensor):
                continue
            try:
                json.dumps(leaf)
            except TypeError:
                raise ValueError(f"the model's outputs hold a {type(leaf).__name__}, which is neither a tensor nor a "
                                 "plain value, and torch's pytree does not know how to flatten it") from None
            constants.append((i, leaf))
        try:
            dumped = pytree.treespec_dumps(spec)
        except (NotImplementedError, TypeError) as e:
            raise ValueError(f"the structure of the model's outputs cannot be saved: {e}") from None
        return cls(dumped, tuple(constants), types)

    @property
    def flat(self) -> bool:
        """Whether the outputs are already a tensor or a tuple of tensors (nothing to rebuild)."""
        spec = self.load()
        return not self.constants and (spec.is_leaf() or (
            spec.type is tuple and all(spec.child(i).is_leaf() for i in range(spec.num_children))))

    def load(self) -> pytree.TreeSpec:
        """The ``TreeSpec``, its classes imported and registered first (in a fresh process too)."""
        return _loaded_tree(self.treespec, self.types)

    def rebuild(self, tensors: Any) -> Any:
        """The output in the model's structure, from its tensors (as :func:`flatten_outputs` gives them).

        Raises:
            ValueError: When the number of tensors does not match the spec.
        """
        spec = self.load()
        constants = dict(self.constants)
        given = list(tensors) if isinstance(tensors, (tuple, list)) else [tensors]
        if len(given) != spec.num_leaves - len(constants):
            raise ValueError(f"the artifact returned another number of outputs ({len(given)}) than the model's "
                             f"{spec.num_leaves - len(constants)}")
        it = iter(given)
        return pytree.tree_unflatten([constants[i] if i in constants else next(it) for i in range(spec.num_leaves)],
                                     spec)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (kept in ``artifact.json``)."""
        return {"treespec": self.treespec, "constants": [list(c) for c in self.constants], "types": list(self.types)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutputSpec:
        """The inverse of :meth:`to_dict`."""
        return cls(data["treespec"], tuple((int(i), v) for i, v in data.get("constants", ())),
                   tuple(data.get("types", ())))


class FlatOutputs(nn.Module):
    """``model`` with its outputs as a tuple of tensors (what every backend compiles and exports).

    Args:
        model: The model.
        spec: Its output spec.
    """

    def __init__(self, model: Any, spec: OutputSpec) -> None:
        super().__init__()
        self.model = model
        self.spec = spec

    def forward(self, *args: Any) -> tuple[torch.Tensor, ...]:
        """The model's output tensors, in the spec's order."""
        return flatten_outputs(self.model(*args))


class Rebuilt:
    """A loaded artifact that returns flat tensors, called with the model's own output structure.

    Args:
        fn: The loaded artifact.
        spec: The model's output spec.
    """

    def __init__(self, fn: Any, spec: OutputSpec) -> None:
        self.fn = fn
        self.spec = spec
        spec.load()  # import and register the classes now, not on the first call

    def __call__(self, *args: Any) -> Any:
        """Run the artifact and rebuild its outputs."""
        return self.spec.rebuild(self.fn(*args))


def with_flat_outputs(model: Any, spec: OutputSpec | None) -> Any:
    """``model`` as backends compile it: :class:`FlatOutputs` unless its outputs are flat already."""
    return model if spec is None or spec.flat else FlatOutputs(model, spec)


__all__ = ["REGISTRATIONS", "FlatOutputs", "OutputSpec", "Rebuilt", "flatten_outputs", "with_flat_outputs"]
