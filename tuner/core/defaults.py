"""Every default of a run, stated once: the CLI, the Python API, ``optimize()`` and the README read them here.

One typed module-level value per line, with the reason above it (the way Inductor's ``config.py``
keeps its options). ``tests/tuner_tests/core/test_defaults.py`` checks that the README's tables
quote these values.
"""

from __future__ import annotations

from tuner.core.devices import usable_cores

# -- tune ------------------------------------------------------------------------------------

#: Finished trials a study should hold.
TRIALS = 200
#: Seconds one candidate may take to build and measure (a TVM MetaSchedule candidate or an
#: Inductor max-autotune one can take minutes; a hang must still end).
TRIAL_TIMEOUT_S = 900.0
#: Untimed calls per test sample before timing.
WARMUP = 3
#: Timed calls per test sample; the sample's latency is their median.
REPEATS = 20
#: Timed calls per sample in the short first measurement that the pruner judges.
QUICK_REPEATS = 3
#: On the GPU, seconds of untimed calls over the test data before timing: after a compile the GPU
#: idles and its clocks drop, and a few calls of a sub-millisecond model do not bring them back.
GPU_WARMUP_S = 0.5
#: The fastest distinct candidates measured again side by side with eager after the trial loop.
FINALISTS = 3
#: Alternating rounds of that side-by-side measurement (each candidate keeps its fastest).
FINAL_ROUNDS = 2
#: Seed of the TPE sampler.
SEED = 0
#: Where the study, the tracking store and the results go.
OUTPUT_DIR = "tune-output"
#: Share of the RAM this process may use (the machine's, or its cgroup's limit where lower) that
#: the workers of one study split between them.
MEMORY_SHARE = 0.8
#: Workers per GPU host: one per this many cores, at most :data:`MAX_GPU_WORKERS`.
CORES_PER_GPU_WORKER = 2
MAX_GPU_WORKERS = 8

# -- tuner.optimize (the seed's short search) ------------------------------------------------

#: Trials of ``optimize()``'s default search (each backend's default candidate first, then TPE).
OPTIMIZE_TRIALS = 10
#: Seconds of ``optimize()``'s search loop.
OPTIMIZE_TIME_BUDGET_S = 90.0
#: Seconds one candidate may take in ``optimize()``'s search.
OPTIMIZE_TRIAL_TIMEOUT_S = 90.0
#: Timed calls per sample in ``optimize()``'s search: half of ``tune``'s, to keep it short.
OPTIMIZE_REPEATS = 10

# -- levels ----------------------------------------------------------------------------------


#: The optimization levels, Blade's: o1 keeps fp32 results, o2 also allows TF32, fp16 and bf16.
LEVELS: tuple[str, ...] = ("o1", "o2")
#: Each level's default accuracy rule (``--accuracy``, :mod:`tuner.core.accuracy`). o1: only
#: reordering of fp32 arithmetic may differ, element by element. o2: the whole output, as users
#: and NVIDIA's and Microsoft's tools judge half precision; an elementwise rule fails what users
#: deploy (one ResNet-50 logit of 1,000 off by 0.49 in plain bf16). 0.02 admits the plain eager
#: model in each 16-bit precision on the real-model workloads with room for a compiler's
#: reordering: on an H100 its worst relative L2 error was 1.3e-2 in bf16 (BERT, GPT-2, ViT),
#: 9.5e-3 under bf16 autocast, 1.7e-3 in fp16 and 9e-4 in TF32
#: (experiments/results/2026-12-06-h100-precision-errors.txt).
ACCURACY: dict[str, str] = {
    "o1": "elementwise:1e-4,1e-4",
    "o2": "rel-l2:0.02",
}
#: Level by default.
LEVEL = "o1"


def default_workers(device: str) -> int:
    """How many worker processes a study runs on this host when ``--workers`` is not given.

    On a GPU host a candidate's time is mostly compiling on the CPU (10-45 s per tvm or Inductor
    candidate of the demo on the H100 machine, against 1-3 s of timing), and much of it is
    single-threaded, so workers compile in parallel and take turns timing on the GPU
    (``experiments/bench_workers.py`` measures it). On a CPU-only host the timing shares the
    cores with the compiles, so one worker keeps the figures clean.

    Args:
        device: ``"cpu"`` or ``"gpu"``.

    Returns:
        One per :data:`CORES_PER_GPU_WORKER` cores, at most :data:`MAX_GPU_WORKERS`, on a GPU
        study; else 1.
    """
    if device != "gpu":
        return 1
    return max(1, min(MAX_GPU_WORKERS, usable_cores() // CORES_PER_GPU_WORKER))
