"""Distances between one output tensor and its reference: the measures the accuracy rules compare.

Each takes one candidate tensor and its fp32 reference (same shape) and returns a float; the rules
of :mod:`tuner.runtime.correctness` decide what is good enough. Computed in float64 so that the
measure itself adds no rounding.
"""

from __future__ import annotations

import torch


def tolerance_used(out: torch.Tensor, ref: torch.Tensor, atol: float, rtol: float) -> float:
    """The largest ``|out - ref| / (atol + rtol * |ref|)``: at most 1 where every element is within tolerance."""
    o, r = out.double(), ref.double()
    if not r.numel():
        return 0.0
    return float(((o - r).abs() / (atol + rtol * r.abs())).max())


def rel_l2(out: torch.Tensor, ref: torch.Tensor) -> float:
    """``||out - ref|| / ||ref||`` over the whole tensor (0 where both are zero)."""
    o, r = out.double(), ref.double()
    norm = float(torch.linalg.vector_norm(r))
    diff = float(torch.linalg.vector_norm(o - r))
    return diff / norm if norm else (0.0 if diff == 0 else float("inf"))


def cosine(out: torch.Tensor, ref: torch.Tensor) -> float:
    """Cosine similarity of the flattened tensors (1 where both are zero, 0 where one is)."""
    o, r = out.double().flatten(), ref.double().flatten()
    no, nr = float(torch.linalg.vector_norm(o)), float(torch.linalg.vector_norm(r))
    if not no or not nr:
        return 1.0 if no == nr else 0.0
    return float(o @ r) / (no * nr)


def top1_agreement(out: torch.Tensor, ref: torch.Tensor) -> float:
    """Share of positions whose argmax over the last dimension agrees (1 for a 0-d tensor that is equal)."""
    if out.dim() == 0:
        return float(bool(out == ref))
    return float((out.argmax(-1) == ref.argmax(-1)).double().mean())


def nan_mismatch(out: torch.Tensor, ref: torch.Tensor) -> bool:
    """A NaN or infinity where the reference has a finite number (or the other way round)."""
    return bool((torch.isfinite(out) != torch.isfinite(ref)).any())
