"""``torch.export`` programs that together take every input shape of the test data, and the pick at call time.

One exported program holds one path through the model's shape-dependent branches. Where the
test data takes several, one program cannot take them all: GPT-2's attention is causal only for
more than one query token (``is_causal = q_len > 1``), so a program exported from a decode step
(one token) specializes the token count to 1, and one exported from a prefill takes only more
than one (seen on an H100 with torch 2.11: ``Guard failed: args_0.size()[1] == 1`` when the
reloaded artifact met the prefill). Dims of size 0 or 1 are specialized by ``Dim.AUTO`` too (an
empty past cache).

:func:`export_covering` therefore exports from the largest sample first, then from each sample
that no program so far takes, and records for each program the input shapes it takes
(:func:`taken_shapes`); :class:`ShapeRanges` picks, on each call, the first program that takes the
call's shapes.

This module defines no :class:`~backends.base.Backend`, so importing it registers nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from backends._torch_export import dynamic_shapes_spec, export_program
from tuner.core.workload import Workload

#: One dim as a program takes it: an exact size, or ``[lowest, highest]`` (highest None: unbounded).
DimRange = int | list[int | None]
#: Per input of one program, its dims (:data:`DimRange`).
Shapes = list[list[DimRange]]


def taken_shapes(program: torch.export.ExportedProgram, args: Sequence[torch.Tensor]) -> Shapes:
    """The input shapes ``program`` takes: its specialized sizes and its symbolic dims' ranges.

    A symbolic dim's lowest size is also lowered to the size it was exported with: torch.export
    states backed sizes from 2 up even where the program was traced with 0 or 1 (size-oblivious
    export, see :func:`_export_one`).

    Args:
        program: An exported program with one user input per tensor of ``args``.
        args: The sample it was exported from.

    Returns:
        Per input, per dim: the size, or ``[lowest, highest]``.
    """
    ranges = program.range_constraints
    inputs = set(program.graph_signature.user_inputs)
    values = [n.meta["val"] for n in program.graph.nodes if n.op == "placeholder" and n.name in inputs]
    shapes: Shapes = []
    for value, arg in zip(values, args, strict=True):
        dims: list[DimRange] = []
        for size, seen in zip(value.shape, arg.shape, strict=True):
            if isinstance(size, int):
                dims.append(size)
                continue
            found = ranges.get(size.node.expr)
            low = int(found.lower) if found is not None else 0
            high = found.upper if found is not None else None
            # torch's int_oo says is_finite, but floats to inf.
            dims.append([min(low, int(seen)), int(high) if high is not None and math.isfinite(float(high)) else None])
        shapes.append(dims)
    return shapes


def takes(shapes: Shapes, args: Sequence[Any]) -> bool:
    """Whether a program with these :func:`taken_shapes` takes ``args``."""
    if len(shapes) != len(args):
        return False
    for dims, arg in zip(shapes, args, strict=True):
        if not isinstance(arg, torch.Tensor) or arg.dim() != len(dims):
            return False
        for want, size in zip(dims, arg.shape, strict=True):
            if isinstance(want, int):
                if size != want:
                    return False
            elif size < int(want[0] or 0) or (want[1] is not None and size > want[1]):
                return False
    return True


def _export_one(model: Any, args: tuple[torch.Tensor, ...],
                spec: tuple[dict[int, Any] | None, ...] | None) -> torch.export.ExportedProgram:
    """Export from one sample; where that fails, again with size-0 and size-1 dims specialized, then kept symbolic.

    ``Dim.AUTO(min=1)`` on a dim of size 0 fails (the model pins it to 0). The second try drops the
    minimum, so such dims are specialized to this sample's sizes (``Dim.AUTO`` only warns there):
    a narrower program, and :func:`export_covering` exports another for the samples it does not
    take. That is what the candidate compiled (Dynamo specializes sizes 0 and 1 too), and it keeps
    the model's size-decided branches: GPT-2's empty-past prefill skips its causal mask and calls
    SDPA with ``is_causal`` (:mod:`tuner.runtime.hf_masks`), where a program for any past length
    builds the mask (30 more ops per call on the CPU, ``experiments/export_op_count.py``; on a GPU
    the masked SDPA kernel in place of the flash one).

    The last try traces such dims as general sizes
    (``torch.fx.experimental._config.backed_size_oblivious``, the torch.export tutorial's
    "(experimental) Avoiding 0/1 specialization"). It can fail where the others work (GPT-2's
    decode step: ``is_causal`` becomes symbolic; a half-precision wrapper's cast of an input with
    a size-0 dim: ``ZeroDivisionError`` in the cast's stride computation on torch 2.11 and 2.13),
    and the tutorial warns that the program may then differ from eager on size-0/1 inputs
    (broadcasting), which the artifact's check against the reference outputs in a fresh process
    would catch.
    """
    try:
        return export_program(model, args, spec)
    except Exception as plain:  # noqa: BLE001 - retried; the first error is the one to report
        from torch.fx.experimental import _config as fx_config

        # From 0, not 1: a program whose recorded size-0 example is outside its dim's range
        # saves, but torch.export.load refuses it ("0 not in VR[1, int_oo]").
        from_zero = None if spec is None else tuple(
            None if dims is None else dict.fromkeys(dims, torch.export.Dim.AUTO) for dims in spec)
        for oblivious in (False, True):
            try:
                with fx_config.patch(backed_size_oblivious=oblivious):  # type: ignore[attr-defined]
                    return export_program(model, args, from_zero)
            except Exception:  # noqa: BLE001, S112 - the next try, or the first error below
                continue
        raise plain from None


def export_covering(model: Any, workload: Workload) -> list[tuple[torch.export.ExportedProgram, Shapes]]:
    """Programs that together take every test sample's shapes, with the shapes each takes.

    Args:
        model: The module to export (its outputs flat tensors).
        workload: The test data: the samples, the example (largest) one and the varying dims.

    Returns:
        ``(program, taken shapes)`` in the order to try them; one pair where one program takes all.

    Raises:
        Exception: Whatever ``torch.export`` raises for a sample no program takes.
    """
    spec = dynamic_shapes_spec(workload)
    first = workload.example_index()
    covering: list[tuple[torch.export.ExportedProgram, Shapes]] = []
    for i in [first, *(i for i in range(len(workload.samples)) if i != first)]:
        args = workload.samples[i]
        if any(takes(shapes, args) for _, shapes in covering):
            continue
        program = _export_one(model, args, spec)
        covering.append((program, taken_shapes(program, args)))
    return covering


def shapes_str(args: Sequence[Any]) -> str:
    """The inputs' shapes as an error names them, e.g. ``2x8,2x2x2x0x32``."""
    return ",".join("x".join(str(d) for d in a.shape) if isinstance(a, torch.Tensor) else type(a).__name__
                    for a in args)


def write_covering(covering: Sequence[tuple[torch.export.ExportedProgram, Shapes]], directory: Path,
                   write: Callable[[torch.export.ExportedProgram, Path], None]) -> dict[str, Any]:
    """Write each program (``model.pt2``, ``model_1.pt2``, ...) and say in the meta which shapes each takes.

    Args:
        covering: What :func:`export_covering` returned.
        directory: Where to write.
        write: Writes one program to a path (``torch.export.save``, an AOTInductor compile).

    Returns:
        ``{"file": "model.pt2"}``, and ``"programs": [{"file", "shapes"}, ...]`` where there are several.
    """
    programs = []
    for i, (program, shapes) in enumerate(covering):
        path = directory / ("model.pt2" if i == 0 else f"model_{i}.pt2")
        write(program, path)
        programs.append({"file": path.name, "shapes": shapes})
    meta: dict[str, Any] = {"file": programs[0]["file"]}
    if len(programs) > 1:
        meta["programs"] = programs
    return meta


def load_covering(directory: Path, meta: dict[str, Any],
                  load: Callable[[Path], Callable[..., Any]]) -> Callable[..., Any]:
    """Read back what :func:`write_covering` wrote: the one program, or a :class:`ShapeRanges` over several."""
    if "programs" not in meta:
        return load(directory / str(meta["file"]))
    return ShapeRanges([load(directory / str(p["file"])) for p in meta["programs"]],
                       [p["shapes"] for p in meta["programs"]])


class ShapeRanges:
    """Runs the first of several loaded programs that takes the call's input shapes.

    Args:
        runners: The loaded programs, in :func:`export_covering`'s order.
        shapes: What each takes (:func:`taken_shapes`).
    """

    def __init__(self, runners: Sequence[Callable[..., Any]], shapes: Sequence[Shapes]) -> None:
        self.runners = list(runners)
        self.shapes = list(shapes)

    def __call__(self, *args: Any) -> Any:
        """Run the program that takes these shapes.

        Raises:
            ValueError: When none does.
        """
        for runner, shapes in zip(self.runners, self.shapes, strict=True):
            if takes(shapes, args):
                return runner(*args)
        raise ValueError(f"no program of this artifact takes input shapes {shapes_str(args)}; they take "
                         f"{self.shapes} (tune again with test data of these shapes)")


__all__ = ["DimRange", "ShapeRanges", "Shapes", "export_covering", "load_covering", "shapes_str", "takes",
           "taken_shapes", "write_covering"]
