"""Process-wide torch switches a candidate runs under, set around each call of the built model.

Some choices are not a property of the compiled model but of the process that runs it: cuDNN's
benchmark mode (``torch.backends.cudnn.benchmark``, which times every convolution algorithm on
the first call of each shape and keeps the fastest) is one. A candidate holds them as options
keyed ``torch/<switch>``, outside every backend's own ``<backend>/`` namespace, so that backends
need not know them. They are set around each call, not once per build, because one process
runs several candidates (a warm worker in turn, the finalists side by side) and each must run
under its own.

TF32 is one too, taken from the candidate's precision rather than an option: a ``tf32``
candidate runs with TF32 matmuls and convolutions on, every other with them off, which the
build (:func:`tuner.runtime.precision.apply_precision`) makes the process's state. Set once at build time
instead, TF32 would follow whichever candidate was built last: the finalists, built one after
another and then measured in alternating rounds, would all run under the last one's.

One ``torch/`` option is not a flag but a wrapper: ``torch/cuda_graph`` replays the model from
CUDA graphs (:mod:`tuner.runtime.cuda_graphs`). It is applied inside the flags, so that the warm-up and
capture on each input shape's first call run under them too (cuDNN's benchmark mode picks its
algorithms there, and the graph keeps them).

An artifact keeps its candidate in ``artifact.json``; :func:`tuner.export.artifact.load_optimized`
wraps the loaded model in the same switches. A model handed back by ``tuner.optimize`` cannot
carry them, so a candidate with a switch on is not returned that way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch

from tuner.runtime.cuda_graphs import GraphedCall
from tuner.runtime.precision import set_tf32, tf32_flags

#: Option-key prefix of the switches.
PREFIX = "torch/"
#: cuDNN's benchmark mode.
CUDNN_BENCHMARK = "torch/cudnn_benchmark"
#: Replay from CUDA graphs (:class:`tuner.runtime.cuda_graphs.GraphedCall`): a wrapper, not a flag.
CUDA_GRAPH = "torch/cuda_graph"
#: TF32 matmuls and convolutions: from the precision, not an option (so not under :data:`PREFIX`).
TF32 = "tf32"


#: Every switch, with the torch flags it sets as a getter/setter pair (plain calls, no context
#: manager: they run around every call of a measured model).
_FLAGS: dict[str, tuple[Callable[[], Any], Callable[[Any], None]]] = {
    CUDNN_BENCHMARK: (lambda: bool(torch.backends.cudnn.benchmark),
                      lambda v: setattr(torch.backends.cudnn, "benchmark", v)),
    TF32: (tf32_flags, set_tf32),
}
#: Every ``torch/`` option: the flags and the wrappers.
KNOWN: frozenset[str] = frozenset({*_FLAGS, CUDA_GRAPH})


def switches_of(options: Mapping[str, Any]) -> dict[str, bool]:
    """The switches among a candidate's options.

    Args:
        options: A candidate's options (``Candidate.options``).

    Returns:
        ``{key: value}`` for each ``torch/`` option.

    Raises:
        ValueError: For an unknown ``torch/`` key or a value that is not a bool (a typo would
            otherwise be ignored and two "different" candidates measured as one).
    """
    out: dict[str, bool] = {}
    for key, value in options.items():
        if not key.startswith(PREFIX):
            continue
        if key not in KNOWN:
            raise ValueError(f"unknown torch switch {key!r}; known: {sorted(KNOWN - {TF32})}")
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be a bool, got {value!r}")
        out[key] = value
    return out


def needed(options: Mapping[str, Any], precision: str = "fp32") -> dict[str, bool]:
    """The switches a candidate runs under, away from the state every build leaves (all off).

    Args:
        options: The candidate's options.
        precision: The candidate's precision (``tf32`` needs TF32 on).

    Returns:
        ``{switch: True}`` for each one; empty when the candidate runs as the process is.

    Raises:
        ValueError: See :func:`switches_of`.
    """
    out = {key: True for key, on in switches_of(options).items() if on}
    if precision == "tf32":
        out[TF32] = True
    return out


def any_on(options: Mapping[str, Any], precision: str = "fp32") -> bool:
    """Whether a candidate needs a switch set (what :func:`with_switches` wraps a model for)."""
    return bool(needed(options, precision))


@contextlib.contextmanager
def applied(switches: Mapping[str, bool]) -> Iterator[None]:
    """Set the switches for the duration, restoring the previous values afterwards.

    Args:
        switches: Flags (what :func:`switches_of` returned, less :data:`CUDA_GRAPH`).
    """
    old = {key: _FLAGS[key][0]() for key in switches}
    for key, value in switches.items():
        _FLAGS[key][1](value)
    try:
        yield
    finally:
        for key, value in old.items():
            _FLAGS[key][1](value)


class SwitchedCall:
    """A model called under its switches on every call.

    Args:
        fn: The model (any callable).
        switches: The switches to set around each call.
    """

    def __init__(self, fn: Callable[..., Any], switches: Mapping[str, bool]) -> None:
        self.fn = fn
        self.switches = dict(switches)

    def __call__(self, *args: Any) -> Any:
        """Run the model under the switches.

        Args:
            *args: The model's inputs.

        Returns:
            The model's outputs.
        """
        with applied(self.switches):
            return self.fn(*args)


def with_switches(fn: Callable[..., Any], options: Mapping[str, Any], precision: str = "fp32", *,
                  loaded: bool = False) -> Callable[..., Any]:
    """``fn`` wrapped in the candidate's switches, or ``fn`` itself when it has none.

    Only switches that differ from the state a build leaves (TF32 off, benchmark mode off) cost a
    wrapper: a launch-bound model's call is tens of microseconds, and each flag set is about one.
    ``torch/cuda_graph`` wraps ``fn`` in a :class:`~tuner.runtime.cuda_graphs.GraphedCall` inside the flags.

    A loaded artifact runs in a process no build has touched, where torch's own default holds:
    cuDNN's TF32 on. An fp32 candidate measured with it off would then miss o1's tolerance
    (torchvision's ResNet-50 on an H100: 890 of 1000 logits off by up to 0.044), so there TF32
    is set either way.

    Args:
        fn: The built or loaded model.
        options: The candidate's options.
        precision: The candidate's precision (``tf32`` turns TF32 on around each call).
        loaded: ``fn`` was loaded from an artifact (TF32 is set off too, not only on).

    Returns:
        A callable with ``fn``'s signature.

    Raises:
        ValueError: See :func:`switches_of`.
    """
    # Off is the state every build leaves; a switch left off costs no wrapper.
    switches = needed(options, precision)
    if loaded:
        switches.setdefault(TF32, False)
    if switches.pop(CUDA_GRAPH, False):
        fn = GraphedCall(fn)
    return SwitchedCall(fn, switches) if switches else fn
