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


def test_o2_floor_uses_the_16_bit_peak_and_2_byte_values() -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(64, 32).eval()
    samples = [(torch.randn(4, 64),)]
    peak = DevicePeak("test device", fp32_flops=1e9, tf32_flops=2e9, half_flops=4e9, bandwidth=1e8, launch_s=1e-5,
                      source="made up for the test")
    o1, o2 = torch_floor(layer, samples, "cpu", peak), torch_floor(layer, samples, "cpu", peak, "o2")
    assert o2.samples[0].flops == o1.samples[0].flops == 2 * 4 * 64 * 32
    assert o2.samples[0].bytes == ((64 * 32 + 32) + 4 * 64 + 4 * 32) * 2  # every float at 2 bytes
    assert o2.compute_s == pytest.approx(o1.compute_s / 4)  # the fp16/bf16 tensor-core peak, not the fp32 one
    rec = o2.to_dict()
    assert (rec["level"], rec["flops_peak"], rec["float_bytes"]) == ("o2", 4e9, 2)


def test_o2_on_a_device_without_a_16_bit_figure_keeps_the_fp32_peak() -> None:
    assert cpu_peak(4, ghz=2.5, flops_per_cycle=32).flops_at("o2") == (4 * 2.5e9 * 32, "fp32")
    cost = SampleCost(flops=1e9, bytes=1.0, launches=None)
    assert floor_from_costs([cost], PEAK, "o2").floor_s == floor_from_costs([cost], PEAK).floor_s
