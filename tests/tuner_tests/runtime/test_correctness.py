from __future__ import annotations

import math

import torch

from tuner.core.defaults import TOLERANCES
from tuner.runtime.correctness import check_outputs


def test_within_and_outside_tolerance():
    ref = ((torch.tensor([1.0, 2.0, -3.0]),),)
    ok = check_outputs(((torch.tensor([1.00001, 2.0, -3.0]),),), ref, TOLERANCES["o1"])
    assert ok.ok and 0 < ok.max_abs_err < 2e-5
    bad = check_outputs(((torch.tensor([1.01, 2.0, -3.0]),),), ref, TOLERANCES["o1"])
    assert not bad.ok and "sample 0 output 0" in bad.detail
    assert check_outputs(((torch.tensor([1.01, 2.0, -3.0]),),), ref, TOLERANCES["o2"]).ok


def test_nan_shape_and_integer_mismatches_fail():
    ref = ((torch.tensor([1.0, 2.0]), torch.tensor([3, 4])),)
    nan = check_outputs(((torch.tensor([math.nan, 2.0]), torch.tensor([3, 4])),), ref, TOLERANCES["o2"])
    assert not nan.ok and nan.max_abs_err == math.inf
    shape = check_outputs(((torch.tensor([1.0]), torch.tensor([3, 4])),), ref, TOLERANCES["o2"])
    assert not shape.ok and "shape" in shape.detail
    ints = check_outputs(((torch.tensor([1.0, 2.0]), torch.tensor([3, 5])),), ref, TOLERANCES["o2"])
    assert not ints.ok and "1 of 2 values differ" in ints.detail
    count = check_outputs(((torch.tensor([1.0, 2.0]),),), ref, TOLERANCES["o2"])
    assert not count.ok
