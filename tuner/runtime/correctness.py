"""Correctness of a candidate: its outputs against the reference, judged by the study's accuracy rule.

The rules are stated in :mod:`tuner.core.accuracy`. What every built-in rule shares is checked
here first: the same number of samples and outputs, the same shapes, integer and boolean outputs
equal, and no NaN or infinity where the reference is finite (or the other way round). The largest
absolute and relative errors are reported under every rule.
"""

from __future__ import annotations

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
            elif nan_mismatch(out.double(), ref.double()):
                return f"sample {i} output {j}: NaN or infinity where the reference has a number"
    return ""


def _score(rule: AccuracyRule, i: int, j: int, out: torch.Tensor, ref: torch.Tensor) -> float:
    """The rule's score of one floating output of one sample (top1 only for the first output)."""
    if rule.kind == "elementwise":
        return tolerance_used(out, ref, *rule.values)
    if rule.kind == "rel-l2":
        return rel_l2(out, ref)
    if rule.kind == "cosine":
        return cosine(out, ref)
    return top1_agreement(out, ref) if j == 0 else 1.0


def _builtin(rule: AccuracyRule, outputs: Outputs, reference: Outputs) -> tuple[float, str]:
    """The worst score over samples and floating outputs, and where it first failed."""
    worst = -math.inf if not rule.higher_is_better else math.inf
    first_bad = ""
    for i, (outs, refs) in enumerate(zip(outputs, reference, strict=True)):
        for j, (out, ref) in enumerate(zip(outs, refs, strict=True)):
            if not ref.is_floating_point() or (rule.kind == "top1" and j):
                continue
            # NaN where both have NaN is agreement: compare the rest.
            both = torch.isnan(out.double()) & torch.isnan(ref.double())
            score = _score(rule, i, j, torch.where(both, 0.0, out.double()), torch.where(both, 0.0, ref.double()))
            worst = min(worst, score) if rule.higher_is_better else max(worst, score)
            if not rule.passes(score) and not first_bad:
                first_bad = f"sample {i} output {j}: {rule.kind} score {score:.4g} (rule {rule.spec})"
    if math.isinf(worst):
        worst = 1.0 if rule.higher_is_better else 0.0  # no floating output: nothing differs
    return worst, first_bad


def _largest_errors(outputs: Outputs, reference: Outputs) -> tuple[float, float]:
    max_abs = max_rel = 0.0
    for outs, refs in zip(outputs, reference, strict=True):
        for out, ref in zip(outs, refs, strict=True):
            if ref.is_floating_point() and ref.numel():
                diff = (out.double() - ref.double()).abs().nan_to_num(0.0)
                max_abs = max(max_abs, float(diff.max()))
                max_rel = max(max_rel, float((diff / ref.double().abs().clamp_min(1e-12)).max()))
    return max_abs, max_rel


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
    max_abs, max_rel = _largest_errors(outputs, reference)
    if rule.kind == "function":
        score, passed = rule.resolve()(list(reference), outputs)
        detail = "" if passed else f"{rule.spec} scored {float(score):.4g} and failed"
        return Correctness(bool(passed), max_abs, max_rel, detail, float(score), rule.spec)
    score, first_bad = _builtin(rule, outputs, reference)
    return Correctness(not first_bad, max_abs, max_rel, first_bad, score, rule.spec)
