"""A model replayed from CUDA graphs, one captured per input signature (shapes, dtypes, devices).

A launch-bound model spends its time in the host launching kernels: on an H100 the demo decoder
ran in eager mode at 1.05 ms per call at batch 8, and captured by hand in one CUDA graph at
0.26 ms (``experiments/results/2026-11-24-h100-notes.md``). Inductor's ``reduce-overhead`` mode
captures graphs too, but behind Dynamo's guards and its graph trees' bookkeeping, and it got 0.59
ms there. :class:`GraphedCall` is the plain version for any callable (an eager module, a
TorchScript module): the first call of each input signature warms the model up on a side stream
(cuDNN's and cuBLAS's lazy set-up, TorchScript's profiling runs), then captures one call into a
graph; every later call of that signature copies the inputs into the graph's input buffers,
replays it and returns copies of its outputs.

What a user must know (the search offers it as ``torch/cuda_graph``, and the correctness check
compares it with the reference on the test data only):

* Only the kernels are replayed: Python-side control flow is frozen at capture, per signature. A
  model whose computation depends on input *values* through host code (``if x.sum() > 0``) gives
  wrong results or fails to capture (a host sync is not allowed while capturing).
* It runs under ``torch.no_grad()``: the outputs never require grad (an inference wrapper).
* Every input must be a CUDA tensor, on the current CUDA device (the capture runs on that
  device's streams; inputs on another GPU are not handled).
* Calls are sequential on the caller's current stream; the wrapper is not thread-safe.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils import _pytree as pytree

from tuner.core.errors import error_line
from tuner.runtime.hf_masks import shape_decided_masks

#: Untimed calls on a side stream before a signature is captured. TorchScript's profiling
#: executor optimizes a graph on its second call; cuDNN's benchmark mode times its algorithms on
#: the first call of a shape; neither may happen while capturing (both synchronize the host).
WARMUP_CALLS = 3

#: ``torch.compile`` modes that replay CUDA graphs of their own (Inductor's graph trees): a
#: :class:`GraphedCall` around such a compiled function would nest captures.
COMPILER_GRAPHED_MODES: frozenset[str] = frozenset({"reduce-overhead", "max-autotune"})

Signature = tuple[tuple[tuple[int, ...], torch.dtype, torch.device], ...]


class CaptureError(RuntimeError):
    """The model could not be captured in a CUDA graph (it synchronizes the host, say)."""


class _Graph:
    """One captured call: its input buffers, its graph and its outputs (flattened once, here).

    Args:
        inputs: The buffers the graph reads its inputs from.
        graph: The captured graph.
        outputs: What the captured call returned (tensors in tuples, lists or dicts).
    """

    def __init__(self, inputs: list[torch.Tensor], graph: torch.cuda.CUDAGraph, outputs: Any) -> None:
        self.inputs = inputs
        self.graph = graph
        # Flattened at capture, not per call: pytree.tree_map_only on the demo's 4 outputs cost
        # 19 us a call against 7 for copying the leaves and unflattening (CPU box, timeit), and a
        # replayed call of the mlp workload is about 40 us.
        self.leaves, self.spec = pytree.tree_flatten(outputs)

    def fresh_outputs(self) -> Any:
        """Copies of the outputs, in the captured call's structure (the next replay overwrites them)."""
        return pytree.tree_unflatten([t.clone() if isinstance(t, torch.Tensor) else t for t in self.leaves],
                                     self.spec)


def signature(args: tuple[Any, ...]) -> Signature:
    """The key a graph is captured under: each input's shape, dtype and device.

    Args:
        args: The call's inputs.

    Returns:
        One ``(shape, dtype, device)`` per input.

    Raises:
        ValueError: When an input is not a CUDA tensor.
    """
    key = []
    for i, a in enumerate(args):
        if not isinstance(a, torch.Tensor) or a.device.type != "cuda":
            what = f"a {a.device.type} tensor" if isinstance(a, torch.Tensor) else type(a).__name__
            raise ValueError(f"a CUDA-graph model takes CUDA tensors only; input {i} is {what} "
                             "(move the inputs to the GPU, or use a candidate without torch/cuda_graph)")
        key.append((tuple(a.shape), a.dtype, a.device))
    return tuple(key)


def capture_failure(e: BaseException) -> str:
    """What failed in a capture: the model's own error first, then the capture's end.

    An error inside ``torch.cuda.graph(...)`` makes the capture's end fail too ("operation failed
    due to a previous error during capture"), and that second error is the one raised, with the
    model's as its context: alone it hides the cause (a demo artifact's check on an H100,
    2026-12-07). ``error_line``: a TorchScript interpreter error names its cause on its last line.
    """
    first = e.__context__
    return f"{error_line(first)}; then {error_line(e)}" if isinstance(first, Exception) else error_line(e)


class GraphedCall:
    """``fn`` replayed from a CUDA graph per input signature.

    The graphs share one memory pool. That is safe here because a graph's outputs are copied
    right after its replay and nothing reads them later: a graph captured after another may put
    its own buffers where the first had its (freed) intermediates, and each replay overwrites
    only what the next copy does not need. The input buffers are allocated outside the pool.

    Args:
        fn: The model (any callable taking and returning tensors, tuples, lists or dicts of them).
        warmup: Calls before each capture (:data:`WARMUP_CALLS`).
    """

    def __init__(self, fn: Callable[..., Any], warmup: int = WARMUP_CALLS) -> None:
        self.fn = fn
        self.warmup = warmup
        self.graphs: dict[Signature, _Graph] = {}
        self._pool: Any = None

    def __call__(self, *args: Any) -> Any:
        """Run the model: capture on a signature's first call, replay afterwards.

        Args:
            *args: The model's inputs, CUDA tensors.

        Returns:
            The model's outputs, fresh tensors the caller owns.

        Raises:
            ValueError: When an input is not a CUDA tensor.
            CaptureError: When the model cannot be captured (on a signature's first call).
        """
        key = signature(args)
        entry = self.graphs.get(key)
        with torch.no_grad():
            if entry is None:
                entry = self.graphs[key] = self._capture(args)
            for buf, a in zip(entry.inputs, args, strict=True):
                buf.copy_(a)
            entry.graph.replay()
            return entry.fresh_outputs()

    def _capture(self, args: tuple[torch.Tensor, ...]) -> _Graph:
        # transformers counts a capture as tracing and builds the attention masks it skips in
        # eager, which send SDPA to its math backend. A graph is captured per input signature, so
        # deciding by shapes is sound here (tuner.runtime.hf_masks). The warm-up runs under the
        # same rule, so that a compiled model's guards on it hold from its first call.
        with shape_decided_masks():
            return self._warm_up_and_capture(args)

    def _warm_up_and_capture(self, args: tuple[torch.Tensor, ...]) -> _Graph:
        # Input buffers hold real data, so the warm-up calls run the model on what it will see.
        inputs = [a.detach().clone() for a in args]
        side = torch.cuda.Stream(device=inputs[0].device if inputs else None)  # type: ignore[no-untyped-call]
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                self.fn(*inputs)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            # thread_local: a CUDA call from another thread of the process (a watchdog, a
            # progress display) does not invalidate this capture.
            with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
                outputs = self.fn(*inputs)
        except Exception as e:
            raise CaptureError(f"the model cannot be captured in a CUDA graph: {capture_failure(e)}") from e
        if self._pool is None:
            self._pool = graph.pool()
        return _Graph(inputs, graph, outputs)
