"""A new study's default candidates: the peers users have, and at o2 on the GPU their graphed half forms."""

from __future__ import annotations

import optuna

from search_space import SpaceContext, build_candidate
from tuner.runtime.models import CHANNELS_LAST
from tuner.runtime.switches import CUDA_GRAPH, CUDNN_BENCHMARK
from tuner.search.study import default_params

BACKENDS = ("eager", "inductor", "torchscript", "tvm", "onnxruntime")


def _candidates(level: str, device: str, convolutions: bool = True) -> list:
    ctx = SpaceContext(backends=BACKENDS, device=device, level=level, cuda_graphs=True, mixed=True,
                       convolutions=convolutions, weights=True, inductor_graphs=True)
    # Each default decodes as a trial with these params would (FixedTrial raises on a missing or foreign value).
    return [build_candidate(optuna.trial.FixedTrial(p), ctx) for p in default_params(ctx)]


def _summary(c) -> tuple:
    graphed = bool(c.options.get(CUDA_GRAPH) or c.options.get(CHANNELS_LAST))
    return c.backend, c.precision, graphed, c.options.get("torchscript/method"), c.options.get("inductor/mode")


def test_o2_on_the_gpu_seeds_the_half_peers_and_their_graphed_traced_forms() -> None:
    got = [_summary(c) for c in _candidates("o2", "gpu")]
    assert len(got) == len(set(got))
    assert ("eager", "fp32", False, None, None) in got  # the model as given
    assert ("eager", "fp16", False, None, None) in got and ("eager", "fp16", True, None, None) in got
    assert ("inductor", "fp16", False, None, "reduce-overhead") in got  # the user's torch.compile call
    # Inductor's fused kernels in a plain CUDA graph (with channels-last weights here).
    assert ("inductor", "fp16", True, None, "default") in got
    assert ("torchscript", "fp16", False, "script", None) in got
    assert ("torchscript", "fp16", True, "trace", None) in got
    # The model as given, Inductor graphed and as the user calls it, the other graphed forms, then
    # the other plain defaults: a short run reaches what wins on a GPU before what does not.
    assert got[:3] == [("eager", "fp32", False, None, None), ("inductor", "fp16", True, None, "default"),
                       ("inductor", "fp16", False, None, "reduce-overhead")]
    rest = got[3:]
    last_graphed = max(i for i, s in enumerate(rest) if s[2])
    assert all(s[2] for s in rest[:last_graphed + 1]) and not any(s[2] for s in rest[last_graphed + 1:])
    assert rest[last_graphed + 1:] and {s[0] for s in rest[last_graphed + 1:]} >= {"eager", "torchscript", "tvm"}
    assert {s[0] for s in got} == set(BACKENDS)


def test_the_graphed_defaults_of_a_convolution_model_hold_weights_channels_last_with_cudnn_benchmark() -> None:
    graphed = [c for c in _candidates("o2", "gpu") if c.options.get(CUDA_GRAPH) or c.options.get(CHANNELS_LAST)]
    assert {c.backend for c in graphed} == {"eager", "torchscript", "inductor"}
    assert all(c.options[CHANNELS_LAST] and c.options[CUDNN_BENCHMARK] for c in graphed)
    plain = [c for c in _candidates("o2", "gpu") if c not in graphed and c.backend not in ("tvm", "onnxruntime")]
    assert plain and not any(c.options.get(CHANNELS_LAST) or c.options.get(CUDNN_BENCHMARK) for c in plain)
    # Without convolutions neither is in the space; Inductor's graphed default is its default mode
    # in a CUDA graph of ours, beside reduce-overhead's graph trees.
    plain_only = _candidates("o2", "gpu", convolutions=False)
    assert not any(CHANNELS_LAST in c.options or CUDNN_BENCHMARK in c.options for c in plain_only)
    inductor = [(c.options["inductor/mode"], c.options.get(CUDA_GRAPH)) for c in plain_only if c.backend == "inductor"]
    assert inductor == [("default", True), ("reduce-overhead", None)]
    # Freezing is searched, never a default (with reduce-overhead it ran BERT 5.8x slower on an H100).
    assert not any(c.options.get("inductor/freezing") for c in _candidates("o2", "gpu"))


def test_the_cpu_seeds_each_backend_once_at_its_first_values() -> None:
    for level in ("o2", "o1"):
        got = _candidates(level, "cpu")
        assert [c.backend for c in got] == list(BACKENDS), level
        assert not any(c.options.get(CUDA_GRAPH) or c.options.get("inductor/freezing") for c in got), level
        assert not any(c.options.get(CHANNELS_LAST) for c in got), level
        assert all(c.precision == "fp32" for c in got), level


def test_o1_on_the_gpu_seeds_each_backends_first_values_and_its_graphed_form_in_fp32() -> None:
    got = [_summary(c) for c in _candidates("o1", "gpu")]
    plain = [s for s in got if not s[2]]
    assert sorted(s[0] for s in plain) == sorted(BACKENDS)
    # The model as given, Inductor graphed and as the user calls it, the other graphed forms, the
    # other plain defaults.
    assert got[:3] == [("eager", "fp32", False, None, None), ("inductor", "fp32", True, None, "default"),
                       ("inductor", "fp32", False, None, "default")]
    assert got[3:5] == [("eager", "fp32", True, None, None), ("torchscript", "fp32", True, "trace", None)]
    assert [s[0] for s in got[5:]] == ["torchscript", "tvm", "onnxruntime"]
