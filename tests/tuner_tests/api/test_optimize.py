"""tuner.optimize / tuner.save / tuner.load_optimized: the seed's blade.optimize call.

The fast tests search cheap backends on a tiny model; ``test_opaque`` (below) is a test-only
backend that is correct and faster than eager but cannot be given as a model of the user's kind,
so that the same-kind policy and ``Config(output="any")`` are exercised deterministically. The
seed's own examples (experiments/seed_examples/) run with the default ``Config()`` and are marked
``slow``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import tuner
from backends.base import Backend
from tests.helpers import tiny_model, tiny_samples
from tuner.core.accuracy import accuracy_rule
from tuner.core.errors import UserError
from tuner.core.records import Built, Candidate
from tuner.core.workload import Workload, flatten_outputs
from tuner.runtime.correctness import check_outputs

ROOT = Path(__file__).resolve().parents[3]


class OpaqueBackend(Backend):
    """Test-only: correct and fast (it remembers the outputs of each input it saw), not a model.

    Its artifact is a TorchScript file read back into the same remembering wrapper: a plain
    callable, so ``optimize`` can only return it under ``Config(output="any")``.
    """

    name = "test_opaque"
    test_only = True
    shape_modes = ("static", "dynamic")

    @staticmethod
    def _remembering(model: Callable[..., Any]) -> Callable[..., Any]:
        memo: dict[tuple[tuple[int, int], ...], Any] = {}

        def fn(*args: torch.Tensor) -> Any:
            key = tuple((t.data_ptr(), t._version) for t in args)
            if key not in memo:
                memo[key] = model(*args)
            return memo[key]

        return fn

    def compile(self, workload: Workload, candidate: Candidate) -> Built:
        return Built(fn=self._remembering(workload.model), build_s=0.0, state={"model": workload.model})

    def export(self, built: Built, workload: Workload, candidate: Candidate, directory: Path) -> dict[str, Any]:
        model = built.state["model"]
        scripted = model if isinstance(model, torch.jit.ScriptModule) else torch.jit.script(model)
        torch.jit.save(scripted, str(directory / "model.ts"))
        return {"file": "model.ts"}

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any], device: str) -> Callable[..., Any]:
        return cls._remembering(torch.jit.load(str(directory / meta["file"])))


ENTRY_KEYS = {"name", "status", "speedup", "pre_run", "post_run"}


def assert_blade_report(report: dict[str, Any]) -> None:
    """The seed's report format: optimizations [{name, status, speedup, pre_run, post_run}]."""
    assert report["optimizations"], report
    for entry in report["optimizations"]:
        assert set(entry) == ENTRY_KEYS, entry
        assert entry["status"] in ("effective", "ineffective", "failed", "not tried")
        assert entry["speedup"] == "-" or re.fullmatch(r"\d+\.\d\d", entry["speedup"])
        assert entry["pre_run"] == "-" or re.fullmatch(r"\d+\.\d\d ms", entry["pre_run"])
        assert entry["post_run"] == "-" or re.fullmatch(r"\d+\.\d\d ms", entry["post_run"])
    assert {"trials", "complete", "failed", "stopped_by", "wall_s"} <= set(report["search"])
    json.dumps(report, default=str)


def same_outputs(model: Callable[..., Any], reference_model: Callable[..., Any],
                 samples: list[tuple[torch.Tensor, ...]]) -> bool:
    with torch.no_grad():
        got = [flatten_outputs(model(*s)) for s in samples]
        ref = [tuple(t.detach() for t in flatten_outputs(reference_model(*s))) for s in samples]
    return check_outputs(got, ref, accuracy_rule(None, "o1")).ok


def cheap(tmp_path: Path, **kw: Any) -> tuner.Config:
    return tuner.Config(**{"backends": ["eager", "torchscript"], "trials": 4, "output_dir": tmp_path / "out",
                           "track": False, **kw})


def test_scriptmodule_in_scriptmodule_out(tmp_path: Path) -> None:
    model = torch.jit.script(tiny_model())
    data = tiny_samples()
    with pytest.warns(RuntimeWarning, match="no CUDA GPU") if not torch.cuda.is_available() else _nothing():
        optimized, spec, report = tuner.optimize(model, "o1", device_type="gpu", config=cheap(tmp_path),
                                                 test_data=data)
    assert isinstance(optimized, torch.jit.ScriptModule)
    assert spec.kind == "torchscript" and spec.backend in ("eager", "torchscript") and spec.level == "o1"
    # A TorchScript winner comes back inside the module that calls tuner's operator (import tuner);
    # eager's is the model as given. Which wins the 4 trials depends on their timing.
    assert spec.runtime == (("torch",) if spec.backend == "eager" else ("tuner", "torch")), spec
    assert "torch.jit.save" in spec.how_to_run
    assert json.loads(str(spec))["study"] == spec.study
    assert_blade_report(report)
    assert report["optimize"]["returned"]["kind"] == "torchscript"
    if not torch.cuda.is_available():
        assert report["device"] == {"requested": "gpu", "used": "cpu", "fallback": "no CUDA GPU visible to torch"}
        assert any("no CUDA GPU" in w for w in report["warnings"])
        assert spec.device == "cpu"
    # The seed's own save line, then tuner's: both reload and reproduce the model.
    torch.jit.save(optimized, str(tmp_path / "optimized.pt"))
    saved = tuner.save(optimized, tmp_path / "via_tuner.pt")
    for path in (tmp_path / "optimized.pt", saved):
        loaded = tuner.load_optimized(path)
        assert isinstance(loaded, torch.jit.ScriptModule)
        assert same_outputs(loaded, model, data)
    assert spec.artifact_dir is not None and Path(spec.artifact_dir, "artifact.json").is_file()


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: object) -> None:
        return None


def test_nn_module_in_nn_module_out(tmp_path: Path) -> None:
    model, data = tiny_model(), tiny_samples()
    optimized, spec, report = tuner.optimize(model, "o1", device_type="cpu", config=cheap(tmp_path), test_data=data)
    assert isinstance(optimized, torch.nn.Module) and spec.kind == "nn.Module"
    assert report["warnings"] == [] or all("faster one exists" in w for w in report["warnings"])
    # A ScriptModule (a torchscript winner) is saved as a file, another nn.Module as its artifact folder.
    saved = tuner.save(optimized, tmp_path / "saved")
    assert saved.is_file() if spec.backend == "torchscript" else (saved / "artifact.json").is_file()
    assert same_outputs(tuner.load_optimized(saved), model, data)
    assert same_outputs(optimized, model, data)


def test_save_nn_module_writes_its_artifact_folder(tmp_path: Path) -> None:
    model, data = tiny_model(), tiny_samples()
    optimized, spec, _ = tuner.optimize(model, "o1", device_type="cpu", config=cheap(tmp_path, backends=["eager"],
                                                                                        trials=1), test_data=data)
    assert optimized is model and spec.backend == "eager" and spec.kind == "nn.Module"
    folder = tuner.save(optimized, tmp_path / "saved")
    assert json.loads((folder / "artifact.json").read_text())["backend"] == "eager"
    assert same_outputs(tuner.load_optimized(folder), model, data)
    with pytest.raises(UserError, match="is a file"):
        tuner.save(optimized, tmp_path / "saved" / "artifact.json")


def test_a_scriptmodule_comes_back_as_a_scriptmodule_that_runs_the_winner_whatever_its_backend(tmp_path: Path) -> None:
    model, data = torch.jit.script(tiny_model()), tiny_samples()
    cfg = cheap(tmp_path, backends=["eager", "test_opaque"])
    optimized, spec, report = tuner.optimize(model, "o1", device_type="cpu", config=cfg, test_data=data)
    section = report["optimize"]
    assert section["fastest"]["backend"] == "test_opaque"
    assert isinstance(optimized, torch.jit.ScriptModule) and spec.backend == "test_opaque"
    assert spec.kind == "torchscript" and "tuner" in spec.runtime
    assert section["returned"]["is_fastest"] is True and "run_artifact" in section["returned"]["carrier"]
    assert report["optimizations"][0]["name"] == "test_opaque"  # the entry of the model returned
    assert same_outputs(optimized, model, data)
    # The seed's save, then `import tuner; torch.jit.load(...)` in a fresh process: the artifact
    # travels inside the file.
    path = tmp_path / "optimized.pt"
    torch.jit.save(optimized, str(path))
    torch.save({"samples": data, "reference": [model(*s) for s in data]}, tmp_path / "data.pt")
    code = ("import sys, torch, tuner\n"
            "m = torch.jit.load(sys.argv[1]); d = torch.load(sys.argv[2])\n"
            "print(max(float((a - b).abs().max()) for s, r in zip(d['samples'], d['reference'])\n"
            "          for a, b in zip(m(*s), r)))")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "data.pt")], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout.strip().splitlines()[-1]) < 1e-5
    assert list((tmp_path / "cache" / "compile-tuner" / "artifacts").iterdir())  # unpacked on first call


def test_a_faster_candidate_of_another_kind_is_reported_and_any_returns_it(tmp_path: Path) -> None:
    model, data = tiny_model(), tiny_samples()
    cfg = cheap(tmp_path, backends=["eager", "test_opaque"])
    optimized, spec, report = tuner.optimize(model, "o1", device_type="cpu", config=cfg, test_data=data)
    section = report["optimize"]
    assert section["fastest"]["backend"] == "test_opaque"
    assert isinstance(optimized, torch.nn.Module) and spec.backend == "eager"
    assert section["returned"]["is_fastest"] is False and section["returned"]["backend"] == "eager"
    assert "faster one exists" in section["note"] and section["fastest"]["artifact_dir"] in section["note"]
    assert section["note"] in report["warnings"]
    assert Path(section["fastest"]["artifact_dir"], "artifact.json").is_file()
    assert report["optimizations"][0]["name"] == "eager"  # the entry of the model returned

    # output="any": the same study (nothing re-run), the overall winner loaded.
    anyk, spec_any, report_any = tuner.optimize(model, "o1", device_type="cpu", config=cheap(
        tmp_path, backends=["eager", "test_opaque"], output="any"), test_data=data)
    assert spec_any.study == spec.study and spec_any.kind == "loaded artifact" and spec_any.backend == "test_opaque"
    assert report_any["search"]["trials"] == report["search"]["trials"]
    assert not isinstance(anyk, torch.nn.Module) and same_outputs(anyk, model, data)
    folder = tuner.save(anyk, tmp_path / "any")
    assert json.loads((folder / "artifact.json").read_text())["backend"] == "test_opaque"
    assert same_outputs(tuner.load_optimized(folder), model, data)


def test_static_only_without_a_same_kind_candidate_returns_the_model(tmp_path: Path) -> None:
    model, data = tiny_model(), tiny_samples()
    cfg = cheap(tmp_path, backends=["eager", "test_opaque"], enable_static_shape_compilation_opt=True)
    optimized, spec, report = tuner.optimize(model, "o1", device_type="cpu", config=cfg, test_data=data)
    assert optimized is model and spec.trial is None
    assert report["optimize"]["fastest"]["backend"] == "test_opaque"
    assert report["search"]["space_size"] == 1  # eager has no static mode: only test_opaque[static]
    assert "returned unchanged" in report["optimize"]["note"]
    assert report["optimizations"][0]["name"] == "none"


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"level": "o3"}, "unknown optimization level 'o3'"),
    ({"device_type": "tpu"}, "unknown device_type 'tpu'"),
    ({"test_data": None}, "needs test_data"),
    ({"test_data": torch.zeros(2)}, "not a list of samples"),
    ({"inputs": ["x"]}, "inputs/outputs name the tensors of a TF graph"),
    ({"config": {"trials": 3}}, "not a tuner.Config"),
    ({"test_data": [(torch.zeros(3, 5), torch.zeros(3, 16))]}, "does not fit the model"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, kwargs: dict[str, Any], needle: str) -> None:
    args: dict[str, Any] = {"level": "o1", "device_type": "cpu", "config": cheap(tmp_path), "test_data": tiny_samples()}
    args.update(kwargs)
    with pytest.raises(UserError) as exc:
        tuner.optimize(tiny_model(), **args)
    assert needle in str(exc.value) and "\n" not in str(exc.value)
    assert not (tmp_path / "out").exists()


def test_save_and_load_refuse_what_they_cannot_handle(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not returned by tuner.optimize"):
        tuner.save(lambda x: x, tmp_path / "f")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(UserError, match="neither a GraphDef .pb nor a TorchScript file"):
        tuner.load_optimized(tmp_path / "junk.pt")
    (tmp_path / "junk.pb").write_bytes(b"\xff\xff not a graph")
    with pytest.raises(UserError, match="not a binary GraphDef"):
        tuner.load_optimized(tmp_path / "junk.pb")


#: Trials of a seed example's ``blade.Config()`` here. At the default's 10 the TF examples ran into
#: its 90 s budget (about 80 CPU seconds each on the 2-core box); 4 trials still search several
#: backends and end by their count.
SEED_TRIALS = 4


def run_seed_example(script: Path, folder: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Run a seed example in ``folder``, its ``blade.Config()`` at :data:`SEED_TRIALS` trials.

    Without a GPU its ``.cuda()`` calls are dropped; nothing else in the text changes.
    """
    text = script.read_text()
    if not torch.cuda.is_available():
        text = text.replace(".cuda()", "")
    monkeypatch.setattr(tuner, "Config", functools.partial(tuner.Config, trials=SEED_TRIALS))
    monkeypatch.chdir(folder)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(text, str(script), "exec"), namespace)  # noqa: S102 - the example is the test
    return namespace


@pytest.mark.slow
def test_seed_pytorch_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tuner.workloads.demo import make_demo

    torch.jit.save(torch.jit.script(make_demo()[0]), str(tmp_path / "decoder.pt"))
    ns = run_seed_example(ROOT / "experiments" / "seed_examples" / "pt_decoder.py", tmp_path, monkeypatch)
    report, spec = ns["report"], ns["opt_spec"]
    assert_blade_report(report)
    assert isinstance(ns["optimized_model"], torch.jit.ScriptModule) and spec.kind == "torchscript"
    assert report["requested"]["config"]["trials"] == SEED_TRIALS
    # The file the seed's torch.jit.save line wrote reloads and reproduces the original model.
    reloaded = tuner.load_optimized(tmp_path / "optimized_decoder.pt")
    original = torch.jit.load(str(tmp_path / "decoder.pt"))
    assert same_outputs(reloaded, original, [ns["dummy"]])


def run_graph(graph_def: Any, feed: dict[Any, Any], outputs: list[str]) -> list[Any]:
    """Run a GraphDef with plain TensorFlow (a session), as a TF1 user deploys it."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    names = {(k.decode() if isinstance(k, bytes) else str(k)).split(":")[0] + ":0": v for k, v in feed.items()}
    with tf.compat.v1.Session(graph=graph) as sess:
        return list(sess.run([f"{o}:0" for o in outputs], feed_dict=names))


def check_tf_seed_example(script: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Run a TF seed example on the seed-like ASR graph; check the report, the kind and optimized.pb."""
    import runpy

    import numpy as np

    pytest.importorskip("tensorflow")
    runpy.run_path(str(ROOT / "experiments" / "workloads" / "tf_asr.py"), run_name="tf_asr")["write_files"](tmp_path)
    ns = run_seed_example(ROOT / "experiments" / "seed_examples" / script, tmp_path, monkeypatch)
    report, spec = ns["report"], ns["opt_spec"]
    assert_blade_report(report)
    assert spec.kind == "graphdef" and type(ns["optimized_model"]).__name__ == "GraphDef"
    assert report["requested"]["inputs"] == ["encoder_memory_placeholder", "encoder_memory_length_placeholder"]
    # The seed's tf.train.write_graph line wrote optimized.pb: it reloads and reproduces the original graph.
    optimized = tuner.load_optimized(tmp_path / "optimized.pb")
    assert type(optimized).__name__ == "GraphDef"
    outputs = ["score", "seq_id"]
    got = run_graph(optimized, ns["test_data"], outputs)
    want = run_graph(ns["graph_def"], ns["test_data"], outputs)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(got[1], want[1])
    return ns


@pytest.mark.slow
def test_seed_tf_dynamic_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ns = check_tf_seed_example("tf_dynamic.py", tmp_path, monkeypatch)
    assert ns["report"]["requested"]["config"]["enable_static_shape_compilation_opt"] is False


@pytest.mark.slow
def test_seed_tf_static_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tuner.search.study import load_study

    ns = check_tf_seed_example("tf_static.py", tmp_path, monkeypatch)
    assert ns["report"]["requested"]["config"]["enable_static_shape_compilation_opt"] is True
    # Only static-shape candidates were searched (Blade's enable_static_shape_compilation_opt).
    study = load_study(ns["opt_spec"].study, ns["opt_spec"].storage)
    modes = {t.user_attrs["candidate"]["shape_mode"] for t in study.trials if "candidate" in t.user_attrs}
    assert modes == {"static"}


def test_native_model_only_where_the_saved_model_runs_as_measured() -> None:
    """TorchScript: not with optimize_for_inference or a fuser the process does not run by default."""
    from backends import get_backend
    from tuner.workloads.loading import make_workload

    workload = make_workload(tiny_model(), tiny_samples(), "cpu")
    backend = get_backend("torchscript")

    def native(**options: Any) -> Any:
        candidate = Candidate("torchscript", options={f"torchscript/{k}": v for k, v in options.items()})
        built = backend.build(workload, candidate).built
        assert built is not None
        return backend.native_model(built, workload, candidate)

    assert isinstance(native(), torch.jit.ScriptModule)
    assert isinstance(native(freeze=True, fuser="none"), torch.jit.ScriptModule)  # CPU fuses nothing by default
    assert native(optimize_for_inference=True) is None
    assert native(fuser="fuser0") is None  # the legacy fuser fuses on the CPU; a default process does not


def test_tf_graph_native_model_is_the_rewritten_graphdef_with_default_rewriters() -> None:
    pytest.importorskip("tensorflow")
    from backends import get_backend
    from tests.backends_tests.tf_helpers import asr_workload

    workload = asr_workload()
    backend = get_backend("tf_graph")
    for options, native in (({}, True), ({"tf_graph/remapping": "off"}, False)):
        candidate = Candidate("tf_graph", options=options)
        built = backend.build(workload, candidate).built
        assert built is not None
        model = backend.native_model(built, workload, candidate)
        assert (type(model).__name__ == "GraphDef") if native else model is None
