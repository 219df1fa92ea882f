"""``tuner.optimize``: the seed's ``blade.optimize(...)`` call, over the tuning study.

(This module is ``optimize_api`` because ``tuner.optimize`` is the function.)

    optimized_model, opt_spec, report = tuner.optimize(
        model, 'o1', device_type='gpu', config=tuner.Config(),
        inputs=[...], outputs=[...],          # TF GraphDefs only
        test_data=[sample, ...])
    tuner.save(optimized_model, path)         # any returned model; tuner.load_optimized(path) reads it

It runs a short study (:class:`tuner.config.Config` bounds it) through :func:`tuner.api.run`, the
same loop as ``tune``, which writes the overall winner to ``<output_dir>/<study>/best/``. The
returned model is of the kind given (a GraphDef for a GraphDef, a ScriptModule for a ScriptModule,
an ``nn.Module`` for an ``nn.Module``), so that the user's own save call works: the fastest
correct candidate that a backend can give as such a model (``Backend.native_model``). When a
faster candidate exists that cannot (an AOTInductor package, a TVM library), the report says which,
its speedup and its artifact folder; ``Config(output="any")`` returns that one instead, loaded.

``device_type='gpu'`` on a machine without a CUDA GPU does not fail: the search runs on the CPU,
and the returned ``report`` (``warnings``, ``device``) and a ``RuntimeWarning`` say so, so that the
seed's examples, which pass ``'gpu'`` literally, run on CPU-only machines too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from backends import backend_class, error_line, get_backend
from tuner import switches
from tuner.api import run
from tuner.artifact import MANIFEST, load_optimized, write_dir_atomically, write_json
from tuner.config import Config
from tuner.devices import cuda_available
from tuner.errors import UserError
from tuner.finalists import distinct_picks
from tuner.finalize import TuneResult
from tuner.kinds import GRAPHDEF, NN_MODULE, OTHER, TORCHSCRIPT, fits, model_kind
from tuner.progress import RichProgress
from tuner.records import Built, Candidate
from tuner.report import optimization_entry
from tuner.settings import TuneSettings
from tuner.sidebyside import side_by_side
from tuner.study import load_study
from tuner.verify import verify_in_subprocess
from tuner.workload import Workload, make_workload

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


# Artifact folders of the models optimize returned, for ``save``: id -> (weak or strong ref, dir).
_ARTIFACTS: dict[int, tuple[Callable[[], Any], Path]] = {}


def _remember(model: Any, directory: Path) -> None:
    """Note where ``model``'s artifact folder is, for :func:`save`."""
    key = id(model)
    try:
        ref: Callable[[], Any] = weakref.ref(model)
        weakref.finalize(model, _ARTIFACTS.pop, key, None)
    except TypeError:
        # Not weak-referenceable (a protobuf, say): keep it alive so that its id stays its own.
        def ref() -> Any:
            return model
    _ARTIFACTS[key] = (ref, directory)


def _artifact_of(model: Any) -> Path | None:
    entry = _ARTIFACTS.get(id(model))
    if entry is None or entry[0]() is not model:
        return None
    return entry[1]


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
    key = json.dumps([workload.fingerprint, kind, level, device, config.enable_static_shape_compilation_opt,
                      config.backends, config.seed])
    return f"opt-{_model_name(model, kind)}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def _make_workload(model: Any, test_data: Any, device: str, kind: str, inputs: Sequence[str] | None,
                   outputs: Sequence[str] | None) -> Workload:
    if test_data is None or (isinstance(test_data, (list, tuple)) and not test_data):
        raise UserError("tuner.optimize needs test_data: the inputs the model will really see",
                        "pass test_data=[sample, ...] (PyTorch: input tuples; TF: feed dicts)")
    if not isinstance(test_data, (list, tuple)):
        raise UserError(f"test_data is a {type(test_data).__name__}, not a list of samples",
                        "pass test_data=[sample, ...], e.g. test_data=[dummy] for one sample")
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


def _pick_native(study: optuna.Study, workload: Workload, settings: TuneSettings, kind: str) -> _Pick | None:
    """The fastest complete trial whose candidate a backend can give as a model of ``kind``."""
    trials = {t.number: t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    for pick in distinct_picks(study, list(trials.values())):
        if not _accepts(pick.candidate.backend, kind) or switches.any_on(pick.candidate.options,
                                                                         pick.candidate.precision):
            # A returned model cannot carry what tuner.switches wraps around each call (cuDNN's
            # benchmark mode, TF32, CUDA-graph replay).
            continue
        backend = get_backend(pick.candidate.backend, cache_dir=settings.cache_dir)
        result = backend.build(workload, pick.candidate)
        if result.built is None:
            continue
        model = backend.native_model(result.built, workload, pick.candidate)
        if model is not None and fits(model, kind):
            return _Pick(trials[pick.trial], pick.candidate, result.built, model)
    return None


def _export_returned(pick: _Pick, workload: Workload, settings: TuneSettings) -> tuple[Path | None, dict[str, Any]]:
    """Write the returned candidate's artifact to ``<output>/<study>/returned/`` and check it."""
    target = settings.out / settings.study_name / "returned"
    backend = get_backend(pick.candidate.backend, cache_dir=settings.cache_dir)
    info: dict[str, Any] = {"dir": str(target)}
    config = settings.measure_config()

    def fill(tmp: Path) -> None:
        meta = backend.export(pick.built, workload, pick.candidate, tmp)
        write_json(tmp / MANIFEST, {"backend": pick.candidate.backend, "backend_module": type(backend).__module__,
                                    "device": workload.device,
                                    "candidate": pick.candidate.to_dict(), "meta": meta})
        info.update(verify_in_subprocess(tmp, workload, settings.level, config.warmup, config.repeats))
        write_json(tmp / "returned.json", {**pick.candidate.to_dict(), "trial": pick.trial.number})

    try:
        write_dir_atomically(target, fill)
    except Exception as e:  # noqa: BLE001 - the model is still returned; the report says why there is no artifact
        return None, {"error": f"export failed: {error_line(e)}"}
    return target, info


def _runtime(backend: str, framework: str) -> tuple[str, ...]:
    return RUNTIME.get(backend, ("tensorflow",) if framework == "tf" else ("torch",))


def _how_to_run(kind: str, artifact_dir: Path | None, workload: Workload, inputs: Sequence[str] | None,
                outputs: Sequence[str] | None) -> str:
    if kind == GRAPHDEF:
        return (f"tf.compat.v1.import_graph_def(model, name='') into a graph, then session.run({list(outputs or [])}, "
                f"feed_dict={{{', '.join(repr(n) for n in inputs or [])}: ...}}); save with tuner.save or "
                "tf.train.write_graph")
    if kind == TORCHSCRIPT:
        return "model(*inputs); save with torch.jit.save (or tuner.save), load with torch.jit.load"
    if kind == NN_MODULE:
        return "model(*inputs); tuner.save(model, dir) writes its artifact folder, tuner.load_optimized(dir) reads it"
    return f"model(*inputs); tuner.save(model, dir) copies {artifact_dir}, tuner.load_optimized(dir) loads it"


def _side_by_side_entry(pick: _Pick, workload: Workload, settings: TuneSettings) -> dict[str, Any]:
    """The returned candidate's Blade entry, measured side by side with eager (as the winner's is)."""
    samples = len(workload.samples)
    backend = get_backend(pick.candidate.backend, cache_dir=settings.cache_dir)
    eager = get_backend("eager").build(workload, Candidate("eager")).built
    if eager is None:
        return optimization_entry(pick.candidate.backend, None, None, failed=True)
    m_eager, m_pick = side_by_side(eager, pick.built, backend.measure, workload, settings.measure_config())
    return optimization_entry(pick.candidate.backend, m_eager.total_s / samples if m_eager.ok else None,
                              m_pick.total_s / samples if m_pick.ok else None, failed=not m_pick.ok)


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
    workload = _make_workload(model, test_data, device, kind, inputs, outputs)
    settings = TuneSettings(
        study_name=_study_name(model, workload, kind, level, device, config), output_dir=config.output_dir,
        storage=config.storage, mlflow_uri=config.mlflow_uri, trials=config.trials, timeout_s=config.time_budget_s,
        trial_timeout_s=config.trial_timeout_s, seed=config.seed, level=level, backends=config.backends,
        static_only=config.enable_static_shape_compilation_opt, repeats=config.repeats)
    result = run(workload, settings, device=device, track=config.track,
                 progress=RichProgress() if verbose else None)
    study = load_study(settings.study_name, settings.storage_url)
    optimized, spec, section = _choose(model, kind, workload, settings, study, result, config, notes,
                                       inputs, outputs)
    report = {**result.report, "optimize": section, "device": device_info, "warnings": notes,
              "requested": {"level": level, "device_type": device_type, "config": config.summary(),
                            "inputs": None if inputs is None else list(inputs),
                            "outputs": None if outputs is None else list(outputs)}}
    return optimized, spec, report


def _choose(model: Any, kind: str, workload: Workload, settings: TuneSettings, study: optuna.Study,
            result: TuneResult, config: Config, notes: list[str], inputs: Sequence[str] | None,
            outputs: Sequence[str] | None) -> tuple[Any, OptSpec, dict[str, Any]]:
    """Pick what to return, write its artifact, and say what was returned and what is faster."""
    best_dir = result.artifact_dir if result.artifact_dir and (result.artifact_dir / MANIFEST).is_file() else None

    def spec_for(returned_kind: str, candidate: Candidate | None, trial: int | None, artifact: Path | None) -> OptSpec:
        cand = candidate or Candidate("eager")
        return OptSpec(kind=returned_kind, backend=cand.backend, shape_mode=cand.shape_mode,
                       precision=cand.precision, options=dict(cand.options), device=workload.device,
                       level=settings.level, trial=trial, runtime=_runtime(cand.backend, workload.framework),
                       how_to_run=_how_to_run(returned_kind, artifact, workload, inputs, outputs),
                       artifact_dir=None if artifact is None else str(artifact), study=settings.study_name,
                       storage=settings.storage_url)

    section: dict[str, Any]
    if result.best_config is None:
        notes.append("no candidate succeeded: the model is returned unchanged (see search.failures)")
        section = {"output_policy": config.output, "returned": {"backend": "none (the model as given)",
                                                                "kind": kind}, "fastest": None}
        return model, spec_for(kind, None, None, None), section

    best = Candidate.from_dict(result.best_config)
    # The winner's Blade entry (measured side by side with eager at the end of the run) comes first.
    entry: dict[str, Any] = next((e for e in result.report["optimizations"] if e["name"] == best.backend), {})
    if not entry and result.report.get("speedup") is not None:
        # Eager won: Blade lists no entry for it; its speedup is eager against itself, side by side.
        entry = {"speedup": f"{result.report['speedup']:.2f}"}
    fastest: dict[str, Any] = {
        "backend": best.backend, "description": best.describe(), "trial": result.best_config["trial"],
        "speedup": entry.get("speedup", "-"), "pre_run": entry.get("pre_run", "-"),
        "post_run": entry.get("post_run", "-"), "artifact_dir": None if best_dir is None else str(best_dir)}
    pick = _pick_native(study, workload, settings, kind)
    if pick is not None and pick.candidate.key() == best.key():
        # The overall winner is itself of the user's kind: its artifact is best/.
        if best_dir is not None and kind not in (GRAPHDEF, TORCHSCRIPT):
            _remember(pick.model, best_dir)
        section = {"output_policy": config.output, "returned": {**fastest, "kind": kind, "is_fastest": True},
                   "fastest": fastest}
        return pick.model, spec_for(kind, pick.candidate, pick.trial.number, best_dir), section

    if config.output == "any" and best_dir is not None:
        loaded = load_optimized(best_dir)
        _remember(loaded, best_dir)
        section = {"output_policy": "any", "returned": {**fastest, "kind": LOADED, "is_fastest": True},
                   "fastest": fastest}
        return loaded, spec_for(LOADED, best, fastest["trial"], best_dir), section
    if config.output == "any":
        notes.append(f"the fastest candidate ({best.describe()}) has no usable artifact "
                     f"({(result.report.get('artifact') or {}).get('error')}); returned the fastest of the kind given")

    if pick is None:
        note = (f"no searched candidate can be given as a {kind}: the model is returned unchanged; the fastest "
                f"candidate, {best.backend} ({best.describe()}, speedup {fastest['speedup']}), is in "
                f"{fastest['artifact_dir']} (tuner.load_optimized loads it; Config(output='any') returns it)")
        notes.append(note)
        section = {"output_policy": config.output, "returned": {"backend": "none (the model as given)", "kind": kind,
                                                                "is_fastest": False}, "fastest": fastest,
                   "note": note}
        return model, spec_for(kind, None, None, None), section

    artifact, artifact_info = _export_returned(pick, workload, settings)
    if artifact is not None and kind not in (GRAPHDEF, TORCHSCRIPT):
        _remember(pick.model, artifact)
    entry = _side_by_side_entry(pick, workload, settings)
    note = (f"returned the fastest candidate that is a {kind}: {pick.candidate.describe()} (speedup "
            f"{entry['speedup']}); a faster one exists that is not: {best.describe()} (speedup {fastest['speedup']}), "
            f"its artifact in {fastest['artifact_dir']} (tuner.load_optimized loads it; Config(output='any') "
            "returns it)")
    notes.append(note)
    section = {"output_policy": config.output,
               "returned": {"backend": pick.candidate.backend, "description": pick.candidate.describe(),
                            "trial": pick.trial.number, "kind": kind, "is_fastest": False, **entry,
                            "artifact_dir": None if artifact is None else str(artifact), "artifact": artifact_info},
               "fastest": fastest, "note": note}
    return pick.model, spec_for(kind, pick.candidate, pick.trial.number, artifact), section


def save(model: Any, path: str | os.PathLike[str]) -> Path:
    """Save a model that :func:`optimize` returned; :func:`tuner.load_optimized` reads it back.

    A GraphDef is written as a binary ``.pb`` (what ``tf.train.write_graph(..., as_text=False)``
    writes), a ScriptModule with ``torch.jit.save``, and any other returned model (a loaded
    artifact, an ``nn.Module``) as a copy of its artifact folder. Files and folders are written
    under a temporary name and renamed into place.

    Args:
        model: The optimized model.
        path: A file for a GraphDef or ScriptModule, a folder otherwise.

    Returns:
        The path written.

    Raises:
        UserError: When the model was not returned by ``optimize`` and is not a GraphDef or
            ScriptModule, or when the path cannot be written.
    """
    target = Path(path)
    kind = model_kind(model)
    if kind in (GRAPHDEF, TORCHSCRIPT):
        if target.is_dir():
            raise UserError(f"{target} is a folder", "pass a file path to save a GraphDef or a ScriptModule to")
        _write_file_atomically(target, lambda tmp: _save_native(model, kind, tmp))
        return target
    source = _artifact_of(model)
    if source is None:
        raise UserError(f"cannot save this {type(model).__name__}: it was not returned by tuner.optimize "
                        "(or its artifact was not written)",
                        "pass the model tuner.optimize returned, or save it with its framework's own call")
    if target.exists() and not target.is_dir():
        raise UserError(f"{target} is a file", "pass a folder path: this model is saved as its artifact folder")

    def fill(tmp: Path) -> None:
        for item in source.iterdir():
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / item.name)

    write_dir_atomically(target, fill)
    return target


def _save_native(model: Any, kind: str, path: Path) -> None:
    if kind == GRAPHDEF:
        path.write_bytes(model.SerializeToString())
    else:
        import torch

        torch.jit.save(model, str(path))


def _write_file_atomically(target: Path, write: Callable[[Path], None]) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create {target.parent} ({e.strerror})", "pass a writable path") from None
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


__all__ = ["OptSpec", "optimize", "save"]
