"""The peers at their defaults: each tool as a user would run it, with no tuning.

Each peer is a candidate of one of the project's backends at that tool's default settings. At
level ``o1`` (fp32 results):

- eager: the model as it is (PyTorch eager; on a TF workload plain TensorFlow is the
  ``TensorFlow`` row);
- torch.compile default: ``torch.compile(model)``: Inductor, default mode, automatic dynamic
  shapes (the dims that vary in the test data marked dynamic, as torch's automatic dynamic
  shapes would after the first recompile);
- torch.compile max-autotune: the same with ``mode="max-autotune"``;
- TorchScript: ``torch.jit.trace`` then ``torch.jit.freeze``, the usual inference export;
- TVM default pipeline: ``tvm.compile`` with Relax's default pipeline and, on the GPU, DLight's
  default rules, one module per input shape (the tuner's ``tvm`` backend with no options; a TF
  model reaches it through its ONNX export);
- ONNX Runtime default (TF workload only): the ONNX export in a default ``InferenceSession``;
- TensorFlow and TensorFlow with XLA (``jit_compile=True``), TF workload only and where
  TensorFlow is installed.

At level ``o2`` the same rows (fp32 passes any o2 rule, and eager fp32 stays the baseline of
"vs eager"), then what a user would type to run the model in 16 bits (:data:`O2_NAMES`):

- ``with torch.autocast(device, dtype)`` around eager, in fp16 and bf16 (precisions
  ``amp-fp16``/``amp-bf16``: the tuner's :class:`tuner.runtime.precision.AutocastWrapper`);
- ``model.half()`` (inputs cast to fp16, outputs back to fp32: precision ``fp16``);
- ``torch.compile`` in its ``default``, ``reduce-overhead`` and ``max-autotune-no-cudagraphs``
  modes, on the ``.half()`` model and on the model under autocast fp16;
- TorchScript trace+freeze of the ``.half()`` model;
- TVM's default pipeline on the fp16 import (``fp16``) and with Relax's ``ToMixedPrecision``
  (``amp-fp16``), where TVM imports; a TF graph reaches TVM only in fp32 or ``amp-fp16``.

Every row is judged by the one accuracy rule of the run (``bench.py --accuracy``), the tuner's
picks too; a peer that fails it stays in the table with its score.

A peer that does not apply or cannot run here has a reason instead of a candidate.
"""

from __future__ import annotations

import dataclasses

from backends import backend_class
from experiments.workloads.registry import tf_installed
from tuner.core.records import Candidate


@dataclasses.dataclass(frozen=True)
class Peer:
    """A peer tool at its defaults, for one workload.

    Attributes:
        name: Its row in the table.
        candidate: What to build, or None when it does not run here.
        reason: Why it does not run (None when it does).
    """

    name: str
    candidate: Candidate | None
    reason: str | None = None


#: Row names at o1, in table order (at o2 they come first too).
NAMES: tuple[str, ...] = ("eager", "torch.compile default", "torch.compile max-autotune", "TorchScript trace+freeze",
                          "TVM default pipeline", "ONNX Runtime default", "TensorFlow", "TensorFlow XLA")

_TRACE_FREEZE = {"torchscript/method": "trace", "torchscript/freeze": True}
_TORCH: dict[str, Candidate] = {
    "eager": Candidate("eager"),
    "torch.compile default": Candidate("inductor", "mark_dynamic", "fp32", {"inductor/mode": "default"}),
    "torch.compile max-autotune": Candidate("inductor", "mark_dynamic", "fp32", {"inductor/mode": "max-autotune"}),
    "TorchScript trace+freeze": Candidate("torchscript", "dynamic", "fp32", _TRACE_FREEZE),
    "TVM default pipeline": Candidate("tvm", "static", "fp32", {}),
}
_TF: dict[str, Candidate] = {
    "TVM default pipeline": Candidate("tvm", "static", "fp32", {"tvm/frontend": "onnx"}),
    "ONNX Runtime default": Candidate("onnxruntime", "dynamic", "fp32", {}),
    "TensorFlow": Candidate("eager"),
    "TensorFlow XLA": Candidate("tf_xla", "static", "fp32", {"tf_xla/clustering": "jit_compile"}),
}


def _compile(mode: str, precision: str) -> Candidate:
    """``torch.compile(model, mode=mode)`` on the model in ``precision`` (dims that vary marked dynamic)."""
    return Candidate("inductor", "mark_dynamic", precision, {"inductor/mode": mode})


#: The o2 rows (after :data:`NAMES`), in table order, for a PyTorch model.
_TORCH_O2: dict[str, Candidate] = {
    "eager autocast fp16": Candidate("eager", precision="amp-fp16"),
    "eager autocast bf16": Candidate("eager", precision="amp-bf16"),
    "eager .half()": Candidate("eager", precision="fp16"),
    **{f"torch.compile {mode} .half()": _compile(mode, "fp16")
       for mode in ("default", "reduce-overhead", "max-autotune-no-cudagraphs")},
    **{f"torch.compile {mode} autocast fp16": _compile(mode, "amp-fp16")
       for mode in ("default", "reduce-overhead", "max-autotune-no-cudagraphs")},
    "TorchScript .half() trace+freeze": Candidate("torchscript", "dynamic", "fp16", _TRACE_FREEZE),
    "TVM default pipeline fp16": Candidate("tvm", "static", "fp16", {}),
    "TVM default pipeline amp-fp16": Candidate("tvm", "static", "amp-fp16", {}),
}
_TF_O2: dict[str, Candidate] = {
    "TVM default pipeline amp-fp16": Candidate("tvm", "static", "amp-fp16", {"tvm/frontend": "onnx"}),
}
#: Row names added at o2, in table order.
O2_NAMES: tuple[str, ...] = tuple(_TORCH_O2)


def names_for(level: str) -> tuple[str, ...]:
    """The peer rows of a level, in table order: :data:`NAMES`, then at o2 :data:`O2_NAMES`."""
    return NAMES + O2_NAMES if level == "o2" else NAMES


def _not_applicable(framework: str, name: str) -> str:
    """Why a row has no candidate for a workload of ``framework``."""
    if framework == "torch":
        return "not run: the model is PyTorch (TensorFlow and ONNX Runtime rows are for the TF workload)"
    if name == "eager":
        return "not run: a TF model's eager run is plain TensorFlow (the TensorFlow row)"
    if name in O2_NAMES and name.startswith("TVM"):
        return "not run: TVM takes a TensorFlow graph in fp32 or amp-fp16 only"
    return "not run: the model is a TensorFlow graph (no PyTorch module)"


def _peer(framework: str, device: str, name: str, cand: Candidate | None) -> Peer:
    """One row: its candidate, or why it does not run here."""
    if cand is None:
        return Peer(name, None, _not_applicable(framework, name))
    cls = backend_class(cand.backend)
    if framework == "tf" and cand.backend in ("eager", "tf_xla") and not tf_installed():
        return Peer(name, None, "not run: TensorFlow not installed")
    if not cls.is_available(device):
        return Peer(name, None, f"not run: the {cand.backend} backend is not available on {device} here")
    if cls.precisions is not None and cand.precision not in cls.precisions:
        return Peer(name, None, f"not run: the {cand.backend} backend has no {cand.precision}")
    return Peer(name, cand)


def peers_for(framework: str, device: str, level: str = "o1") -> list[Peer]:
    """Every peer row for a workload of ``framework`` on ``device`` at ``level``.

    Args:
        framework: ``torch`` or ``tf``.
        device: ``cpu`` or ``gpu``.
        level: ``o1`` (the fp32 peers) or ``o2`` (those and the 16-bit ones).

    Returns:
        One :class:`Peer` per name in :func:`names_for`.
    """
    table = {**_TORCH, **_TORCH_O2} if framework == "torch" else {**_TF, **_TF_O2}
    return [_peer(framework, device, name, table.get(name)) for name in names_for(level)]


__all__ = ["NAMES", "O2_NAMES", "Peer", "names_for", "peers_for"]
