"""Correctness of a candidate: its outputs against the reference, within the level's tolerance.

An output passes when ``|out - ref| <= atol + rtol * |ref|`` elementwise (numpy's ``allclose``);
integer and boolean outputs must match exactly; a NaN where the reference has none fails.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from tuner.core.defaults import Tolerance
from tuner.core.records import Correctness


def check_outputs(
    outputs: Sequence[Sequence[torch.Tensor]],
    reference: Sequence[Sequence[torch.Tensor]],
    tol: Tolerance,
) -> Correctness:
    """Compare a candidate's outputs with the reference, sample by sample and output by output.

    Args:
        outputs: Flattened outputs per test sample.
        reference: Flattened reference outputs per test sample.
        tol: The tolerance.

    Returns:
        Whether all outputs pass, with the largest absolute and relative errors seen.
    """
    max_abs = 0.0
    max_rel = 0.0
    first_bad = ""
    if len(outputs) != len(reference):
        return Correctness(False, math.inf, math.inf, f"{len(outputs)} results for {len(reference)} samples")
    for i, (outs, refs) in enumerate(zip(outputs, reference, strict=True)):
        if len(outs) != len(refs):
            return Correctness(False, math.inf, math.inf, f"sample {i}: {len(outs)} outputs, expected {len(refs)}")
        for j, (out, ref) in enumerate(zip(outs, refs, strict=True)):
            out = out.detach().cpu()
            if tuple(out.shape) != tuple(ref.shape):
                return Correctness(False, math.inf, math.inf,
                                   f"sample {i} output {j}: shape {tuple(out.shape)}, expected {tuple(ref.shape)}")
            if not ref.is_floating_point():
                bad = int((out.to(ref.dtype) != ref).sum())
                if bad and not first_bad:
                    first_bad = f"sample {i} output {j}: {bad} of {ref.numel()} values differ"
                continue
            o, r = out.double(), ref.double()
            diff = (o - r).abs()
            # A NaN where the reference has a number (or the other way round) is always wrong.
            nan_bad = torch.isnan(o) != torch.isnan(r)
            diff = torch.where(torch.isnan(o) & torch.isnan(r), torch.zeros_like(diff), diff)
            diff = torch.where(nan_bad, torch.full_like(diff, math.inf), diff)
            if diff.numel():
                max_abs = max(max_abs, float(diff.max()))
                max_rel = max(max_rel, float((diff / r.abs().clamp_min(1e-12)).max()))
            bad_mask = diff > tol.atol + tol.rtol * r.abs()
            if bool(bad_mask.any()) and not first_bad:
                first_bad = (f"sample {i} output {j}: {int(bad_mask.sum())} of {ref.numel()} values off by up to "
                             f"{float(diff.max()):.3g} (atol {tol.atol:g}, rtol {tol.rtol:g})")
    return Correctness(ok=not first_bad, max_abs_err=max_abs, max_rel_err=max_rel, detail=first_bad)
