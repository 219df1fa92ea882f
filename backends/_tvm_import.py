"""How models reach TVM Relax: through ``torch.export`` or through ONNX.

PyTorch route: ``torch.export`` (with :func:`decompositions` run first) and
``tvm.relax.frontend.torch.from_exported_program``. ONNX route: ``torch.onnx.export`` for PyTorch
models (TensorFlow models arrive as ONNX already, through tf2onnx) and
``tvm.relax.frontend.onnx.from_onnx``. Either way the result is an ``IRModule`` whose ``main``
takes the model's inputs in order and returns its outputs flattened, with the weights bound as
constants.

Static mode imports once per distinct test-data shape; dynamic mode once, with every dim that
varies in the test data symbolic (``torch.export.Dim`` / ONNX ``dim_param``).

This module defines no backend; importing it registers nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from backends._onnx_unroll import fold_static_shapes, unroll_loops
from backends._torch_export import bound_dynamic_shapes, cpu_copy, dynamic_shapes_spec

#: Importers, the values of the ``tvm/frontend`` dimension.
FRONTENDS: tuple[str, ...] = ("torch.export", "onnx")
#: ONNX opset used for the ONNX route (TVM 0.27's importer covers it).
ONNX_OPSET = 18


def _amax(x: torch.Tensor, dim: Any = (), keepdim: bool = False) -> torch.Tensor:
    """``aten.amax`` as a chain of ``max.dim``: TVM 0.27's importer has ``max.dim`` but no ``amax``."""
    dims = [dim] if isinstance(dim, int) else list(dim or range(x.dim()))
    ordered = sorted({d % x.dim() for d in dims}, reverse=True)
    for d in ordered:
        x = torch.max(x, d, keepdim=True).values
    if not keepdim:
        for d in ordered:
            x = x.squeeze(d)
    return x


def decompositions() -> dict[Any, Callable[..., Any]]:
    """The decomposition table run before import: torch's defaults plus ops TVM lacks.

    ``run_decompositions()`` with torch's table lowers, e.g., ``gru_cell`` to plain ops, but keeps
    ``amax`` (a core ATen op), which TVM 0.27's ``from_exported_program`` refuses (seen on the demo
    decoder: "Unsupported function types ['amax.default']").

    Returns:
        ``{op overload: decomposition}`` for ``ExportedProgram.run_decompositions``.
    """
    table = dict(torch.export.default_decompositions())
    table[torch.ops.aten.amax.default] = _amax
    return table


def cpu_export(model: Any, args: tuple[torch.Tensor, ...],
               dynamic_shapes: tuple[dict[int, Any] | None, ...] | None = None) -> torch.export.ExportedProgram:
    """``torch.export`` a CPU copy of the model, decomposed with :func:`decompositions`.

    TVM compiles the graph for its own target, so the program's device only matters for what
    the export traces: on CUDA a ``GRUCell`` traces to ``aten._thnn_fused_gru_cell``, which the
    importer lacks (seen on an H100), and weights on the GPU become constants that TVM's
    ``FoldConstant`` then feeds to kernels it compiled for the host ("Mismatched A.device_type
    ... expected cpu", seen there too). A CPU copy avoids both.

    Args:
        model: The module, on any device.
        args: Example inputs, on any device.
        dynamic_shapes: ``torch.export`` dynamic shapes, or None.

    Returns:
        The decomposed program, on the CPU.
    """
    model, args = cpu_copy(model, args)
    with torch.no_grad():
        program = torch.export.export(model, args, dynamic_shapes=bound_dynamic_shapes(model, dynamic_shapes))
        decomposed: torch.export.ExportedProgram = program.run_decompositions(decompositions())
    return decomposed


def _matmul(node: Any, importer: Any) -> Any:
    """``mm``/``bmm``/``matmul`` with the inputs' dtype as output dtype.

    TVM 0.27's importer gives every matmul ``out_dtype="float32"``, so an fp16 model's matmul
    returns fp32 and the next fp16 op refuses the mix (seen: ``R.add(fp16 bias, fp32 lv3)`` for an
    fp16 ``nn.Linear``).
    """
    from tvm import relax

    a, b = (importer.env[arg] for arg in node.args[:2])
    return importer.block_builder.emit(relax.op.linear_algebra.matmul(a, b))


def _scaled(importer: Any, x: Any, factor: Any) -> Any:
    from tvm import relax

    if factor == 1:
        return x
    return importer.block_builder.emit(relax.op.multiply(x, relax.const(factor, x.ty.dtype)))


def _addmm(node: Any, importer: Any) -> Any:
    """``addmm``/``baddbmm`` (``beta * bias + alpha * x @ w``) in the inputs' dtype (see :func:`_matmul`)."""
    from tvm import relax

    bias, x, w = (importer.env[arg] for arg in node.args[:3])
    alpha, beta = node.kwargs.get("alpha", 1), node.kwargs.get("beta", 1)
    bb = importer.block_builder
    product = _scaled(importer, bb.emit(relax.op.linear_algebra.matmul(x, w)), alpha)
    if beta == 0:
        return product
    return bb.emit(relax.op.add(_scaled(importer, bias, beta), product))


#: Converters that replace the importer's own for these ATen ops (``custom_convert_map``).
CONVERTERS: dict[str, Callable[[Any, Any], Any]] = {
    "mm.default": _matmul, "bmm.default": _matmul, "matmul.default": _matmul,
    "addmm.default": _addmm, "baddbmm.default": _addmm,
}


def from_torch(model: Any, args: tuple[torch.Tensor, ...],
               dynamic_shapes: tuple[dict[int, Any] | None, ...] | None = None) -> Any:
    """Import a PyTorch model into Relax through ``torch.export``.

    Args:
        model: The module (on its device; GPU models are exported from a CPU copy).
        args: Example inputs.
        dynamic_shapes: ``torch.export`` dynamic shapes (see ``dynamic_shapes_spec``), or None.

    Returns:
        The ``tvm.IRModule``.

    Raises:
        Exception: Whatever ``torch.export`` or the importer raise (an unsupported operator, say).
    """
    from tvm.relax.frontend.torch import from_exported_program

    program = cpu_export(model, args, dynamic_shapes)
    # The decompositions are ours: the importer's own pass would undo the amax rewrite.
    return from_exported_program(program, keep_params_as_input=False, run_ep_decomposition=False,
                                 custom_convert_map=CONVERTERS)


def to_onnx(model: Any, args: tuple[torch.Tensor, ...],
            dynamic_shapes: tuple[dict[int, Any] | None, ...] | None = None) -> Any:
    """Export a PyTorch model to ONNX (the dynamo exporter, as torch recommends).

    Args:
        model: The module.
        args: Example inputs.
        dynamic_shapes: As for :func:`from_torch`; symbolic dims become ONNX ``dim_param``.

    Returns:
        The ONNX ``ModelProto``.
    """
    model, args = cpu_copy(model, args)
    program = cpu_export(model, args, dynamic_shapes)
    onnx_program = torch.onnx.export(program, args, dynamo=True, opset_version=ONNX_OPSET,
                                     dynamic_shapes=bound_dynamic_shapes(model, dynamic_shapes), verbose=False)
    if onnx_program is None:  # only the legacy exporter returns None
        raise RuntimeError("torch.onnx.export returned no program")
    return onnx_program.model_proto


def from_onnx(model: bytes | Any, shapes: dict[str, tuple[int | str, ...]] | None = None) -> Any:
    """Import an ONNX model into Relax.

    Args:
        model: A serialized ``ModelProto`` or the proto itself.
        shapes: Input name to shape, overriding the model's (static mode fixes every dim); dims
            given as strings stay symbolic.

    Returns:
        The ``tvm.IRModule``, weights bound as constants.

    Raises:
        Exception: Whatever the importer raises (an operator it lacks, say).
    """
    import onnx
    from tvm.relax.frontend.onnx import from_onnx as tvm_from_onnx

    proto = onnx.load_from_string(model) if isinstance(model, bytes) else model
    # TVM's importer has no Loop: unroll the loops that run a fixed number of times (tf2onnx's
    # form of a tf.while_loop over a constant bound); a loop that is left fails the import as before.
    proto = unroll_loops(proto)
    # The importer takes every input for float32 unless told (an int64 token id input, say).
    dtypes = {i.name: onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type).name
              for i in graph_inputs(proto)}
    try:
        return tvm_from_onnx(proto, shape_dict=shapes, dtype_dict=dtypes, keep_params_in_input=False)
    except Exception:
        folded = fold_static_shapes(proto, shapes)
        if folded is None:
            raise
    # tf2onnx computes reshape targets at run time (Shape -> Gather -> Concat), where the importer
    # loses the shape (seen on the TF ASR decoder: ArgMax of a tensor of unknown rank). With every
    # input dim fixed (static mode), folding those computations gives it constants to work with.
    return tvm_from_onnx(folded, shape_dict=shapes, dtype_dict=dtypes, keep_params_in_input=False)


def graph_inputs(proto: Any) -> list[Any]:
    """The graph inputs of an ONNX ``ModelProto`` that are not initializers, in order."""
    inits = {i.name for i in proto.graph.initializer}
    return [i for i in proto.graph.input if i.name not in inits]


def import_model(frontend: str, model: Any, args: tuple[torch.Tensor, ...], dynamic: bool,
                 spec: tuple[dict[int, Any] | None, ...] | None) -> Any:
    """Import ``model`` through ``frontend`` for one static shape or for all (dynamic).

    Args:
        frontend: One of :data:`FRONTENDS`.
        model: The PyTorch module, or a :class:`~tuner.core.tf_model.TFModel` (through tf2onnx).
        args: The example inputs (static mode: a sample of the shape to compile for).
        dynamic: Whether to keep the varying dims symbolic.
        spec: ``dynamic_shapes`` for the dynamic import (ignored when static).

    Returns:
        The ``tvm.IRModule``.

    Raises:
        ValueError: For an unknown frontend.
    """
    if frontend not in FRONTENDS:
        raise ValueError(f"tvm/frontend {frontend!r} is not one of {FRONTENDS}")
    from tuner.core.tf_model import TFModel

    if isinstance(model, TFModel):
        if frontend != "onnx":
            raise ValueError(f"a TensorFlow graph reaches TVM through ONNX, not {frontend}")
        from tuner.runtime.tf_session import to_onnx as tf_to_onnx

        # tf2onnx keeps the dims TF leaves unknown as dim_params: symbolic in TVM (dynamic mode).
        data = tf_to_onnx(model)
        if dynamic:
            return from_onnx(data)
        import onnx

        inputs = graph_inputs(onnx.load_from_string(data))
        return from_onnx(data, {i.name: tuple(a.shape) for i, a in zip(inputs, args, strict=True)})
    spec = spec if dynamic else None
    if frontend == "torch.export":
        return from_torch(model, args, spec)
    proto = to_onnx(model, args, spec)
    if not dynamic:
        inputs = graph_inputs(proto)
        return from_onnx(proto, {i.name: tuple(a.shape) for i, a in zip(inputs, args, strict=True)})
    return from_onnx(proto)


def mixed_precision(mod: Any) -> Any:
    """TVM's own fp16: Relax's ``ToMixedPrecision`` on an fp32 import (fp16 compute, fp32 accumulation).

    The pass works inside dataflow blocks, so the module is put in that form first; the
    function's inputs and outputs stay fp32.
    """
    from tvm import relax

    mod = relax.transform.ConvertToDataflow()(mod)
    return relax.transform.ToMixedPrecision(out_dtype="float32")(mod)


__all__ = ["FRONTENDS", "cpu_export", "decompositions", "dynamic_shapes_spec", "from_onnx", "from_torch",
           "graph_inputs", "import_model", "mixed_precision", "to_onnx"]
