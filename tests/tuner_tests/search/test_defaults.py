"""A new study's default candidates: the peers users have, and at o2 on the GPU their graphed half forms."""

from __future__ import annotations

import optuna

from search_space import SpaceContext, build_candidate
from tuner.runtime.switches import CUDA_GRAPH
from tuner.search.study import default_params

BACKENDS = ("eager", "inductor", "torchscript", "tvm", "onnxruntime")


def _candidates(level: str, device: str) -> list:
    ctx = SpaceContext(backends=BACKENDS, device=device, level=level, cuda_graphs=True, mixed=True,
                       convolutions=True)
    # Each default decodes as a trial with these params would (FixedTrial raises on a missing or foreign value).
    return [build_candidate(optuna.trial.FixedTrial(p), ctx) for p in default_params(ctx)]


def _summary(c) -> tuple:
    return c.backend, c.precision, c.options.get(CUDA_GRAPH), c.options.get("torchscript/method"), \
        c.options.get("inductor/mode")


def test_o2_on_the_gpu_seeds_the_half_peers_and_their_graphed_traced_forms() -> None:
    got = [_summary(c) for c in _candidates("o2", "gpu")]
    assert len(got) == len(set(got))
    assert ("eager", "fp32", False, None, None) in got  # the model as given
    assert ("eager", "fp16", False, None, None) in got and ("eager", "fp16", True, None, None) in got
    assert ("inductor", "fp16", None, None, "reduce-overhead") in got
    assert ("torchscript", "fp16", False, "script", None) in got
    assert ("torchscript", "fp16", True, "trace", None) in got
    # The graphed forms come after every plain default: a short run measures the peers first.
    first_graphed = next(i for i, s in enumerate(got) if s[2])
    assert all(not s[2] for s in got[:first_graphed]) and all(s[2] for s in got[first_graphed:])
    assert {s[0] for s in got} == set(BACKENDS)


def test_o1_and_the_cpu_seed_each_backend_once_at_its_first_values() -> None:
    for level, device in (("o1", "gpu"), ("o2", "cpu"), ("o1", "cpu")):
        got = _candidates(level, device)
        assert [c.backend for c in got] == list(BACKENDS), (level, device)
        assert not any(c.options.get(CUDA_GRAPH) for c in got), (level, device)
        assert all(c.precision == "fp32" for c in got), (level, device)
