"""ONNX rewrites for TVM's importer: unroll fixed-count ``Loop`` nodes; fold static shape computations.

TVM's Relax ONNX importer has no ``Loop``. TensorFlow graphs reach it through tf2onnx, which turns a
``tf.while_loop`` into a ``Loop`` with no trip count (``M`` = INT64_MAX) and a condition computed in
the body, even when the loop runs a fixed number of times (a decoder's ``while i < STEPS``).
:func:`unroll_loops` finds such loops' trip counts by running just the part of the body that
decides the condition, from the constants it starts from, and replaces each loop with that many
copies of its body. A loop whose condition depends on the model's inputs (a decoder that stops at
an end token) is left as it is, and so is one whose body holds subgraphs of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

#: Loops that would run more often than this are left rolled (the unrolled graph grows with it).
MAX_TRIPS = 256


def _const_value(node: Any) -> np.ndarray | None:
    """A ``Constant`` node's value (None for the attribute forms it does not handle)."""
    from onnx import numpy_helper

    for attr in node.attribute:
        if attr.name == "value":
            return np.asarray(numpy_helper.to_array(attr.t))
        if attr.name == "value_int":
            return np.asarray(attr.i, dtype=np.int64)
        if attr.name == "value_float":
            return np.asarray(attr.f, dtype=np.float32)
        if attr.name == "value_ints":
            return np.asarray(list(attr.ints), dtype=np.int64)
        if attr.name == "value_floats":
            return np.asarray(list(attr.floats), dtype=np.float32)
    return None


def _initializers(graph: Any) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {i.name: np.asarray(numpy_helper.to_array(i)) for i in graph.initializer}


def _producers(nodes: Iterable[Any]) -> dict[str, Any]:
    return {out: n for n in nodes for out in n.output if out}


def _has_subgraph(node: Any) -> bool:
    from onnx import AttributeProto

    return any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) for a in node.attribute)


def _slice(targets: list[str], nodes: list[Any], given: set[str], opsets: list[Any]
           ) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None:
    """What computes ``targets`` through ``nodes`` from tensors whose values will be ``given``, ready to run.

    Args:
        targets: Tensor names wanted.
        nodes: Nodes that may produce them (in topological order).
        given: Names whose values the caller passes (constants, initializers, loop state).
        opsets: The model's operator sets.

    Returns:
        A function from the given values to the targets' values (built once, run as often as
        needed: a loop's condition runs once per trip), or None when a target depends on
        something not given.
    """
    import onnx
    from onnx.reference import ReferenceEvaluator

    producers = _producers(nodes)
    needed: set[int] = set()
    seen: set[str] = set()
    stack = [t for t in targets if t not in given]
    while stack:
        name = stack.pop()
        if name in seen or name in given or name == "":
            continue
        seen.add(name)
        node = producers.get(name)
        if node is None or _has_subgraph(node):
            return None
        needed.add(id(node))
        stack.extend(node.input)
    order = [n for n in nodes if id(n) in needed]
    rest = [t for t in targets if t not in given]
    inputs = sorted({i for n in order for i in n.input if i in given})
    evaluator: list[Any] = []  # built at the first call, when the inputs' dtypes are known

    def run(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {t: values[t] for t in targets if t in given}
        if rest:
            if not evaluator:
                graph = onnx.helper.make_graph(
                    order, "slice",
                    [onnx.helper.make_tensor_value_info(i, onnx.helper.np_dtype_to_tensor_dtype(values[i].dtype), None)
                     for i in inputs],
                    [onnx.helper.make_tensor_value_info(t, onnx.TensorProto.UNDEFINED, None) for t in rest])
                evaluator.append(ReferenceEvaluator(onnx.helper.make_model(graph, opset_imports=opsets)))
            results = evaluator[0].run(None, {i: values[i] for i in inputs})
            out.update({t: np.asarray(v) for t, v in zip(rest, results, strict=True)})
        return out

    return run


def _evaluate(targets: list[str], nodes: list[Any], known: dict[str, np.ndarray], opsets: list[Any]
              ) -> dict[str, np.ndarray] | None:
    """Values of ``targets`` computed from ``known`` values through ``nodes``, or None if they need more."""
    run = _slice(targets, nodes, set(known), opsets)
    return None if run is None else run(known)


def _trip_count(loop: Any, body: Any, outer: dict[str, np.ndarray], outer_nodes: list[Any],
                opsets: list[Any]) -> int | None:
    """How many times ``loop`` runs, when constants decide it; else None."""
    m_name, cond_name = loop.input[0], loop.input[1]
    start = _evaluate([x for x in (m_name, cond_name) if x], outer_nodes, outer, opsets)
    if start is None:
        return None
    max_trips = int(start[m_name]) if m_name else None
    if cond_name and not bool(start[cond_name]):
        return 0
    # Body inputs: iteration number, condition, then the carried values (initialised from the loop's inputs).
    iter_name, cond_in, cond_out = body.input[0].name, body.input[1].name, body.output[0].name
    carried_in = [i.name for i in body.input[2:]]
    init_of = dict(zip(carried_in, loop.input[2:], strict=True))
    out_of = dict(zip(carried_in, (o.name for o in body.output[1:]), strict=False))
    body_nodes = list(body.node)
    producers = _producers(body_nodes)

    def carried_deps(name: str) -> set[str]:
        found: set[str] = set()
        stack, seen = [name], set()
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            if n in init_of:
                found.add(n)
            node = producers.get(n)
            if node is not None:
                stack.extend(node.input)
        return found

    # The carried values that the condition depends on, directly or through other carried values:
    # only those need known starting values (the rest may be the model's inputs).
    state_names: set[str] = set()
    todo = [cond_out]
    while todo:
        for n in carried_deps(todo.pop()) - state_names:
            state_names.add(n)
            todo.append(out_of[n])
    names = sorted(state_names)
    initial = _evaluate([init_of[n] for n in names], outer_nodes, outer, opsets)
    if initial is None:
        return None
    state = {n: initial[init_of[n]] for n in names}
    body_known = {**outer, **_initializers(body)}
    step = _slice([cond_out] + [out_of[n] for n in names], body_nodes,
                  set(body_known) | state_names | {iter_name, cond_in}, opsets)
    if step is None:
        return None
    for k in range(MAX_TRIPS + 1):
        if max_trips is not None and k >= max_trips:
            return k
        values = step({**body_known, **state, iter_name: np.asarray(k, dtype=np.int64), cond_in: np.asarray(True)})
        state = {n: values[out_of[n]] for n in names}
        if not bool(values[cond_out]):
            return k + 1
    return None  # more than MAX_TRIPS: left rolled


def _unrolled(loop: Any, body: Any, trips: int, tag: str) -> list[Any]:
    """``trips`` copies of ``body`` in place of ``loop``, ending in its outputs."""
    import onnx

    carried_in = [i.name for i in body.input[2:]]
    n_carried = len(carried_in)
    carried_out = [o.name for o in body.output[1:1 + n_carried]]
    scan_out = [o.name for o in body.output[1 + n_carried:]]
    current = dict(zip(carried_in, loop.input[2:], strict=True))
    nodes: list[Any] = []
    scans: list[list[str]] = [[] for _ in scan_out]
    local = {out for n in body.node for out in n.output if out}
    used = {i for n in body.node for i in n.input} | {o.name for o in body.output}
    for k in range(trips):
        suffix = f"__{tag}_{k}"
        rename = dict(current)
        # The iteration number and the incoming condition, as constants (where the body reads them).
        for name, value in ((body.input[0].name, np.asarray(k, dtype=np.int64)),
                            (body.input[1].name, np.asarray(True))):
            if name in used:
                rename[name] = f"{name}{suffix}"
                nodes.append(onnx.helper.make_node("Constant", [], [rename[name]],
                                                   value=onnx.numpy_helper.from_array(value)))
        for name in local:
            rename[name] = f"{name}{suffix}"
        for node in body.node:
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            copy.name = f"{node.name}{suffix}" if node.name else ""
            copy.input[:] = [rename.get(i, i) if i else i for i in node.input]
            copy.output[:] = [rename.get(o, o) if o else o for o in node.output]
            nodes.append(copy)
        current = {i: rename.get(o, o) for i, o in zip(carried_in, carried_out, strict=True)}
        for j, name in enumerate(scan_out):
            scans[j].append(rename.get(name, name))
    outputs = list(loop.output)
    for j in range(n_carried):
        if j < len(outputs) and outputs[j]:
            nodes.append(onnx.helper.make_node("Identity", [current[carried_in[j]]], [outputs[j]]))
    axes = f"unsqueeze_axes__{tag}"
    nodes.append(onnx.helper.make_node("Constant", [], [axes], value=onnx.numpy_helper.from_array(
        np.asarray([0], dtype=np.int64))))
    for j, parts in enumerate(scans):
        out = outputs[n_carried + j] if n_carried + j < len(outputs) else ""
        if not out:
            continue
        stacked = []
        for k, part in enumerate(parts):
            name = f"{part}__stacked"
            nodes.append(onnx.helper.make_node("Unsqueeze", [part, axes], [name], name=f"{tag}_scan{j}_{k}"))
            stacked.append(name)
        nodes.append(onnx.helper.make_node("Concat", stacked, [out], axis=0))
    return nodes


def unroll_loops(model: Any) -> Any:
    """A copy of ``model`` with each top-level ``Loop`` that constants decide unrolled.

    Args:
        model: An ``onnx.ModelProto``.

    Returns:
        The rewritten model (the same object when no loop could be unrolled).
    """
    import onnx

    if not any(n.op_type == "Loop" for n in model.graph.node):
        return model
    outer = _initializers(model.graph)
    for node in model.graph.node:
        if node.op_type == "Constant":
            value = _const_value(node)
            if value is not None:
                outer[node.output[0]] = value
    new_nodes: list[Any] = []
    lifted: list[Any] = []  # unrolled bodies' initializers, now the main graph's
    changed = False
    for index, node in enumerate(model.graph.node):
        if node.op_type != "Loop":
            new_nodes.append(node)
            continue
        body = next(a.g for a in node.attribute if a.name == "body")
        if any(_has_subgraph(n) for n in body.node) or len(node.input) < 2:
            new_nodes.append(node)
            continue
        trips = _trip_count(node, body, outer, list(model.graph.node[:index]), list(model.opset_import))
        if trips is None or (trips == 0 and len(body.output) > 1 + len(body.input) - 2):
            new_nodes.append(node)
            continue
        new_nodes.extend(_unrolled(node, body, trips, f"loop{index}"))
        taken = {i.name for i in model.graph.initializer} | {i.name for i in lifted}
        clash = [i.name for i in body.initializer if i.name in taken]
        if clash:
            raise ValueError(f"cannot unroll {node.name or 'a Loop'}: its body's initializers {clash} "
                             "shadow the graph's")
        lifted.extend(body.initializer)
        changed = True
    if not changed:
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(new_nodes)
    out.graph.initializer.extend(lifted)
    return out


def fold_static_shapes(model: Any, shapes: dict[str, tuple[int | str, ...]] | None) -> Any | None:
    """``model`` with its inputs fixed to ``shapes`` and its shape computations folded to constants.

    ONNX Runtime's basic graph optimizations (constant folding, standard ONNX ops only) do the
    folding; with every input dim known, ``Shape`` and what is computed from it become constants.

    Args:
        model: An ``onnx.ModelProto``.
        shapes: Input name -> dims, every dim an int (static mode).

    Returns:
        The folded model, or None when it cannot be had: a dim left symbolic, an input not named
        in ``shapes``, or no ONNX Runtime installed.
    """
    import importlib.util
    import tempfile
    from pathlib import Path

    import onnx

    if (not shapes or importlib.util.find_spec("onnxruntime") is None
            or any(not isinstance(d, int) for dims in shapes.values() for d in dims)):
        return None
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    weights = {i.name for i in fixed.graph.initializer}
    for value in fixed.graph.input:
        if value.name in weights:
            continue
        if value.name not in shapes:
            return None
        shape = value.type.tensor_type.shape
        del shape.dim[:]
        for d in shapes[value.name]:
            shape.dim.add().dim_value = int(d)
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.log_severity_level = 3  # its notes on removed initializers are not news
    with tempfile.TemporaryDirectory() as tmp:
        options.optimized_model_filepath = str(Path(tmp) / "folded.onnx")
        ort.InferenceSession(fixed.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return onnx.load(options.optimized_model_filepath)


__all__ = ["MAX_TRIPS", "fold_static_shapes", "unroll_loops"]
