"""The inductor backend against the conformance suite, plus its shape modes and config keys."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from backends._compiled_artifact import CompiledModel
from backends.eager import EagerBackend
from backends.inductor import COMPILED_COMPILE_RATIO, MODES, InductorBackend, MarkDynamicCall, ShapeDispatch
from search_space.base import SpaceContext
from search_space.fusion import INDUCTOR_FUSION
from search_space.inductor_options import InductorOptionsDimension
from tests.backends_tests import conformance
from tuner.core.records import Candidate
from tuner.runtime.switches import CUDA_GRAPH

NAME = "inductor"

#: A non-default value for every fusion key.
FUSION = {"inductor/max_fusion_size": 8, "inductor/epilogue_fusion": False,
          "inductor/aggressive_fusion": True, "inductor/pattern_matcher": False}


def graphs_compiled() -> int:
    return int(torch._dynamo.utils.counters["stats"]["unique_graphs"])


def run_counting(candidate: Candidate, export_dir: Path | None = None) -> int:
    """Build, measure (and export) the candidate; return how many graphs Dynamo compiled."""
    torch._dynamo.utils.counters.clear()
    conformance.check_candidate(NAME, candidate, export_dir=export_dir)
    return graphs_compiled()


def test_registered() -> None:
    conformance.check_registered(NAME)


def test_static_compiles_per_shape_and_exports_per_shape(tmp_path: Path) -> None:
    # Two distinct batch sizes: two graphs, two AOTInductor packages.
    assert run_counting(Candidate(NAME, shape_mode="static"), tmp_path) == 2
    packages = sorted(p.name for p in tmp_path.glob("*.pt2"))
    assert packages == ["model_0.pt2", "model_1.pt2"]


def test_dynamic_compiles_once_and_exports(tmp_path: Path) -> None:
    assert run_counting(Candidate(NAME, shape_mode="dynamic"), tmp_path) == 1
    assert (tmp_path / "model.pt2").is_file()


def test_mark_dynamic_compiles_once_and_leaves_inputs_unmarked() -> None:
    assert run_counting(Candidate(NAME, shape_mode="mark_dynamic")) == 1
    # The marks go on aliases: the shared test data must stay unmarked for later static candidates.
    for sample in conformance.tiny_workload().samples:
        assert not any(hasattr(t, "_dynamo_dynamic_indices") for t in sample)


def test_fusion_options() -> None:
    built, _ = conformance.check_candidate(NAME, Candidate(NAME, shape_mode="static", options=FUSION))
    options = built.state["options"]
    assert {k: options[k.split("/", 1)[1]] for k in FUSION} == FUSION


def test_mode_max_autotune_no_cudagraphs() -> None:
    built, _ = conformance.check_candidate(NAME, Candidate(NAME, shape_mode="dynamic", options={
        "inductor/mode": "max-autotune-no-cudagraphs", "inductor/coordinate_descent_tuning": False}))
    # The mode's settings apply; an explicit key overrides the mode's value.
    assert built.state["options"]["max_autotune"] is True
    assert built.state["options"]["coordinate_descent_tuning"] is False


def test_frozen_weights_build_and_export(tmp_path: Path) -> None:
    frozen = Candidate(NAME, shape_mode="dynamic", options={"inductor/freezing": True})
    built, _ = conformance.check_candidate(NAME, frozen, export_dir=tmp_path)
    assert built.state["options"]["freezing"] is True
    # The package is compiled frozen too.
    assert json.loads((tmp_path / "artifact.json").read_text())["meta"]["inductor_configs"]["freezing"] is True


def test_bf16_o2() -> None:
    conformance.check_candidate(NAME, Candidate(NAME, shape_mode="dynamic", precision="bf16"), level="o2")


def test_model_that_raises_is_data() -> None:
    msg = conformance.check_failure_is_data(NAME, Candidate(NAME, shape_mode="static"), conformance.broken_workload())
    assert "boom" in msg


@pytest.mark.parametrize("options", [
    {"inductor/max_fusion_size": "eight"},   # wrong type
    {"inductor/max_fusion_sise": 8},         # typo of a key
    {"inductor/mode": "fastest"},            # unknown mode
])
def test_invalid_option_is_data(options: dict[str, object]) -> None:
    msg = conformance.check_failure_is_data(NAME, Candidate(NAME, shape_mode="static", options=options))
    assert msg


def test_search_space_keys_are_inductor_config_keys() -> None:
    # Every option the search space can produce (GPU context: all of them) must be a real
    # torch._inductor.config key, and each searched value must be accepted by config.patch.
    import torch._inductor.config as inductor_config

    ctx = SpaceContext(backends=(NAME,), device="gpu", level="o2")
    choices = [*INDUCTOR_FUSION, *InductorOptionsDimension().choices(NAME, ctx)]
    keys = [c.key for c in choices if c.key != "inductor/mode"]
    assert "inductor/coordinate_descent_tuning" in keys and "inductor/max_fusion_size" in keys
    known = inductor_config.get_config_copy()
    for choice in choices:
        if choice.key == "inductor/mode":
            continue
        key = choice.key.split("/", 1)[1]
        assert key in known, f"{choice.key} is not a torch._inductor.config key"
        for value in choice.values:
            with inductor_config.patch({key: value}):
                assert getattr(inductor_config, key) == value


def test_search_space_modes_are_known() -> None:
    ctx = SpaceContext(backends=(NAME,), device="gpu", level="o1")
    mode = next(c for c in InductorOptionsDimension().choices(NAME, ctx) if c.key == "inductor/mode")
    assert set(mode.values) <= set(MODES)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_export_estimate_follows_the_format_of_the_device(mode: str, cuda_graph: bool) -> None:
    # Every GPU candidate ships in the compiled format, graphs or not, so the reserve for its
    # export is that format's: a graph-less winner's AOTInductor estimate once cut a study short.
    candidate = Candidate(NAME, options={"inductor/mode": mode, CUDA_GRAPH: cuda_graph})
    compiled = COMPILED_COMPILE_RATIO * 10.0 + EagerBackend.export_s["gpu"] + EagerBackend.load_s["gpu"]
    assert InductorBackend.export_estimate_s(candidate, 10.0, "gpu") == pytest.approx(compiled)
    assert InductorBackend.export_estimate_s(candidate, 10.0, "cpu") == pytest.approx(
        InductorBackend.export_compile_ratio * 10.0)


#: In a fresh process with an empty Inductor cache: load a compiled-format artifact, run the test
#: shapes, report Inductor's FX graph cache hits and misses.
WARM_LOAD = """
import json, sys
from pathlib import Path
import torch
from tests.backends_tests.conformance import tiny_samples
from tuner.export.artifact import load_optimized
# As in the process that wrote it (and as load_optimized sets it around a GPU artifact's calls):
# the matmul precision setting is part of Inductor's cache key.
torch.backends.cuda.matmul.allow_tf32 = False
fn = load_optimized(sys.argv[1])
for sample in tiny_samples():
    fn(*sample)
c = torch._dynamo.utils.counters["inductor"]
print("CACHE", c["fxgraph_cache_hit"], c["fxgraph_cache_miss"])
"""


def test_compiled_format_ships_its_caches_and_reloads_warm(tmp_path: Path) -> None:
    # The format of GPU candidates, written here on the CPU: torch.export programs, the
    # compile settings and Inductor's caches, which a fresh process with an empty cache hits.
    candidate = Candidate(NAME, shape_mode="mark_dynamic")
    built, _ = conformance.check_candidate(NAME, candidate)
    workload = conformance.tiny_workload()
    art = tmp_path / "art"
    art.mkdir()
    meta = InductorBackend()._export_compiled(built, workload, candidate, art)
    assert meta["format"] == "torch.compile" and (art / str(meta["cache"])).stat().st_size > 0
    assert json.loads(json.dumps(meta)) == meta
    (art / "artifact.json").write_text(json.dumps({"backend": NAME, "device": "cpu", "candidate": candidate.to_dict(),
                                                   "meta": meta}))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
           "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "empty-cache")}
    proc = subprocess.run([sys.executable, "-c", WARM_LOAD, str(art)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    hits, misses = (int(n) for n in proc.stdout.split("CACHE")[1].split())
    assert hits >= 1 and misses == 0, proc.stdout
    # Loaded here too: the programs' outputs match the reference.
    loaded = InductorBackend.load(art, meta, "cpu")
    assert isinstance(loaded, CompiledModel)
    for sample, ref in zip(workload.samples, workload.reference, strict=True):
        out = loaded(*sample)
        torch.testing.assert_close(list(out), list(ref), rtol=1e-4, atol=1e-4)


def test_compiled_model_copies_graphed_outputs() -> None:
    buffer = torch.zeros(3)
    graphed, plain = CompiledModel(lambda: (buffer,), graphed=True), CompiledModel(lambda: (buffer,), graphed=False)
    assert graphed()[0] is not buffer and plain()[0] is buffer


def test_shape_dispatch_refuses_unknown_shape() -> None:
    dispatch = ShapeDispatch({"2x8,2x16": lambda *a: a})
    with pytest.raises(ValueError, match="no package for input shapes 5x8,5x16"):
        dispatch(torch.zeros(5, 8), torch.zeros(5, 16))


def test_mark_dynamic_call_skips_size_one() -> None:
    seen: list[tuple[torch.Tensor, ...]] = []
    call = MarkDynamicCall(lambda *a: seen.append(a), ((0,), (0,)))
    x, y = torch.zeros(1, 8), torch.zeros(4, 16)
    call(x, y)
    # maybe_mark_dynamic records "weak" marks: a hint, not a constraint that could fail.
    assert not hasattr(seen[0][0], "_dynamo_weak_dynamic_indices")
    weak: set[int] = seen[0][1]._dynamo_weak_dynamic_indices  # type: ignore[attr-defined]  # Dynamo's own mark
    assert 0 in weak and not hasattr(y, "_dynamo_weak_dynamic_indices")


@pytest.mark.gpu
def test_gpu(tmp_path: Path) -> None:
    conformance.check_registered(NAME, "gpu")
    conformance.check_candidate(NAME, Candidate(NAME, shape_mode="static"), "gpu", export_dir=tmp_path / "static")
    # Triton kernels with every fusion key and coordinate-descent tuning (max-autotune is left out:
    # it benchmarks GEMM templates for minutes).
    plain = Candidate(NAME, shape_mode="dynamic", options={**FUSION, "inductor/coordinate_descent_tuning": True})
    built, _ = conformance.check_candidate(NAME, plain, "gpu")
    meta = conformance.check_export_load(NAME, built, plain, tmp_path / "dynamic", "gpu")
    # A graph-less candidate ships as torch.compile rebuilds it too (COMPILED_FORMAT_DEVICES).
    assert meta["format"] == "torch.compile" and meta["cuda_graph"] is False
    # CUDA graphs: outputs live in reused buffers, which measure() must copy at once.
    graphed = Candidate(NAME, shape_mode="mark_dynamic", options={"inductor/mode": "reduce-overhead",
                                                                  "inductor/freezing": True})
    built, _ = conformance.check_candidate(NAME, graphed, "gpu")
    meta = conformance.check_export_load(NAME, built, graphed, tmp_path / "graphed", "gpu")
    # Shipped as torch.compile rebuilds it, CUDA graph trees included (backends._compiled_artifact).
    assert meta["format"] == "torch.compile" and meta["cuda_graph"] is True
    # The default mode's kernels captured in a CUDA graph of ours (torch/cuda_graph), shipped the
    # same way; the graph is the switches' (load_optimized), not the programs'. In fp16: the cast
    # wrapper's .to() calls leave device asserts in the programs, which failed every such export
    # on an H100 until the programs were moved to an indexed device (load_program).
    wrapped = Candidate(NAME, shape_mode="mark_dynamic", precision="fp16", options={CUDA_GRAPH: True})
    built, _ = conformance.check_candidate(NAME, wrapped, "gpu", level="o2")
    meta = conformance.check_export_load(NAME, built, wrapped, tmp_path / "wrapped", "gpu", level="o2")
    assert meta["format"] == "torch.compile" and meta["cuda_graph"] is False
    conformance.check_candidate(NAME, Candidate(NAME, shape_mode="static", precision="bf16"), "gpu", level="o2")


#: In a fresh process that imported nothing but torch and this backend: open the package, run it.
BARE_LOAD = """
import json, sys
from pathlib import Path
import torch
from backends.inductor import InductorBackend
assert not {"tvm", "onnxruntime", "tensorflow"} & set(sys.modules), sorted(sys.modules)
folder = Path(sys.argv[1])
fn = InductorBackend.load(folder, json.loads((folder / "artifact.json").read_text())["meta"], "gpu")
out = fn(torch.randn(2, 8, device="cuda"), torch.randn(2, 16, device="cuda"))
print("RAN", [tuple(o.shape) for o in out])
"""


@pytest.mark.gpu
def test_gpu_package_loads_in_a_bare_fresh_process(tmp_path: Path) -> None:
    # torch 2.11 + CUDA 13: a package's wrapper .so does not link libstdc++, and a fresh process had it
    # in no global scope: opening the package died of SIGSEGV (InductorBackend.load now puts it there).
    # GPU candidates ship in the compiled format now; packages written before must still load.
    candidate = Candidate(NAME, shape_mode="dynamic")
    built, _ = conformance.check_candidate(NAME, candidate, "gpu")
    meta = InductorBackend()._export_packages(built, conformance.tiny_workload("gpu"), candidate, tmp_path)
    assert meta["format"] == "aoti"
    (tmp_path / "artifact.json").write_text(json.dumps({"backend": NAME, "device": "gpu",
                                                       "candidate": candidate.to_dict(), "meta": meta}))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.run([sys.executable, "-c", BARE_LOAD, str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert "RAN" in proc.stdout
