"""A TorchScript graph pass: constants moved to the model's device once, at build time, not on every call.

``torch.jit.trace`` records a tensor made in ``forward`` on the GPU (``torch.tensor([], device=d)``,
as Hugging Face's ``DynamicCache`` starts each layer) as a CPU constant and an ``aten::to`` that
copies it to the GPU on every call. A CUDA graph cannot capture that copy ("Cannot copy between
CPU and CUDA tensors during CUDA graph capture unless the CPU tensor is pinned"): every graphed
TorchScript candidate of GPT-2 failed so on an H100 (experiments/results/2026-12-06-h100-levels-run6.md).
``torch.jit.freeze``'s constant propagation leaves these moves alone (the frozen candidates failed
too). This pass runs each such move once and puts its result in the graph as a constant.

A shape read in ``forward`` (a past length, say) is traced as a CPU scalar tensor
(``prim::NumToTensor``), and where code adds it to a GPU tensor the trace moves it there first:
another copy from the host that a capture refuses (GPT-2's graphed TorchScript trials on an H100
failed so after the fold above, experiments/results/2026-12-07-h100-levels-run8.md). Elementwise
ops take a 0-dim CPU tensor beside GPU tensors as a scalar, so such moves are dropped where only
those ops read them (:func:`drop_scalar_moves`); the value is a shape's, the same for every call of
one input signature, which is what a CUDA graph is captured for.

This module defines no :class:`~backends.base.Backend`, so importing it registers nothing.
"""

from __future__ import annotations

from typing import Any

import torch

#: Ops whose output may be the input itself or a view of it: an in-place op on that output changes
#: the input, so their uses are followed too.
_ALIASING = frozenset({
    "aten::detach", "aten::alias", "aten::view", "aten::view_as", "aten::reshape", "aten::reshape_as",
    "aten::expand", "aten::expand_as", "aten::slice", "aten::select", "aten::narrow", "aten::unsqueeze",
    "aten::squeeze", "aten::flatten", "aten::t", "aten::transpose", "aten::permute", "aten::as_strided",
    "aten::contiguous", "aten::to", "aten::type_as", "aten::__getitem__", "prim::ListConstruct",
    "prim::TupleConstruct", "prim::ListUnpack", "prim::TupleUnpack",
})


def _only_read(value: torch.Value) -> bool:
    """Whether every use of ``value``, and of each alias made of it, leaves it as it is.

    Not where an in-place op (``add_``, ``copy_``: kinds ending in ``_``) takes it or an alias of
    it, where it is returned or stored, or where it goes into a call the pass does not look into.
    """
    for use in value.uses():
        kind = use.user.kind()
        if kind.endswith("_") or kind in ("prim::Return", "prim::SetAttr", "prim::CallMethod", "prim::CallFunction"):
            return False
        if kind in _ALIASING and not all(_only_read(out) for out in use.user.outputs()):
            return False
    return True


def _run(node: torch.Node, args: list[Any]) -> Any:
    """Run a node's ``aten::to`` overload on constant arguments, its keyword-only ones by name."""
    schema = torch._C.parse_schema(node.schema())
    positional = [v for a, v in zip(schema.arguments, args, strict=True) if not a.kwarg_only]
    keywords = {a.name: v for a, v in zip(schema.arguments, args, strict=True) if a.kwarg_only}
    return getattr(torch.ops.aten.to, schema.overload_name or "default")(*positional, **keywords)


def fold_constant_moves(graph: torch.Graph) -> int:
    """Replace each ``aten::to`` of a tensor constant whose result is only read by the moved constant.

    Args:
        graph: A TorchScript graph (a traced module's ``forward``).

    Returns:
        How many moves were folded.
    """
    folded = 0
    for node in list(graph.nodes()):
        inputs = list(node.inputs())
        if node.kind() != "aten::to" or any(v.node().kind() != "prim::Constant" for v in inputs):
            continue
        args = [v.toIValue() for v in inputs]
        if not isinstance(args[0], torch.Tensor) or not _only_read(node.output()):
            continue
        moved = graph.insertConstant(_run(node, args))  # type: ignore[attr-defined]
        moved.node().moveBefore(node)
        node.output().replaceAllUsesWith(moved)
        node.destroy()
        folded += 1
    return folded


#: Elementwise ops that take a 0-dim CPU tensor beside tensors of another device (as a scalar).
_SCALAR_TAKING = frozenset({
    "aten::add", "aten::sub", "aten::rsub", "aten::mul", "aten::div", "aten::floor_divide", "aten::remainder",
    "aten::eq", "aten::ne", "aten::lt", "aten::le", "aten::gt", "aten::ge",
})
#: ``aten::to``'s dtype argument (torch's ScalarType numbers) for the types a shape scalar has.
_SCALAR_DTYPES = {4: "Long", 7: "Double"}


def _device_move(node: torch.Node) -> bool:
    """Whether an ``aten::to`` overload with a device argument keeps its input's dtype (a constant None or the same)."""
    schema = torch._C.parse_schema(node.schema())
    args = dict(zip((a.name for a in schema.arguments), node.inputs(), strict=True))
    if "device" not in args:  # to(other): another tensor's dtype and device
        return False
    dtype = args.get("dtype")
    if dtype is None:
        return True
    if dtype.node().kind() != "prim::Constant":
        return False
    value = dtype.toIValue()
    wanted: str | None = node.inputsAt(0).type().scalarType()
    return value is None or (isinstance(value, int) and _SCALAR_DTYPES.get(value) == wanted)


def drop_scalar_moves(graph: torch.Graph) -> int:
    """Remove each ``aten::to`` of a shape scalar (``prim::NumToTensor``) that only elementwise ops read.

    Only a move that keeps the scalar's dtype (it changes the device alone) is dropped.

    Args:
        graph: A TorchScript graph (a traced module's ``forward``).

    Returns:
        How many moves were dropped.
    """
    dropped = 0
    for node in list(graph.nodes()):
        if node.kind() != "aten::to" or node.inputsAt(0).node().kind() != "prim::NumToTensor":
            continue
        if not _device_move(node) or not all(u.user.kind() in _SCALAR_TAKING for u in node.output().uses()):
            continue
        scalar = node.inputsAt(0)
        node.output().replaceAllUsesWith(scalar)
        node.destroy()
        dropped += 1
    return dropped


def fold_module_constant_moves(module: torch.jit.ScriptModule) -> int:
    """:func:`fold_constant_moves` and :func:`drop_scalar_moves` over each ``forward`` of a traced module.

    Returns:
        How many moves were folded or dropped in all.
    """
    # Containers (a traced ModuleList) have no forward of their own.
    graphs = [m.graph for m in module.modules()
              if isinstance(m, torch.jit.ScriptModule) and m._c._has_method("forward")]
    return sum(fold_constant_moves(g) + drop_scalar_moves(g) for g in graphs)
