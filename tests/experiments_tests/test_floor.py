"""The floor's arithmetic on a model whose costs are known: one Linear layer."""

from __future__ import annotations

import pytest
import torch

from experiments.floor import DevicePeak, SampleCost, cpu_peak, floor_from_costs, torch_floor

PEAK = DevicePeak("test device", fp32_flops=1e9, tf32_flops=None, half_flops=None, bandwidth=1e8, launch_s=1e-5,
                  source="made up for the test")


def test_linear_costs_are_counted_exactly() -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(64, 32).eval()
    samples = [(torch.randn(4, 64),), (torch.randn(16, 64),)]
    floor = torch_floor(layer, samples, "cpu", PEAK)
    weights = (64 * 32 + 32) * 4
    for cost, batch in zip(floor.samples, (4, 16), strict=True):
        assert cost.flops == 2 * batch * 64 * 32  # one multiply-add per weight and row
        assert cost.bytes == weights + batch * 64 * 4 + batch * 32 * 4  # weights once, input and output once
        assert cost.launches == 1  # a single addmm; the weight's transpose is a view
    compute = [2 * b * 64 * 32 / 1e9 for b in (4, 16)]
    memory = [(weights + b * 96 * 4) / 1e8 for b in (4, 16)]
    assert floor.compute_s == pytest.approx(sum(compute))
    assert floor.memory_s == pytest.approx(sum(memory))
    assert floor.floor_s == pytest.approx(sum(max(c, m, 1e-5) for c, m in zip(compute, memory, strict=True)))
    assert floor.bound == "memory"
    assert floor.launch_bound_s == pytest.approx(2 * 1e-5)
    assert floor.times(2 * floor.floor_s) == pytest.approx(2.0)


def test_each_term_can_set_the_floor() -> None:
    compute = floor_from_costs([SampleCost(flops=1e9, bytes=1.0, launches=3)], PEAK)
    assert compute.bound == "compute" and compute.floor_s == pytest.approx(1.0)
    launch = floor_from_costs([SampleCost(flops=1.0, bytes=1.0, launches=None)], PEAK)
    assert launch.bound == "launch" and launch.floor_s == pytest.approx(1e-5)
    assert launch.launch_bound_s is None  # unknown kernel count: no launch-bound estimate


def test_cpu_figure_is_labelled_rough() -> None:
    peak = cpu_peak(4, ghz=2.5, flops_per_cycle=32)
    assert peak.fp32_flops == pytest.approx(4 * 2.5e9 * 32)
    assert "ROUGH" in peak.source
