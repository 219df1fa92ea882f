"""Latency measurement over the test data: the protocol every figure of the tuner follows.

The first call of every distinct input shape is timed apart (run-time compiles and recompiles
land there and count as compile time); on the GPU the test data is then cycled untimed for
``gpu_warmup_s`` (clocks); then each sample gets ``warmup`` untimed calls and
``repeats`` timed ones, timed with CUDA events on the GPU and ``time.perf_counter`` on the CPU.
A sample's latency is the median of its repeats; the objective is their sum over the test data.
Everything after the first calls holds the device's host-wide lock (:mod:`tuner.runtime.exclusive`), so
that workers compiling in parallel never time on one device at once.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from tuner.core.devices import device_name
from tuner.core.errors import error_line
from tuner.core.records import MeasureConfig, Measurement
from tuner.core.workload import Workload, flatten_outputs
from tuner.runtime.exclusive import exclusive


def _timer(device: str) -> Callable[[Callable[[], Any]], float]:
    if device == "gpu":
        # torch.cuda.Event's constructor is untyped in torch's stubs.
        start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]

        def gpu_time(call: Callable[[], Any]) -> float:
            start.record()
            call()
            end.record()
            end.synchronize()
            return float(start.elapsed_time(end)) / 1e3

        return gpu_time

    def cpu_time(call: Callable[[], Any]) -> float:
        t0 = time.perf_counter()
        call()
        return time.perf_counter() - t0

    return cpu_time


def _sync(device: str) -> None:
    if device == "gpu":
        torch.cuda.synchronize()


def measure(fn: Callable[..., Any], workload: Workload, config: MeasureConfig, *, quick: bool = False,
            want_outputs: bool = True) -> Measurement:
    """Run ``fn`` over the workload's test data and time it.

    Args:
        fn: The compiled candidate (takes one sample's tensors).
        workload: Test data and device.
        config: Warm-up and repeat counts.
        quick: Use ``config.quick_repeats`` (the short first measurement for the pruner).
        want_outputs: Also collect one output per sample (for the correctness check).

    Returns:
        Per-sample median latencies, first-call seconds and outputs; or the error that stopped it.
    """
    device = workload.device
    timer = _timer(device)
    repeats = config.quick_repeats if quick else config.repeats
    warmup_s = 0.0
    outputs: list[tuple[torch.Tensor, ...]] = []
    latencies: list[float] = []
    try:
        with torch.no_grad():
            seen: set[tuple[tuple[int, ...], ...]] = set()
            for i, sample in enumerate(workload.samples):
                key = workload.shape_key(i)
                if key not in seen:
                    seen.add(key)
                    _sync(device)
                    t0 = time.perf_counter()
                    fn(*sample)
                    _sync(device)
                    warmup_s += time.perf_counter() - t0
            # First calls compile (Inductor) outside the lock; what is timed holds it.
            with exclusive(device):
                if device == "gpu" and config.gpu_warmup_s > 0:
                    t0 = time.perf_counter()
                    while time.perf_counter() - t0 < config.gpu_warmup_s:
                        for sample in workload.samples:
                            fn(*sample)
                        _sync(device)
                for sample in workload.samples:
                    if want_outputs:
                        # Copy at once: CUDA-graph backends reuse their output buffers on the next call.
                        outputs.append(tuple(t.detach().cpu().clone() for t in flatten_outputs(fn(*sample))))
                    for _ in range(config.warmup):
                        fn(*sample)
                    _sync(device)
                    times = [timer(lambda s=sample: fn(*s)) for _ in range(repeats)]  # type: ignore[misc]
                    latencies.append(statistics.median(times))
    except Exception as e:  # noqa: BLE001 - a candidate that crashes is data, not a crash
        return Measurement(error_msg=error_line(e), device=device_name(device))
    return Measurement(
        latencies_s=tuple(latencies),
        warmup_s=warmup_s,
        outputs=tuple(outputs) if want_outputs else None,
        repeats=repeats,
        device=device_name(device),
    )
