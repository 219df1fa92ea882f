from __future__ import annotations

import dataclasses

import optuna
import pytest
import torch

from search_space import SpaceContext, all_params, build_candidate, dimensions, space_size
from search_space.fusion import INDUCTOR_FUSION
from search_space.precision import precisions_for
from tuner.core.records import Candidate
from tuner.runtime.fallback import FP32_FALLBACK

CPU = SpaceContext(backends=("eager", "inductor", "torchscript"), device="cpu", level="o1")


def test_every_dimension_module_registers():
    names = {d.name for d in dimensions()}
    assert {"backend", "shape_mode", "precision", "fusion", "inductor_options", "torchscript_options",
            "fp32_fallback"} <= names


def test_fixed_trial_rebuilds_the_same_candidate():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen = []
    for _ in range(30):
        trial = study.ask()
        cand = build_candidate(trial, CPU)
        seen.append(cand)
        assert build_candidate(optuna.trial.FixedTrial(trial.params), CPU) == cand
        study.tell(trial, 1.0)
    assert {c.backend for c in seen} == {"eager", "inductor", "torchscript"}
    inductor = next(c for c in seen if c.backend == "inductor")
    assert set(inductor.options) >= {"inductor/mode", "inductor/max_fusion_size", "inductor/pattern_matcher"}
    assert inductor.shape_mode in ("static", "dynamic", "mark_dynamic")


def test_choices_depend_only_on_the_context():
    gpu = SpaceContext(backends=CPU.backends, device="gpu", level="o2")
    assert precisions_for(CPU) == ("fp32",)
    assert precisions_for(gpu) == ("fp32", "tf32", "fp16", "bf16")
    assert space_size(gpu) > space_size(CPU) > 3
    mixed = dataclasses.replace(gpu, mixed=True)
    assert precisions_for(mixed) == ("fp32", "tf32", "fp16", "bf16", "amp-fp16", "amp-bf16")
    assert precisions_for(dataclasses.replace(mixed, device="cpu")) == ("fp32", "bf16", "amp-bf16")


def test_fp32_fallback_is_asked_only_after_a_16_bit_precision():
    ctx = SpaceContext(backends=("eager", "tvm"), device="gpu", level="o2", mixed=True)
    points = list(all_params(ctx))
    assert space_size(ctx) == len(points) == len({tuple(sorted(p.items())) for p in points})
    for p in points:
        precision = p.get(f"{p['backend']}/precision")
        asked = precision in ("fp16", "bf16", "amp-fp16", "amp-bf16") and (p["backend"], precision) != ("tvm",
                                                                                                        "amp-fp16")
        assert (FP32_FALLBACK in p) == asked, p
        assert build_candidate(optuna.trial.FixedTrial(p), ctx).options.get(FP32_FALLBACK) == p.get(FP32_FALLBACK)


def test_static_only_restricts_shape_mode():
    ctx = SpaceContext(backends=("inductor",), device="cpu", level="o1", static_only=True)
    study = optuna.create_study()
    for _ in range(5):
        assert build_candidate(study.ask(), ctx).shape_mode == "static"


@pytest.mark.parametrize("choice", INDUCTOR_FUSION, ids=lambda c: c.key)
def test_inductor_fusion_keys_are_real_config_keys(choice):
    import torch._inductor.config as cfg

    key = choice.key.split("/", 1)[1]
    assert key in cfg.get_config_copy(), f"{key} is not an Inductor config key"


def test_candidate_key_is_stable_and_discriminates():
    a = Candidate("inductor", "static", "fp32", {"inductor/mode": "default"})
    b = Candidate("inductor", "static", "fp32", {"inductor/mode": "default"})
    c = Candidate("inductor", "dynamic", "fp32", {"inductor/mode": "default"})
    assert a.key() == b.key() != c.key()
    assert Candidate.from_dict(a.to_dict()) == a
    with pytest.raises(ValueError):
        Candidate("eager", shape_mode="sometimes")
    assert torch is not None


def test_choices_that_cost_minutes_are_searched_only_with_expensive() -> None:
    from search_space.base import SpaceContext
    from search_space.inductor_options import InductorOptionsDimension
    from search_space.tvm_metaschedule import TvmMetaScheduleDimension

    for device in ("gpu", "cpu"):
        quick = SpaceContext(backends=("inductor", "tvm"), device=device, level="o1")
        full = SpaceContext(backends=("inductor", "tvm"), device=device, level="o1", expensive=True)
        quick_modes = InductorOptionsDimension().choices("inductor", quick)[0].values
        full_modes = InductorOptionsDimension().choices("inductor", full)[0].values
        quick_budgets = TvmMetaScheduleDimension().choices("tvm", quick)[0].values
        full_budgets = TvmMetaScheduleDimension().choices("tvm", full)[0].values
        assert set(quick_modes) <= set(full_modes) and set(quick_budgets) < set(full_budgets)
        if device == "gpu":
            assert not any(m.startswith("max-autotune") for m in quick_modes)
            assert {"max-autotune", "max-autotune-no-cudagraphs"} <= set(full_modes)
            assert "64@top8" not in quick_budgets and "64@top8" in full_budgets
        else:
            assert "64@top2" not in quick_budgets and "64@top2" in full_budgets
    # A study stored before the flag existed reads back as the quick space.
    old = {"backends": ["tvm"], "device": "gpu", "level": "o1", "framework": "torch", "static_only": False}
    assert SpaceContext.from_dict(old).expensive is False


_TORCH_BACKENDS = ("eager", "torchscript", "inductor", "tvm")
_CONV_GPU = SpaceContext(backends=_TORCH_BACKENDS, device="gpu", level="o1", convolutions=True)
_GRAPHS_GPU = SpaceContext(backends=_TORCH_BACKENDS, device="gpu", level="o1", cuda_graphs=True, inductor_graphs=True)
_WEIGHTS_GPU = dataclasses.replace(_CONV_GPU, weights=True)
_UNALIGNED_GPU = SpaceContext(backends=_TORCH_BACKENDS, device="gpu", level="o1", unaligned_linears=True)


def _without(ctx: SpaceContext, flag: str) -> SpaceContext:
    """``ctx`` as a study created before ``flag`` existed reads back."""
    return SpaceContext.from_dict({k: v for k, v in ctx.to_dict().items() if k != flag})


@pytest.mark.parametrize(("key", "on", "backends", "off"), [
    # cuDNN's benchmark mode: torch models with convolutions, on the GPU.
    ("torch/cudnn_benchmark", _CONV_GPU, ("eager", "torchscript", "inductor"),
     (dataclasses.replace(_CONV_GPU, convolutions=False), dataclasses.replace(_CONV_GPU, device="cpu"),
      dataclasses.replace(_CONV_GPU, framework="tf"))),
    # CUDA-graph replay: eager, TorchScript and Inductor on the GPU, for torch models, in studies made
    # since it exists (a study created before reads cuda_graphs=False, so its stored params still decode).
    ("torch/cuda_graph", _GRAPHS_GPU, ("eager", "torchscript", "inductor"),
     (dataclasses.replace(_GRAPHS_GPU, device="cpu"), dataclasses.replace(_GRAPHS_GPU, framework="tf"),
      _without(_GRAPHS_GPU, "cuda_graphs"))),
    # Channels-last weights: torch models with convolutions, on the GPU, in studies made since it exists.
    ("layout/channels_last", _WEIGHTS_GPU, ("eager", "torchscript", "inductor"),
     (dataclasses.replace(_WEIGHTS_GPU, convolutions=False), dataclasses.replace(_WEIGHTS_GPU, device="cpu"),
      dataclasses.replace(_WEIGHTS_GPU, framework="tf"), _without(_WEIGHTS_GPU, "weights"))),
    # Padded Linear layers: torch models with an unaligned one, on the GPU, in studies made since it exists.
    ("layout/pad_linear", _UNALIGNED_GPU, ("eager", "torchscript", "inductor"),
     (dataclasses.replace(_UNALIGNED_GPU, unaligned_linears=False), dataclasses.replace(_UNALIGNED_GPU, device="cpu"),
      dataclasses.replace(_UNALIGNED_GPU, framework="tf"), _without(_UNALIGNED_GPU, "unaligned_linears"))),
])
def test_a_torch_wide_choice_is_searched_only_where_it_applies(key: str, on: SpaceContext, backends: tuple[str, ...],
                                                          off: tuple[SpaceContext, ...]) -> None:
    def keys(ctx: SpaceContext, backend: str) -> set[str]:
        return {c.key for d in dimensions() for c in d.choices(backend, ctx)}

    for backend in _TORCH_BACKENDS:
        assert (key in keys(on, backend)) == (backend in backends), backend
    for ctx in off:
        assert key not in keys(ctx, "eager")
    # Off first: the study's default candidate of each backend is torch's default.
    choice = next(c for d in dimensions() for c in d.choices("eager", on) if c.key == key)
    assert choice.values == (False, True)
    params = {"backend": "eager", **{c.key: c.values[0] for d in dimensions() for c in d.choices("eager", on)},
              key: True}
    assert build_candidate(optuna.trial.FixedTrial(params), on).options[key] is True


def test_inductor_is_graphed_only_in_its_graph_less_modes_and_in_studies_made_since() -> None:
    # reduce-overhead captures graphs of its own: a capture around it would nest.
    from search_space import all_params

    combos = {(p.get("inductor/mode"), p.get("torch/cuda_graph")) for p in all_params(_GRAPHS_GPU)
              if p["backend"] == "inductor"}
    assert combos == {("default", False), ("default", True), ("reduce-overhead", None)}
    old = _without(_GRAPHS_GPU, "inductor_graphs")
    assert "torch/cuda_graph" not in {c.key for d in dimensions() for c in d.choices("inductor", old)}
    assert "torch/cuda_graph" in {c.key for d in dimensions() for c in d.choices("eager", old)}


@pytest.mark.parametrize("device", ["cpu", "gpu"])
def test_inductor_freezing_is_searched_in_studies_made_since_it_exists(device: str) -> None:
    ctx = SpaceContext(backends=_TORCH_BACKENDS, device=device, level="o1", weights=True)
    offered = {b: {c.key: c.values for d in dimensions() for c in d.choices(b, ctx)} for b in _TORCH_BACKENDS}
    assert offered["inductor"]["inductor/freezing"] == (False, True)
    assert all("inductor/freezing" not in offered[b] for b in _TORCH_BACKENDS if b != "inductor")
    old = _without(ctx, "weights")
    assert "inductor/freezing" not in {c.key for d in dimensions() for c in d.choices("inductor", old)}


def test_a_torchscript_model_keeps_no_modules_in_fp32_so_its_shares_are_left_out():
    from search_space import refused_shares
    from tests.helpers import tiny_model, tiny_samples
    from tuner.workloads.loading import make_workload

    plain = make_workload(tiny_model(), tiny_samples(), "cpu", name="plain")
    scripted = make_workload(torch.jit.script(tiny_model()), tiny_samples(), "cpu", name="scripted")
    assert refused_shares(plain) == {}
    assert refused_shares(scripted) == {FP32_FALLBACK: (0.05, 0.2)}
