"""``tuner.optimize``: the seed's ``blade.optimize(...)`` call, over the tuning study.

    optimized_model, opt_spec, report = tuner.optimize(
        model, 'o1', device_type='gpu', config=tuner.Config(),
        inputs=[...], outputs=[...],          # TF GraphDefs only
        test_data=[sample, ...])
    tuner.save(optimized_model, path)         # any returned model; tuner.load_optimized(path) reads it

It runs a short study (:class:`tuner.api.config.Config` bounds it) through
:func:`tuner.api.tuning.run`, the same loop as ``tune``, which writes the overall winner to
``<output_dir>/<study>/best/``. The returned model is of the kind given (a GraphDef for a
GraphDef, a ScriptModule for a ScriptModule, an ``nn.Module`` for an ``nn.Module``), so that the
user's own save call works: the fastest correct candidate that a backend can give as such a model
(``Backend.native_model``). When a faster candidate exists that cannot (an AOTInductor package, a
TVM library), the report says which, its speedup and its artifact folder; ``Config(output="any")``
returns that one instead, loaded.

``device_type='gpu'`` on a machine without a CUDA GPU does not fail: the search runs on the CPU,
and the returned ``report`` (``warnings``, ``device``) and a ``RuntimeWarning`` say so, so that the
seed's examples, which pass ``'gpu'`` literally, run on CPU-only machines too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from backends import backend_class, get_backend
from tuner.api.config import Config
from tuner.api.preflight import preflight
from tuner.api.progress import RichProgress
from tuner.api.saving import remember
from tuner.api.tuning import run
from tuner.core.devices import cuda_available
from tuner.core.errors import UserError, error_line
from tuner.core.files import write_dir_atomically, write_json
from tuner.core.kinds import GRAPHDEF, NN_MODULE, OTHER, TORCHSCRIPT, fits, model_kind
from tuner.core.records import Built, Candidate
from tuner.core.settings import TuneSettings
from tuner.core.workload import Workload
from tuner.export.artifact import MANIFEST, export_artifact, load_optimized
from tuner.export.finalists import distinct_picks
from tuner.export.finalize import TuneResult
from tuner.export.report import EFFECTIVE_SPEEDUP, optimization_entry
from tuner.export.sidebyside import run_side_by_side
from tuner.export.verify import verify_in_subprocess
from tuner.runtime import switches
from tuner.script_op import script_module
from tuner.search.study import load_study
from tuner.workloads.loading import make_workload

#: What a returned loaded artifact is called in ``opt_spec.kind``.
LOADED = "loaded artifact"

#: Packages a backend's artifact needs at run time besides ``tuner`` (the default: its framework).
RUNTIME: dict[str, tuple[str, ...]] = {
    "tvm": ("tvm", "torch"),
    "onnxruntime": ("onnxruntime",),
}


@dataclasses.dataclass(frozen=True)
class OptSpec:
    """How to run what ``optimize`` returned (the seed's ``opt_spec``).

    Attributes:
        kind: What was returned: ``graphdef``, ``torchscript``, ``nn.Module`` or ``loaded artifact``.
        backend: The backend of the returned candidate (``eager``: the model as it was).
        shape_mode: ``static`` (one program per input shape) or ``dynamic``.
        precision: ``fp32``, ``tf32``, ``fp16`` or ``bf16``.
        options: The backend's options, ``{"<backend>/<option>": value}``.
        device: Where it was measured and is meant to run (``cpu`` or ``gpu``).
        level: ``o1`` or ``o2``.
        trial: The study trial it comes from (None: no trial succeeded, the model is unchanged).
        runtime: Packages it needs at run time.
        how_to_run: One line on how to call, save and load it.
        artifact_dir: Its artifact folder (``tuner.load_optimized`` reads it), None if none was written.
        study: The Optuna study name.
        storage: The Optuna storage URL.
    """

    kind: str
    backend: str
    shape_mode: str
    precision: str
    options: dict[str, Any]
    device: str
    level: str
    trial: int | None
    runtime: tuple[str, ...]
    how_to_run: str
    artifact_dir: str | None
    study: str
    storage: str

    def to_dict(self) -> dict[str, Any]:
        """The spec as a JSON-ready dict."""
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)


@dataclasses.dataclass(frozen=True)
class _Pick:
    """A candidate of the study rebuilt as a model of the user's kind."""

    trial: optuna.trial.FrozenTrial
    candidate: Candidate
    built: Built
    model: Any


@dataclasses.dataclass(frozen=True)
class _Call:
    """One ``optimize`` call: what was asked, and the run's settings and workload."""

    model: Any
    kind: str
    workload: Workload
    settings: TuneSettings
    config: Config
    inputs: Sequence[str] | None
    outputs: Sequence[str] | None

    def spec(self, returned_kind: str, candidate: Candidate | None, trial: int | None,
             artifact: Path | None) -> OptSpec:
        """The ``opt_spec`` of a returned model (the model as given when ``candidate`` is None)."""
        cand = candidate or Candidate("eager")
        runtime = _runtime(cand.backend, self.workload.framework)
        if returned_kind == TORCHSCRIPT and cand.backend != "eager":
            runtime = ("tuner", *runtime)
        return OptSpec(kind=returned_kind, backend=cand.backend, shape_mode=cand.shape_mode,
                       precision=cand.precision, options=dict(cand.options), device=self.workload.device,
                       level=self.settings.level, trial=trial, runtime=runtime,
                       how_to_run=_how_to_run(returned_kind, artifact, self.inputs, self.outputs),
                       artifact_dir=None if artifact is None else str(artifact), study=self.settings.study_name,
                       storage=self.settings.storage_url)


def _check_level(level: Any) -> str:
    if level not in ("o1", "o2"):
        raise UserError(f"unknown optimization level {level!r}",
                        "pass 'o1' (fp32 results) or 'o2' (TF32/fp16/bf16 within a looser tolerance)")
    return str(level)


def _resolve_device(device_type: Any, notes: list[str]) -> tuple[str, dict[str, Any]]:
    """``cpu``/``gpu``/``auto`` to the device used; ``gpu`` without a GPU falls back to the CPU, noted."""
    if device_type not in ("cpu", "gpu", "auto"):
        raise UserError(f"unknown device_type {device_type!r}", "pass device_type='gpu', 'cpu' or 'auto'")
    if device_type == "auto":
        used = "gpu" if cuda_available() else "cpu"
    elif device_type == "gpu" and not cuda_available():
        used = "cpu"
        note = ("device_type='gpu' was asked for but torch sees no CUDA GPU here: the search ran on the CPU, "
                "so the returned model and every figure are for the CPU; run on a GPU machine for GPU results")
        notes.append(note)
        warnings.warn(note, RuntimeWarning, stacklevel=3)
    else:
        used = str(device_type)
    info: dict[str, Any] = {"requested": device_type, "used": used}
    if used != device_type and device_type != "auto":
        info["fallback"] = "no CUDA GPU visible to torch"
    return used, info


def _model_name(model: Any, kind: str) -> str:
    if kind == GRAPHDEF:
        return "graph"
    name = str(getattr(model, "original_name", "") or type(model).__name__)
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:40] or "model"


def _study_name(model: Any, workload: Workload, kind: str, level: str, device: str, config: Config) -> str:
    """``opt-<model>-<digest>``: the same model and search settings continue the same study."""
    if config.study_name is not None:
        return config.study_name
    key = [workload.fingerprint, kind, level, device, config.enable_static_shape_compilation_opt,
           config.backends, config.seed]
    if config.accuracy is not None:
        key.append(config.accuracy)  # appended only when given: the default keeps earlier calls' names
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:8]
    return f"opt-{_model_name(model, kind)}-{digest}"


def _check_test_data(test_data: Any) -> None:
    if test_data is None or (isinstance(test_data, (list, tuple)) and not test_data):
        raise UserError("tuner.optimize needs test_data: the inputs the model will really see",
                        "pass test_data=[sample, ...] (PyTorch: input tuples; TF: feed dicts)")
    if not isinstance(test_data, (list, tuple)):
        raise UserError(f"test_data is a {type(test_data).__name__}, not a list of samples",
                        "pass test_data=[sample, ...], e.g. test_data=[dummy] for one sample")


def _make_workload(model: Any, test_data: Any, device: str, kind: str, inputs: Sequence[str] | None,
                   outputs: Sequence[str] | None) -> Workload:
    _check_test_data(test_data)
    extra: dict[str, Any] = {}
    if inputs is not None or outputs is not None:
        if kind in (TORCHSCRIPT, NN_MODULE):
            raise UserError("inputs/outputs name the tensors of a TF graph; a PyTorch model takes its inputs "
                            "positionally", "leave inputs and outputs out for PyTorch models")
        extra = {"inputs": list(inputs) if inputs is not None else None,
                 "outputs": list(outputs) if outputs is not None else None}
    return make_workload(model, test_data, device, name=_model_name(model, kind), **extra)


def _accepts(backend: str, kind: str) -> bool:
    kinds = backend_class(backend).native_kinds
    return kind in kinds or (kind == OTHER and NN_MODULE in kinds)


def _pick_native(study: optuna.Study, call: _Call) -> _Pick | None:
    """The fastest complete trial whose candidate a backend can give as a model of the user's kind."""
    trials = {t.number: t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    for pick in distinct_picks(study, list(trials.values())):
        if not _accepts(pick.candidate.backend, call.kind) or switches.any_on(pick.candidate.options,
                                                                              pick.candidate.precision):
            # A returned model cannot carry what tuner.runtime.switches wraps around each call
            # (cuDNN's benchmark mode, TF32, CUDA-graph replay).
            continue
        backend = get_backend(pick.candidate.backend, cache_dir=call.settings.cache_dir)
        result = backend.build(call.workload, pick.candidate)
        if result.built is None:
            continue
        model = backend.native_model(result.built, call.workload, pick.candidate)
        if model is not None and fits(model, call.kind):
            return _Pick(trials[pick.trial], pick.candidate, result.built, model)
    return None


def _export_returned(pick: _Pick, call: _Call) -> tuple[Path | None, dict[str, Any]]:
    """Write the returned candidate's artifact to ``<output>/<study>/returned/`` and check it."""
    settings = call.settings
    target = settings.out / settings.study_name / "returned"
    info: dict[str, Any] = {"dir": str(target)}
    config = settings.measure_config()

    def fill(tmp: Path) -> None:
        export_artifact(pick.built, call.workload, pick.candidate, tmp, settings.cache_dir)
        info.update(verify_in_subprocess(tmp, call.workload, settings.rule, config.warmup, config.repeats))
        write_json(tmp / "returned.json", {**pick.candidate.to_dict(), "trial": pick.trial.number})

    try:
        write_dir_atomically(target, fill)
    except Exception as e:  # noqa: BLE001 - the model is still returned; the report says why there is no artifact
        return None, {"error": f"export failed: {error_line(e)}"}
    return target, info


def _runtime(backend: str, framework: str) -> tuple[str, ...]:
    return RUNTIME.get(backend, ("tensorflow",) if framework == "tf" else ("torch",))


def _how_to_run(kind: str, artifact_dir: Path | None, inputs: Sequence[str] | None,
                outputs: Sequence[str] | None) -> str:
    if kind == GRAPHDEF:
        return (f"tf.compat.v1.import_graph_def(model, name='') into a graph, then session.run({list(outputs or [])}, "
                f"feed_dict={{{', '.join(repr(n) for n in inputs or [])}: ...}}); save with tuner.save or "
                "tf.train.write_graph")
    if kind == TORCHSCRIPT:
        return ("model(*inputs); save with torch.jit.save (or tuner.save); load with torch.jit.load after "
                "import tuner (it registers the operator that runs the optimized artifact)")
    if kind == NN_MODULE:
        return "model(*inputs); tuner.save(model, dir) writes its artifact folder, tuner.load_optimized(dir) reads it"
    return f"model(*inputs); tuner.save(model, dir) copies {artifact_dir}, tuner.load_optimized(dir) loads it"


def _side_by_side_entry(pick: _Pick, call: _Call) -> dict[str, Any]:
    """The returned candidate's Blade entry, measured side by side with eager (as the winner's is)."""
    samples = len(call.workload.samples)
    rows = run_side_by_side(call.workload, {"eager": Candidate("eager"), "returned": pick.candidate},
                            call.settings.measure_config(), rounds=2, rule=call.settings.rule,
                            cache_dir=call.settings.cache_dir)
    eager, returned = rows
    return optimization_entry(pick.candidate.backend,
                              eager.total_ms / 1e3 / samples if eager.ok and eager.total_ms else None,
                              returned.total_ms / 1e3 / samples if returned.ok and returned.total_ms else None,
                              failed=not returned.ok)


def optimize(
    model: Any,
    level: str = "o1",
    device_type: str = "auto",
    config: Config | None = None,
    inputs: Sequence[str] | None = None,
    outputs: Sequence[str] | None = None,
    test_data: Sequence[Any] | None = None,
    verbose: bool = False,
) -> tuple[Any, OptSpec, dict[str, Any]]:
    """Search how to compile ``model`` for ``test_data`` and return it optimized (``blade.optimize``).

    Args:
        model: A TF ``GraphDef``, a TorchScript module, an ``nn.Module`` (or what ``tune`` takes).
        level: ``o1`` (fp32 results) or ``o2`` (TF32/fp16/bf16 within a looser, stated tolerance).
        device_type: ``gpu``, ``cpu`` or ``auto``. ``gpu`` without a CUDA GPU runs on the CPU,
            with a ``RuntimeWarning`` and a note in ``report["warnings"]``.
        config: What to search (:class:`tuner.Config`); ``Config()`` when None.
        inputs: TF only: names of the graph's input tensors (the keys of the feed dicts).
        outputs: TF only: names of the tensors to fetch.
        test_data: The samples the model will really see: input tuples (PyTorch) or feed dicts (TF).
        verbose: Show the search's progress on stderr.

    Returns:
        ``(optimized_model, opt_spec, report)``: the model (of the kind given, unless
        ``Config(output="any")``), an :class:`OptSpec` saying how to run it, and the report
        (Blade's ``optimizations`` entries, the search summary, ``optimize``: what was returned
        and any faster candidate, ``device`` and ``warnings``).

    Raises:
        UserError: For input that cannot be used (unknown level, device or config field, test
            data that does not fit the model, ...), before anything is written.
    """
    config = Config() if config is None else config
    if not isinstance(config, Config):
        raise UserError(f"config is a {type(config).__name__}, not a tuner.Config",
                        "pass config=tuner.Config(...) (or leave it out)")
    level = _check_level(level)
    notes: list[str] = []
    device, device_info = _resolve_device(device_type, notes)
    kind = model_kind(model)
    _check_test_data(test_data)
    checked = preflight(TuneSettings(
        study_name="placeholder", output_dir=config.output_dir, storage=config.storage,
        mlflow_uri=config.mlflow_uri, trials=config.trials, timeout_s=config.time_budget_s,
        trial_timeout_s=config.trial_timeout_s, seed=config.seed, level=level, accuracy=config.accuracy,
        backends=config.backends,
        static_only=config.enable_static_shape_compilation_opt, repeats=config.repeats), config.track)
    with checked.budget.phase("load"):
        workload = _make_workload(model, test_data, device, kind, inputs, outputs)
    checked = checked.named(_study_name(model, workload, kind, level, device, config))
    result = run(workload, checked, progress=RichProgress() if verbose else None)
    # The study's rule, which a continued study keeps, judges the returned model too.
    settings = checked.settings.model_copy(update={"accuracy": result.report["accuracy_rule"]})
    call = _Call(model, kind, workload, settings, config, inputs, outputs)
    optimized, spec, section = _choose(call, load_study(call.settings.study_name, call.settings.storage_url),
                                       result, notes)
    report = {**result.report, "optimizations": _returned_first(result.report["optimizations"], section),
              "optimize": section, "device": device_info, "warnings": notes,
              "requested": {"level": level, "device_type": device_type, "config": config.summary(),
                            "inputs": None if inputs is None else list(inputs),
                            "outputs": None if outputs is None else list(outputs)}}
    return optimized, spec, report


def _returned_first(entries: list[dict[str, Any]], section: dict[str, Any]) -> list[dict[str, Any]]:
    """Blade's entries with the one of the model that was returned first (the seed's users read that one)."""
    returned = section["returned"]
    name = returned.get("backend", "")
    first: dict[str, Any] | None
    if name.startswith("none"):
        first = {"name": "none", "status": "ineffective", "speedup": "1.00", "pre_run": "-", "post_run": "-"}
    else:
        first = next((e for e in entries if e["name"] == name), None) or {
            "name": name, "status": "effective" if _speedup(returned) >= EFFECTIVE_SPEEDUP else "ineffective",
            "speedup": returned.get("speedup", "-"), "pre_run": returned.get("pre_run", "-"),
            "post_run": returned.get("post_run", "-")}
    return [first, *(e for e in entries if e is not first and e["name"] != first["name"])]


def _speedup(entry: dict[str, Any]) -> float:
    try:
        return float(entry.get("speedup", 0.0))
    except (TypeError, ValueError):
        return 0.0


def _fastest_entry(result: TuneResult, best: Candidate, best_dir: Path | None) -> dict[str, Any]:
    """The report's ``fastest``: the overall winner, with its Blade figures measured side by side with eager."""
    assert result.best_config is not None
    entry: dict[str, Any] = next((e for e in result.report["optimizations"] if e["name"] == best.backend), {})
    if not entry and result.report.get("speedup") is not None:
        # Eager won: Blade lists no entry for it; its speedup is eager against itself, side by side.
        entry = {"speedup": f"{result.report['speedup']:.2f}"}
    return {"backend": best.backend, "description": best.describe(), "trial": result.best_config["trial"],
            "speedup": entry.get("speedup", "-"), "pre_run": entry.get("pre_run", "-"),
            "post_run": entry.get("post_run", "-"), "artifact_dir": None if best_dir is None else str(best_dir)}


def _choose(call: _Call, study: optuna.Study, result: TuneResult,
            notes: list[str]) -> tuple[Any, OptSpec, dict[str, Any]]:
    """Pick what to return, write its artifact, and say what was returned and what is faster."""
    policy = call.config.output
    if result.best_config is None:
        why = (result.report.get("artifact") or {}).get("error") or "no candidate succeeded (see search.failures)"
        notes.append(f"the model is returned unchanged: {why}")
        section: dict[str, Any] = {"output_policy": policy, "fastest": None,
                                   "returned": {"backend": "none (the model as given)", "kind": call.kind}}
        return call.model, call.spec(call.kind, None, None, None), section
    best_dir = result.artifact_dir if result.artifact_dir and (result.artifact_dir / MANIFEST).is_file() else None
    best = Candidate.from_dict(result.best_config)
    fastest = _fastest_entry(result, best, best_dir)
    if call.kind == TORCHSCRIPT and best_dir is not None:
        return _carried(call, best, fastest, best_dir)
    pick = _pick_native(study, call)
    if pick is not None and pick.candidate.key() == best.key():
        # The overall winner is itself of the user's kind: its artifact is best/.
        if best_dir is not None and call.kind not in (GRAPHDEF, TORCHSCRIPT):
            remember(pick.model, best_dir)
        section = {"output_policy": policy, "returned": {**fastest, "kind": call.kind, "is_fastest": True},
                   "fastest": fastest}
        return pick.model, call.spec(call.kind, pick.candidate, pick.trial.number, best_dir), section
    if policy == "any" and best_dir is not None:
        loaded = load_optimized(best_dir)
        remember(loaded, best_dir)
        section = {"output_policy": "any", "returned": {**fastest, "kind": LOADED, "is_fastest": True},
                   "fastest": fastest}
        return loaded, call.spec(LOADED, best, fastest["trial"], best_dir), section
    if policy == "any":
        notes.append(f"the fastest candidate ({best.describe()}) has no usable artifact "
                     f"({(result.report.get('artifact') or {}).get('error')}); returned the fastest of the kind given")
    if pick is None:
        return _unchanged(call, best, fastest, notes)
    return _slower_native(call, pick, best, fastest, notes)


def _carried(call: _Call, best: Candidate, fastest: dict[str, Any],
             best_dir: Path) -> tuple[Any, OptSpec, dict[str, Any]]:
    """A ScriptModule that runs the winner, whatever its backend (:mod:`tuner.script_op`).

    Where the winner is the model itself (eager, in fp32, with no per-call switch), the model is
    returned as it was: it is the winner.
    """
    returned: dict[str, Any] = {**fastest, "kind": call.kind, "is_fastest": True}
    section = {"output_policy": call.config.output, "fastest": fastest, "returned": returned}
    if best.backend == "eager" and best.precision == "fp32" and not switches.any_on(best.options, best.precision):
        returned["carrier"] = "the model as given (eager won)"
        return call.model, call.spec(call.kind, best, fastest["trial"], best_dir), section
    example = call.workload.samples[call.workload.example_index()]
    module = script_module(best_dir, example, call.workload.output_spec)
    returned["carrier"] = "torch.ops.tuner.run_artifact, the artifact inside the module (import tuner to load it)"
    return module, call.spec(call.kind, best, fastest["trial"], best_dir), section


def _unchanged(call: _Call, best: Candidate, fastest: dict[str, Any],
               notes: list[str]) -> tuple[Any, OptSpec, dict[str, Any]]:
    """No candidate can be of the user's kind: the model comes back as it was; the note says where the fastest is."""
    note = (f"no searched candidate can be given as a {call.kind}: the model is returned unchanged; the fastest "
            f"candidate, {best.backend} ({best.describe()}, speedup {fastest['speedup']}), is in "
            f"{fastest['artifact_dir']} (tuner.load_optimized loads it; Config(output='any') returns it)")
    notes.append(note)
    section = {"output_policy": call.config.output, "returned": {"backend": "none (the model as given)",
                                                                 "kind": call.kind, "is_fastest": False},
               "fastest": fastest, "note": note}
    return call.model, call.spec(call.kind, None, None, None), section


def _slower_native(call: _Call, pick: _Pick, best: Candidate, fastest: dict[str, Any],
                   notes: list[str]) -> tuple[Any, OptSpec, dict[str, Any]]:
    """Return the fastest candidate of the user's kind, measured against eager; the note names the faster one."""
    artifact, artifact_info = _export_returned(pick, call)
    if artifact is not None and call.kind not in (GRAPHDEF, TORCHSCRIPT):
        remember(pick.model, artifact)
    entry = _side_by_side_entry(pick, call)
    note = (f"returned the fastest candidate that is a {call.kind}: {pick.candidate.describe()} (speedup "
            f"{entry['speedup']}); a faster one exists that is not: {best.describe()} (speedup {fastest['speedup']}), "
            f"its artifact in {fastest['artifact_dir']} (tuner.load_optimized loads it; Config(output='any') "
            "returns it)")
    notes.append(note)
    section = {"output_policy": call.config.output,
               "returned": {"backend": pick.candidate.backend, "description": pick.candidate.describe(),
                            "trial": pick.trial.number, "kind": call.kind, "is_fastest": False, **entry,
                            "artifact_dir": None if artifact is None else str(artifact), "artifact": artifact_info},
               "fastest": fastest, "note": note}
    return pick.model, call.spec(call.kind, pick.candidate, pick.trial.number, artifact), section


__all__ = ["OptSpec", "optimize"]
