"""The peers at their defaults: each tool as a user would run it, with no tuning.

Each peer is a candidate of one of the project's backends at that tool's default settings:

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


#: Row names, in table order.
NAMES: tuple[str, ...] = ("eager", "torch.compile default", "torch.compile max-autotune", "TorchScript trace+freeze",
                          "TVM default pipeline", "ONNX Runtime default", "TensorFlow", "TensorFlow XLA")

_TORCH: dict[str, Candidate] = {
    "eager": Candidate("eager"),
    "torch.compile default": Candidate("inductor", "mark_dynamic", "fp32", {"inductor/mode": "default"}),
    "torch.compile max-autotune": Candidate("inductor", "mark_dynamic", "fp32", {"inductor/mode": "max-autotune"}),
    "TorchScript trace+freeze": Candidate("torchscript", "dynamic", "fp32",
                                          {"torchscript/method": "trace", "torchscript/freeze": True}),
    "TVM default pipeline": Candidate("tvm", "static", "fp32", {}),
}
_TF: dict[str, Candidate] = {
    "TVM default pipeline": Candidate("tvm", "static", "fp32", {"tvm/frontend": "onnx"}),
    "ONNX Runtime default": Candidate("onnxruntime", "dynamic", "fp32", {}),
    "TensorFlow": Candidate("eager"),
    "TensorFlow XLA": Candidate("tf_xla", "static", "fp32", {"tf_xla/clustering": "jit_compile"}),
}


def peers_for(framework: str, device: str) -> list[Peer]:
    """Every peer row for a workload of ``framework`` on ``device``.

    Args:
        framework: ``torch`` or ``tf``.
        device: ``cpu`` or ``gpu``.

    Returns:
        One :class:`Peer` per name in :data:`NAMES`.
    """
    table = _TORCH if framework == "torch" else _TF
    out = []
    for name in NAMES:
        cand = table.get(name)
        if cand is None:
            if framework == "torch":
                reason = "not run: the model is PyTorch (TensorFlow and ONNX Runtime rows are for the TF workload)"
            elif name == "eager":
                reason = "not run: a TF model's eager run is plain TensorFlow (the TensorFlow row)"
            else:
                reason = "not run: the model is a TensorFlow graph (no PyTorch module)"
            out.append(Peer(name, None, reason))
        elif framework == "tf" and cand.backend in ("eager", "tf_xla") and not tf_installed():
            out.append(Peer(name, None, "not run: TensorFlow not installed"))
        elif not backend_class(cand.backend).is_available(device):
            out.append(Peer(name, None, f"not run: the {cand.backend} backend is not available on {device} here"))
        else:
            out.append(Peer(name, cand))
    return out


__all__ = ["NAMES", "Peer", "peers_for"]
