"""The device's limit for a workload: how fast its test data could possibly run here.

Per test sample, three lower bounds on one run:

- compute: the eager model's FLOPs (``torch.utils.flop_counter.FlopCounterMode``; a multiply-add
  counts 2) over the device's peak for the level's precision (:meth:`DevicePeak.flops_at`): o1
  keeps fp32 results, so the fp32 peak, not the tensor-core TF32 one; o2 may run the whole model
  in fp16/bf16, so the 16-bit tensor-core peak;
- memory: bytes that must move at least once, over the memory bandwidth. Assumed: every weight is
  read once, every input read once and every output written once (parameters + buffers + inputs
  + outputs); intermediates are taken to stay on chip, which a fully fused kernel could manage.
  Floating-point values count at the level's width (:data:`FLOAT_BYTES`: 4 bytes at o1, 2 at o2,
  where a ``.half()`` model reads 2-byte weights); integer ones at their own;
- launch: one kernel launch (a fully fused program still launches once) times the launch latency.

The floor of a sample is the largest of the three; the floor of the test data is the sum over its
samples (the objective is the sum of per-sample medians). The *launch-bound estimate* is the
eager model's kernel count times the launch latency: what eager pays for launches alone. On the
GPU that count is the CUDA kernels the profiler sees in one eager run; on the CPU it is the aten
ops dispatched (views excluded), each a call through the dispatcher.

Peak figures are the vendors' datasheet numbers (dense, no sparsity), in :data:`GPU_PEAKS`; the
CPU figure is a rough estimate from the core count (:func:`cpu_peak`), labelled as such.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from tuner.core.workload import flatten_outputs

#: Bytes per floating-point value the floor counts at each level: at o2 a whole model may run in
#: fp16/bf16, so its weights, inputs and outputs could move at 2 bytes each (a lower bound, as the
#: floor must be, even where a peer keeps fp32 inputs and casts them on the device).
FLOAT_BYTES: dict[str, int] = {"o1": 4, "o2": 2}


@dataclasses.dataclass(frozen=True)
class DevicePeak:
    """A device's peak figures.

    Attributes:
        name: The device these are for.
        fp32_flops: FLOP/s in fp32 without tensor cores (the o1 level's precision).
        tf32_flops: FLOP/s of TF32 tensor cores (o2), None where there are none.
        half_flops: FLOP/s of fp16/bf16 tensor cores (o2), None where there are none.
        bandwidth: Memory bandwidth in bytes/s.
        launch_s: Latency of one kernel launch (GPU) or one op dispatch (CPU), seconds.
        source: Where the figures come from.
    """

    name: str
    fp32_flops: float
    tf32_flops: float | None
    half_flops: float | None
    bandwidth: float
    launch_s: float
    source: str

    def flops_at(self, level: str) -> tuple[float, str]:
        """The peak FLOP/s a level's floor divides by, and the precision it is for.

        o1's results are fp32 (TF32 off): the fp32 peak. o2 may compute in fp16/bf16: the 16-bit
        tensor-core peak, else the fp32 one where the device has none listed (the rough CPU
        figure: fp16 on the CPU is no faster than fp32).
        """
        if level == "o2" and self.half_flops:
            return self.half_flops, "fp16/bf16 tensor cores"
        return self.fp32_flops, "fp32"


_NVIDIA = ("NVIDIA datasheet, dense figures (half the 'with sparsity' ones); launch latency: the usual "
           "~2.5 us of a CUDA kernel launch from the host")
#: Keyed by a substring of ``torch.cuda.get_device_name()``; the first match wins.
GPU_PEAKS: dict[str, DevicePeak] = {
    "H100 PCIe": DevicePeak("NVIDIA H100 PCIe", 51e12, 378e12, 756e12, 2.0e12, 2.5e-6,
                            f"H100 PCIe: {_NVIDIA}"),
    "H100": DevicePeak("NVIDIA H100 SXM5 80GB HBM3", 67e12, 494e12, 989e12, 3.35e12, 2.5e-6,
                       f"H100 SXM5: {_NVIDIA}"),
    "H200": DevicePeak("NVIDIA H200 SXM 141GB HBM3e", 67e12, 494e12, 989e12, 4.8e12, 2.5e-6,
                       f"H200 SXM: {_NVIDIA}"),
}


def _cpuinfo() -> tuple[float | None, bool]:
    """This host's clock (GHz, from ``/proc/cpuinfo``) and whether it has AVX-512; (None, False) elsewhere."""
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return None, False
    mhz = next((float(line.split(":")[1]) for line in text.splitlines() if line.startswith("cpu MHz")), None)
    return (mhz / 1e3 if mhz else None), " avx512f" in text


def cpu_peak(cores: int | None = None, ghz: float | None = None, flops_per_cycle: int | None = None) -> DevicePeak:
    """A rough CPU figure: cores x clock x fp32 FLOP per cycle, 100 GB/s, 5 us per op.

    FLOP per cycle per core: two FMA units of 16 fp32 lanes (AVX-512) or 8 (AVX2), a multiply-add
    counting 2; the clock is ``/proc/cpuinfo``'s (2.5 GHz where unknown). 100 GB/s stands for
    cache-resident weights (the small models here fit in cache between runs). Not measured and not
    from a datasheet: the floor it gives on the CPU is an order of magnitude.

    Args:
        cores: Cores to count (default: ``os.cpu_count()``).
        ghz: Clock (default: this host's).
        flops_per_cycle: fp32 FLOP per cycle per core (default: 64 with AVX-512, else 32).

    Returns:
        The figures.
    """
    n = cores or os.cpu_count() or 1
    host_ghz, avx512 = _cpuinfo()
    clock = ghz or host_ghz or 2.5
    per_cycle = flops_per_cycle or (64 if avx512 else 32)
    return DevicePeak(f"CPU, {n} cores (rough)", n * clock * 1e9 * per_cycle, None, None, 100e9, 5e-6,
                      f"ROUGH estimate: {n} cores x {clock:.2f} GHz x {per_cycle} FLOP/cycle, 100 GB/s (weights in "
                      "cache), 5 us per op; not a measured or datasheet figure")


def peak_for(device: str) -> DevicePeak | None:
    """The figures of this host's device, None for a GPU not in :data:`GPU_PEAKS`."""
    if device != "gpu":
        return cpu_peak()
    name = torch.cuda.get_device_name()
    return next((p for key, p in GPU_PEAKS.items() if key in name), None)


def flops_of(model: Any, sample: Sequence[torch.Tensor]) -> float:
    """FLOPs of one eager run (``FlopCounterMode``: matmuls, convolutions, attention).

    Args:
        model: The eager model.
        sample: One test sample's inputs.

    Returns:
        The count (a multiply-add counts 2).
    """
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*sample)
    return float(counter.get_total_flops())


def _nbytes(t: torch.Tensor, float_bytes: int | None) -> int:
    """A tensor's bytes, floating-point values counted at ``float_bytes`` each where given."""
    width = float_bytes if float_bytes is not None and t.is_floating_point() else t.element_size()
    return t.numel() * width


def state_bytes(model: Any, float_bytes: int | None = None) -> int:
    """Bytes of the model's parameters and buffers (each read once per run, by assumption).

    Args:
        model: The eager model (0 for anything else).
        float_bytes: Bytes per floating-point value (:data:`FLOAT_BYTES`); None: as stored.
    """
    if not isinstance(model, torch.nn.Module):
        return 0
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(_nbytes(t, float_bytes) for t in tensors)


def io_bytes(sample: Sequence[torch.Tensor], outputs: Sequence[torch.Tensor], float_bytes: int | None = None) -> int:
    """Bytes of one sample's inputs and outputs (floating-point values at ``float_bytes`` where given)."""
    return sum(_nbytes(t, float_bytes) for t in (*sample, *outputs))


class _OpCounter(TorchDispatchMode):
    """Counts the aten ops dispatched, views excluded (they launch nothing)."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.count = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if not getattr(func, "is_view", False):
            self.count += 1
        return func(*args, **(kwargs or {}))


def launches_of(model: Any, sample: Sequence[torch.Tensor], device: str) -> int:
    """Kernels one eager run launches: CUDA kernels on the GPU (profiler), dispatched aten ops on the CPU.

    Args:
        model: The eager model.
        sample: One test sample's inputs (on ``device``).
        device: ``"cpu"`` or ``"gpu"``.

    Returns:
        The count.
    """
    with torch.no_grad():
        model(*sample)  # first call: lazy initialisation is not part of a run
        if device != "gpu":
            counter = _OpCounter()
            with counter:
                model(*sample)
            return counter.count
        from torch.profiler import DeviceType, ProfilerActivity, profile

        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            model(*sample)
            torch.cuda.synchronize()
    return sum(1 for e in prof.events() if e.device_type == DeviceType.CUDA)


@dataclasses.dataclass(frozen=True)
class SampleCost:
    """What one test sample costs at least.

    Attributes:
        flops: FLOPs of one run.
        bytes: Bytes moved at least once (weights, inputs, outputs).
        launches: Kernels the eager model launches (None where unknown).
    """

    flops: float
    bytes: float
    launches: int | None


@dataclasses.dataclass(frozen=True)
class Floor:
    """The device's limit for a workload's test data.

    Attributes:
        peak: The figures used.
        samples: Cost per test sample.
        compute_s: Sum over the samples of FLOPs / peak.
        memory_s: Sum of bytes / bandwidth.
        floor_s: Sum of each sample's max(compute, memory, one launch): the floor.
        launch_bound_s: Sum of eager launches x launch latency (None where launches are unknown).
        bound: Which term sets most of the floor (``compute``, ``memory`` or ``launch``).
        level: The level whose precision the floor assumes (:meth:`DevicePeak.flops_at`).
    """

    peak: DevicePeak
    samples: tuple[SampleCost, ...]
    compute_s: float
    memory_s: float
    floor_s: float
    launch_bound_s: float | None
    bound: str
    level: str = "o1"

    def times(self, total_s: float) -> float:
        """``total_s`` (a result over the whole test data) as a multiple of the floor."""
        return total_s / self.floor_s

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record."""
        flops, precision = self.peak.flops_at(self.level)
        return {"peak": dataclasses.asdict(self.peak), "samples": [dataclasses.asdict(s) for s in self.samples],
                "level": self.level, "flops_peak": flops, "flops_precision": precision,
                "float_bytes": FLOAT_BYTES[self.level],
                "compute_ms": self.compute_s * 1e3, "memory_ms": self.memory_s * 1e3,
                "floor_ms": self.floor_s * 1e3,
                "launch_bound_ms": None if self.launch_bound_s is None else self.launch_bound_s * 1e3,
                "bound": self.bound}


def floor_from_costs(costs: Sequence[SampleCost], peak: DevicePeak, level: str = "o1") -> Floor:
    """Combine per-sample costs into the floor (see the module docstring for the definition).

    Args:
        costs: One per test sample (bytes already at the level's width).
        peak: The device's figures.
        level: ``o1`` or ``o2``: which peak FLOP/s the compute term uses (:meth:`DevicePeak.flops_at`).

    Returns:
        The floor.
    """
    flops_peak, _ = peak.flops_at(level)
    terms = [(c.flops / flops_peak, c.bytes / peak.bandwidth, peak.launch_s) for c in costs]
    floor_s = sum(max(t) for t in terms)
    wins = {"compute": 0.0, "memory": 0.0, "launch": 0.0}
    for compute, memory, launch in terms:
        name = max((("compute", compute), ("memory", memory), ("launch", launch)), key=lambda kv: kv[1])[0]
        wins[name] += max(compute, memory, launch)
    known = [c.launches for c in costs]
    launch_bound = (None if any(n is None for n in known)
                    else sum(int(n or 0) for n in known) * peak.launch_s)
    return Floor(peak=peak, samples=tuple(costs), compute_s=sum(t[0] for t in terms),
                 memory_s=sum(t[1] for t in terms), floor_s=floor_s, launch_bound_s=launch_bound,
                 bound=max(wins, key=lambda k: wins[k]), level=level)


def torch_floor(model: Any, samples: Sequence[Sequence[torch.Tensor]], device: str,
                peak: DevicePeak, level: str = "o1") -> Floor:
    """The floor of a PyTorch workload, counted on its eager model.

    Args:
        model: The eager model (on ``device``).
        samples: The test samples (on ``device``).
        device: ``"cpu"`` or ``"gpu"``.
        peak: The device's figures.
        level: ``o1`` or ``o2``: the precision the floor assumes (peak FLOP/s and bytes per value).

    Returns:
        The floor.
    """
    width = FLOAT_BYTES[level]
    weights = state_bytes(model, width)
    costs = []
    with torch.no_grad():
        for sample in samples:
            outputs = flatten_outputs(model(*sample))
            costs.append(SampleCost(flops=flops_of(model, sample),
                                    bytes=float(weights + io_bytes(sample, outputs, width)),
                                    launches=launches_of(model, sample, device)))
    return floor_from_costs(costs, peak, level)


def onnx_weight_bytes(onnx_bytes: bytes, float_bytes: int | None = None) -> int:
    """Bytes of an ONNX model's initializers (its weights), floating-point ones at ``float_bytes`` where given."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load_from_string(onnx_bytes)
    arrays = [numpy_helper.to_array(init) for init in proto.graph.initializer]
    return sum(int(a.size * float_bytes if float_bytes is not None and a.dtype.kind == "f" else a.nbytes)
               for a in arrays)


__all__ = ["FLOAT_BYTES", "GPU_PEAKS", "DevicePeak", "Floor", "SampleCost", "cpu_peak", "flops_of", "floor_from_costs",
           "io_bytes", "launches_of", "onnx_weight_bytes", "peak_for", "state_bytes", "torch_floor"]
