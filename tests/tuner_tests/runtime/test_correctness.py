from __future__ import annotations

import math

import pytest
import torch

from tuner.core.accuracy import accuracy_rule, parse_accuracy
from tuner.runtime.correctness import check_outputs

O1, O2 = accuracy_rule(None, "o1"), accuracy_rule(None, "o2")


def close_enough(reference, outputs):
    """A user's rule (named by ``--accuracy tests.tuner_tests.runtime.test_correctness:close_enough``)."""
    worst = max(float((o - r).abs().max()) for outs, refs in zip(outputs, reference, strict=True)
                for o, r in zip(outs, refs, strict=True))
    return worst, worst < 0.5


def test_elementwise_scores_the_share_of_tolerance_used():
    ref = ((torch.tensor([1.0, 2.0, -3.0]),),)
    ok = check_outputs(((torch.tensor([1.00001, 2.0, -3.0]),),), ref, O1)
    assert ok.ok and 0 < ok.max_abs_err < 2e-5 and 0 < ok.score < 1 and ok.rule == "elementwise:0.0001,0.0001"
    bad = check_outputs(((torch.tensor([1.01, 2.0, -3.0]),),), ref, O1)
    assert not bad.ok and "sample 0 output 0" in bad.detail and bad.score > 1
    assert check_outputs(((torch.tensor([1.01, 2.0, -3.0]),),), ref, parse_accuracy("elementwise:0.05,0.05")).ok


def test_rel_l2_judges_the_whole_output_not_its_worst_element():
    ref = torch.linspace(1, 10, 1000)
    one_outlier = ref.clone()
    one_outlier[0] += 0.5  # far outside an elementwise rule, 1e-3 of the norm
    verdict = check_outputs(((one_outlier,),), ((ref,),), O2)
    assert verdict.ok and verdict.score == pytest.approx(0.5 / float(ref.norm()), rel=1e-6)
    assert not check_outputs(((one_outlier,),), ((ref,),), O1).ok
    assert not check_outputs(((ref * 1.05,),), ((ref,),), O2).ok  # 5 % off everywhere


def test_cosine_and_top1():
    ref = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]])
    flipped = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.1, 0.1]])
    assert check_outputs(((ref * 2,),), ((ref,),), parse_accuracy("cosine:0.999")).ok  # scale-free
    low = check_outputs(((flipped,),), ((ref,),), parse_accuracy("cosine:0.999"))
    assert not low.ok and low.score < 0.999
    top1 = check_outputs(((flipped, torch.zeros(2)),), ((ref, torch.ones(2)),), parse_accuracy("top1"))
    assert not top1.ok and top1.score == 0.5  # only the first output's argmax counts
    assert check_outputs(((flipped,),), ((ref,),), parse_accuracy("top1:0.5")).ok


def test_a_users_function_decides():
    rule = parse_accuracy("tests.tuner_tests.runtime.test_correctness:close_enough")
    ref = ((torch.tensor([1.0, 2.0]),),)
    assert check_outputs(((torch.tensor([1.3, 2.0]),),), ref, rule).ok
    bad = check_outputs(((torch.tensor([1.7, 2.0]),),), ref, rule)
    assert not bad.ok and bad.score == pytest.approx(0.7) and "close_enough" in bad.detail


@pytest.mark.parametrize("rule", ["elementwise:0.05,0.05", "rel-l2:0.02", "cosine:0.99", "top1"])
def test_nan_shape_and_integer_mismatches_fail_under_every_rule(rule):
    r = parse_accuracy(rule)
    ref = ((torch.tensor([1.0, 2.0]), torch.tensor([3, 4])),)
    nan = check_outputs(((torch.tensor([math.nan, 2.0]), torch.tensor([3, 4])),), ref, r)
    assert not nan.ok and "NaN" in nan.detail
    shape = check_outputs(((torch.tensor([1.0]), torch.tensor([3, 4])),), ref, r)
    assert not shape.ok and "shape" in shape.detail
    ints = check_outputs(((torch.tensor([1.0, 2.0]), torch.tensor([3, 5])),), ref, r)
    assert not ints.ok and "1 of 2 values differ" in ints.detail
    assert not check_outputs(((torch.tensor([1.0, 2.0]),),), ref, r).ok
    both_nan = ((torch.tensor([math.nan, 2.0]), torch.tensor([3, 4])),)
    assert check_outputs(both_nan, both_nan, r).ok
