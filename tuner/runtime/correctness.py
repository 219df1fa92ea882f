"""Correctness of a candidate: its outputs against the reference, judged by the study's accuracy rule.

The rules are stated in :mod:`tuner.core.accuracy`. What every built-in rule shares is checked
here first: the same number of samples and outputs, the same shapes, integer and boolean outputs
equal, and no NaN or infinity where the reference is finite (or the other way round). The largest
absolute and relative errors are reported under every rule.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch

from tuner.core.accuracy import AccuracyRule
from tuner.core.records import Correctness
from tuner.runtime.errors import cosine, nan_mismatch, rel_l2, tolerance_used, top1_agreement

Outputs = Sequence[Sequence[torch.Tensor]]


def _structure_problem(outputs: Outputs, reference: Outputs) -> str:
    """Why the outputs cannot be compared at all (counts, shapes, exact outputs, NaNs), or ``""``."""
    if len(outputs) != len(reference):
        return f"{len(outputs)} results for {len(reference)} samples"
    for i, (outs, refs) in enumerate(zip(outputs, reference, strict=True)):
        if len(outs) != len(refs):
            return f"sample {i}: {len(outs)} outputs, expected {len(refs)}"
        for j, (out, ref) in enumerate(zip(outs, refs, strict=True)):
            if tuple(out.shape) != tuple(ref.shape):
                return f"sample {i} output {j}: shape {tuple(out.shape)}, expected {tuple(ref.shape)}"
            if not ref.is_floating_point():
                bad = int((out.to(ref.dtype) != ref).sum())
                if bad:
                    return f"sample {i} output {j}: {bad} of {ref.numel()} values differ"
            elif nan_mismatch(out, ref):
                return f"sample {i} output {j}: NaN or infinity where the reference has a number"
    return ""


def _score(rule: AccuracyRule, out: torch.Tensor, ref: torch.Tensor) -> float:
    """A built-in rule's score of one floating output of one sample."""
    if rule.kind == "elementwise":
        return tolerance_used(out, ref, *rule.values)
    if rule.kind == "rel-l2":
        return rel_l2(out, ref)
    if rule.kind == "cosine":
        return cosine(out, ref)
    return top1_agreement(out, ref)


@dataclasses.dataclass
class _Tally:
    """The floating outputs compared so far: the largest errors, the rule's worst score, the first failure."""

    rule: AccuracyRule
    max_abs: float = 0.0
    max_rel: float = 0.0
    worst: float | None = None
    first_bad: str = ""

    def add(self, i: int, j: int, out: torch.Tensor, ref: torch.Tensor) -> None:
        """Compare output ``j`` of sample ``i`` (each tensor converted to float64 once, here)."""
        o, r = out.double(), ref.double()
        # NaN where both have NaN is agreement: compare the rest.
        both = torch.isnan(o) & torch.isnan(r)
        o, r = torch.where(both, 0.0, o), torch.where(both, 0.0, r)
        if r.numel():
            diff = (o - r).abs().nan_to_num(0.0)
            self.max_abs = max(self.max_abs, float(diff.max()))
            self.max_rel = max(self.max_rel, float((diff / r.abs().clamp_min(1e-12)).max()))
        rule = self.rule
        if rule.kind == "function" or (rule.kind == "top1" and j):
            return  # a user's function judges all outputs at once; top1 judges the first (the logits)
        score = _score(rule, o, r)
        worse = min if rule.higher_is_better else max
        self.worst = score if self.worst is None else worse(self.worst, score)
        if not rule.passes(score) and not self.first_bad:
            self.first_bad = f"sample {i} output {j}: {rule.kind} score {score:.4g} (rule {rule.spec})"

    def score(self) -> float:
        """The worst score (where no output is floating, nothing differs)."""
        if self.worst is None:
            return 1.0 if self.rule.higher_is_better else 0.0
        return self.worst


def check_outputs(outputs: Outputs, reference: Outputs, rule: AccuracyRule) -> Correctness:
    """Judge a candidate's outputs against the reference by ``rule``.

    Args:
        outputs: Flattened outputs per test sample (any device).
        reference: Flattened reference outputs per test sample (CPU).
        rule: The study's accuracy rule.

    Returns:
        The verdict, the rule's score and the largest absolute and relative errors.
    """
    outputs = [tuple(o.detach().cpu() for o in outs) for outs in outputs]
    problem = _structure_problem(outputs, reference)
    if problem:
        return Correctness(False, math.inf, math.inf, problem, None, rule.spec)
    tally = _Tally(rule)
    for i, (outs, refs) in enumerate(zip(outputs, reference, strict=True)):
        for j, (out, ref) in enumerate(zip(outs, refs, strict=True)):
            if ref.is_floating_point():
                tally.add(i, j, out, ref)
    if rule.kind == "function":
        score, passed = rule.resolve()(list(reference), outputs)
        detail = "" if passed else f"{rule.spec} scored {float(score):.4g} and failed"
        return Correctness(bool(passed), tally.max_abs, tally.max_rel, detail, float(score), rule.spec)
    return Correctness(not tally.first_bad, tally.max_abs, tally.max_rel, tally.first_bad, tally.score(), rule.spec)
