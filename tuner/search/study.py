"""The Optuna study: created or continued, checked against the workload, and read back.

One study holds one workload (its fingerprint is kept in the study) and one search space (the
:class:`~search_space.SpaceContext` is kept too: Optuna refuses categoricals whose choices
change). A new study queues each backend's default candidate first. The trial loop that fills
the study is :mod:`tuner.search.loop`.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
import uuid
import warnings
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

import search_space
from backends import available_backends, backend_class, backend_names
from search_space import SpaceContext, build_candidate, modes_for, refused_shares, space_size
from tuner.core.errors import UserError
from tuner.core.places import redact
from tuner.core.records import Candidate
from tuner.core.settings import TuneSettings
from tuner.core.workload import Workload
from tuner.runtime.models import CHANNELS_LAST, PAD_LINEAR
from tuner.runtime.padding import has_unaligned
from tuner.runtime.switches import CUDA_GRAPH, CUDNN_BENCHMARK
from tuner.search.keys import (
    ACCURACY_ATTR,
    EMITTED_ATTR,
    ENQUEUED_ATTR,
    FINGERPRINT_ATTR,
    LEGACY_ACCURACY,
    NAME_ATTR,
    REFUSED_ATTR,
    SETUP_CLAIM_ATTR,
    SOURCE_ATTR,
    SPACE_ATTR,
    SPACE_SIZE_ATTR,
)
from tuner.search.storage import JOURNAL_PREFIX, open_storage

#: The pruner judges a candidate on a short first measurement (step 0); it keeps the fastest 75 %
#: of candidates seen so far, i.e. stops only the clearly slow ones, once 5 trials have finished.
PRUNE_PERCENTILE = 75.0
PRUNE_STARTUP_TRIALS = 5
#: Seconds a process waits for another one that is setting up the same new study.
SETUP_WAIT_S = 60.0


def resolve_backends(requested: tuple[str, ...] | None, workload: Workload, device: str,
                     static_only: bool) -> tuple[str, ...]:
    """The backends a new study searches.

    Args:
        requested: ``--backends``, or None for every available one.
        workload: For its framework.
        device: ``cpu`` or ``gpu``.
        static_only: Drop backends without a static-shape mode.

    Returns:
        The names, in the registry's order.

    Raises:
        UserError: For an unknown or unavailable backend, or an empty selection.
    """
    known = backend_names(include_test_only=True)
    if requested is None:
        chosen = available_backends(workload.framework, device)
    else:
        # Only the requested ones are probed: probing TVM imports it, 4.5 s on the CPU box.
        for name in requested:
            _check_requested(name, known, workload, device)
        chosen = [n for n in known if n in requested]
        for name, reason in refusals(chosen, workload).items():
            raise UserError(f"backend {name!r} cannot take this model ({reason})", "leave it out of --backends")
    ctx_probe = SpaceContext(backends=tuple(chosen), device=device, level="o1", static_only=static_only)
    chosen = [n for n in chosen if modes_for(n, ctx_probe)]
    if not chosen:
        raise UserError("no backend is left to search", "pass --backends with at least one backend that fits "
                        "(static-shape search needs a backend with a static mode, e.g. inductor)")
    return tuple(chosen)


def refusals(names: list[str] | tuple[str, ...], workload: Workload) -> dict[str, str]:
    """The backends among ``names`` that cannot take the workload's model, with why (``Backend.refusal``)."""
    return {name: reason for name in names if (reason := backend_class(name).refusal(workload))}


def _check_requested(name: str, known: list[str], workload: Workload, device: str) -> None:
    """Refuse a ``--backends`` name that is unknown, takes another framework or cannot run here."""
    if name not in known:
        raise UserError(f"unknown backend {name!r}", f"choose from {', '.join(backend_names())}")
    cls = backend_class(name)
    if workload.framework not in cls.frameworks:
        raise UserError(f"backend {name!r} does not take {workload.framework} models",
                        f"choose from {', '.join(available_backends(workload.framework, device))}")
    if not cls.is_available(device):
        raise UserError(f"backend {name!r} is not available on {device} here (its framework is not "
                        "installed or does not support the device)",
                        "install it (pip install -e '.[all]') or leave it out of --backends")


def open_study(settings: TuneSettings, workload: Workload, device: str) -> tuple[optuna.Study, SpaceContext, bool]:
    """Create the study, or continue the one of the same name.

    Args:
        settings: The run's settings (storage, name, seed, level, backends).
        workload: The workload (its fingerprint must match a continued study's).
        device: ``cpu`` or ``gpu``.

    Returns:
        ``(study, context, resumed)``.

    Raises:
        UserError: When the storage cannot be opened, or the existing study belongs to another
            workload or another search space.
    """
    n_workers = settings.worker_count(device)
    if n_workers > 1 and settings.storage_url.startswith(JOURNAL_PREFIX):
        raise UserError(f"--workers {n_workers} cannot share a journal storage in one process: Optuna's "
                        "JournalStorage assumes one trial thread per process (optuna issue 6084; seen here as "
                        "trials told twice)",
                        "use the default SQLite storage or PostgreSQL for --workers, or run several tune processes "
                        "with --workers 1 on the journal file")
    study = optuna.create_study(storage=_open_storage(settings.storage_url), study_name=settings.study_name,
                                sampler=_sampler(settings.seed), pruner=_pruner(), direction="minimize",
                                load_if_exists=True)
    if SPACE_ATTR not in study.user_attrs:
        # A new study, or one another process is setting up right now (several `tune` processes
        # started together on one storage): one of them writes the space, the others wait for it.
        _claim_setup(study)
    if SPACE_ATTR in study.user_attrs:
        return study, _check_continued(study, settings, workload, device), True
    return study, _set_up(study, settings, workload, device), False


def _sampler(seed: int) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():
        # multivariate/group TPE is marked experimental; it models conditional spaces (options
        # that exist only for one backend) far better than independent TPE.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)


def _pruner() -> optuna.pruners.BasePruner:
    return optuna.pruners.PercentilePruner(PRUNE_PERCENTILE, n_startup_trials=PRUNE_STARTUP_TRIALS,
                                           n_warmup_steps=0)


def study_accuracy(study: optuna.Study) -> str:
    """The accuracy rule a study's trials are judged by (a study keeps the one it was created with)."""
    kept = study.user_attrs.get(ACCURACY_ATTR)
    return str(kept) if kept else LEGACY_ACCURACY[space_of(study).level]


def _check_continued(study: optuna.Study, settings: TuneSettings, workload: Workload, device: str) -> SpaceContext:
    """The space of a study being continued, once its workload and settings match this run's.

    Raises:
        UserError: When the study holds another workload or was created with other settings.
    """
    ctx = space_of(study)
    if study.user_attrs.get(FINGERPRINT_ATTR) != workload.fingerprint:
        raise UserError(f"study {settings.study_name!r} holds another workload "
                        f"({study.user_attrs.get(SOURCE_ATTR)})",
                        "pass a new --study-name for this model")
    wanted: dict[str, Any] = dict(device=device, level=settings.level, static_only=settings.static_only,
                                  expensive=settings.expensive)
    have: dict[str, Any] = dict(device=ctx.device, level=ctx.level, static_only=ctx.static_only,
                                expensive=ctx.expensive)
    if settings.backends is not None:
        wanted["backends"], have["backends"] = resolve_backends(
            settings.backends, workload, device, settings.static_only), ctx.backends
    kept = study_accuracy(study)
    if settings.accuracy is not None and settings.accuracy != kept:
        wanted["accuracy"], have["accuracy"] = settings.accuracy, kept
    if wanted != have:
        diff = ", ".join(f"{k} {have[k]} (asked {wanted[k]})" for k in wanted if wanted[k] != have[k])
        raise UserError(f"study {settings.study_name!r} was created with {diff}",
                        "rerun with the study's settings, or pass a new --study-name")
    return ctx


def _set_up(study: optuna.Study, settings: TuneSettings, workload: Workload, device: str) -> SpaceContext:
    """Write a new study's workload and space, and queue each backend's default candidate.

    Backends that cannot take the model, and option values they cannot build for it, are left out
    of the space before the first trial (the study keeps why, for the report).
    """
    backends = resolve_backends(settings.backends, workload, device, settings.static_only)
    refused = refusals(backends, workload)
    backends = tuple(n for n in backends if n not in refused)
    if not backends:
        raise UserError(f"no backend can take this model ({'; '.join(f'{n}: {r}' for n, r in refused.items())})",
                        "pass a model the backends take (an nn.Module, or a TorchScript model torch can convert)")
    ctx = SpaceContext(backends=backends, device=device, level=settings.level, framework=workload.framework,
                       static_only=settings.static_only, expensive=settings.expensive,
                       convolutions=workload.has_convolutions(), cuda_graphs=True, mixed=True, weights=True,
                       inductor_graphs=True, unaligned_linears=has_unaligned(workload.model))
    ctx = dataclasses.replace(ctx, excluded=_excluded(ctx, workload))
    study.set_user_attr(ACCURACY_ATTR, settings.rule.spec)
    study.set_user_attr(REFUSED_ATTR, refused)
    study.set_user_attr(FINGERPRINT_ATTR, workload.fingerprint)
    study.set_user_attr(SOURCE_ATTR, workload.source)
    study.set_user_attr(NAME_ATTR, workload.name)
    study.set_user_attr(SPACE_SIZE_ATTR, space_size(ctx))
    for params in default_params(ctx):
        study.enqueue_trial(params, user_attrs={ENQUEUED_ATTR: "backend default"})
    # Last: the space marks the study as set up for the processes waiting in _claim_setup.
    study.set_user_attr(SPACE_ATTR, ctx.to_dict())
    return ctx


def _excluded(ctx: SpaceContext, workload: Workload) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    """The option values the study's backends cannot build for this model, among those its space offers.

    Only offered values: a refusal of a value the level or device does not search (TVM's fp16 at
    o1, say) would be a line in the output about nothing.
    """
    offered: dict[str, set[Any]] = {}
    for backend in ctx.backends:
        for dim in search_space.dimensions():
            for choice in dim.choices(backend, ctx):
                offered.setdefault(choice.key, set()).update(choice.values)
    refused = [backend_class(name).refused_options(workload) for name in ctx.backends]
    refused.append(refused_shares(workload))
    left_out = {key: tuple(v for v in values if v in offered.get(key, ()))
                for r in refused for key, values in r.items()}
    return tuple(sorted((key, values) for key, values in left_out.items() if values))


def _claim_setup(study: optuna.Study) -> None:
    """Let one of several processes that open the same new study set it up; the others wait.

    Each writes a claim (a study system attribute) if none is there, and reads it back after a
    pause: the process whose claim stands sets the study up, the others wait until its space
    user attribute (written last) appears.

    Raises:
        UserError: When the study is never set up (its creator died half-way).
    """
    me = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    storage, study_id = study._storage, study._study_id
    if storage.get_study_system_attrs(study_id).get(SETUP_CLAIM_ATTR) is None:
        storage.set_study_system_attr(study_id, SETUP_CLAIM_ATTR, me)
    time.sleep(0.2)
    holder = storage.get_study_system_attrs(study_id).get(SETUP_CLAIM_ATTR)
    if holder == me:
        return
    deadline = time.monotonic() + SETUP_WAIT_S
    while SPACE_ATTR not in storage.get_study_user_attrs(study_id):
        if time.monotonic() > deadline:
            raise UserError(f"study {study.study_name!r} was never set up by the process that created it ({holder})",
                            "run tune again (a crashed first process leaves the study empty)")
        time.sleep(0.2)


#: Options of the o2 GPU defaults that differ from each backend's first values: the peers users
#: deploy in half precision (the o2 issue's ``torch.compile(model.half(), mode="reduce-overhead")``).
HALF_DEFAULTS: dict[str, Any] = {"inductor/mode": "reduce-overhead"}
#: Options of one more GPU default per backend, at each level's default precision: the model
#: replayed from CUDA graphs and held as an inference deployment would hold it, where the study
#: offers each choice. Eager and TorchScript are traced and graphed, the launch-free form of those
#: peers: it won where an o2 search reached it (H100, BERT: TorchScript bf16 with CUDA graphs,
#: 9.06x eager), while the best o2 peers of the demo and GPT-2, TorchScript on the half model
#: without graphs, ran at 245x and 35x their floor (experiments/results/2026-12-06-h100-o2.md), and
#: short runs (4-7 trials) did not reach it. Convolution models get channels-last weights with
#: cuDNN's benchmark mode: on an H100 at o2 that made graphed fp16 eager on ResNet-50 2.4x faster
#: (4.63 to 1.94 ms) and graphed fp16 TorchScript the study's best, 1.40 ms against Inductor
#: ``reduce-overhead``'s 2.44 (experiments/results/2026-12-06-h100-o2-real-run4.md). Inductor
#: keeps its default mode and is captured by the same wrapper (:mod:`search_space.cuda_graph`): its
#: fused kernels without the graph trees' bookkeeping, which at o2 the ``reduce-overhead`` default
#: has. Inductor's freezing is left out: with ``reduce-overhead`` it ran BERT at 27.5 ms against
#: 4.7 (same run). Unaligned Linear layers are padded (:mod:`tuner.runtime.padding`): GPT-2's LM
#: head ran an sm75 kernel for a quarter of its graphed fp16 prefill on an H100, in eager and
#: Inductor alike (experiments/results/2026-12-07-h100-gpu-profile.md).
GRAPHED_DEFAULTS: dict[str, Any] = {CUDA_GRAPH: True, "torchscript/method": "trace", CHANNELS_LAST: True,
                                    CUDNN_BENCHMARK: True, PAD_LINEAR: True}


#: The backends whose defaults a GPU study measures first, graphed then plain, right after the model
#: as given (:func:`default_params`). Inductor's compiles are a study's longest trials (30-72 s
#: each on an H100 host shared by two or four studies, for 10-29 s of compile), and its graphed default won
#: each of the 4 o2 studies that reached it in runs 8 and 9 (BERT twice, ViT, ResNet-50), while the
#: other plain defaults lost every one: plain fp16 eager and TorchScript ran BERT, GPT-2, ViT and
#: ResNet-50 at 4-10x each study's best. Measured first, those held one of GPT-2's two workers for
#: 71 s of a 103 s search in run 8; measured after the user's ``torch.compile`` call in run 9,
#: GPT-2's graphed Inductor default still started 35 s in and was cut off at the search's end 37 s
#: later (experiments/results/2026-12-07-h100-levels-run8.md, -run9.md).
GPU_LEAD = ("inductor",)


def default_params(ctx: SpaceContext) -> list[dict[str, Any]]:
    """Each backend's default candidate (every choice at its first value, which is its default).

    A new study measures these first: the peers a user already has (eager, torch.compile and
    TorchScript with their defaults) are then in every study, so the winner is never slower than
    them, and the sampler starts from known-good points instead of, say, a max-autotune compile.
    At o2 on the GPU the defaults run in fp16, as a user deploys there, with Inductor in
    ``reduce-overhead`` mode (:data:`HALF_DEFAULTS`: ``torch.compile(model.half(),
    mode="reduce-overhead")``, what a user types instead of tuning), and eager in fp32 kept as well
    (the model as given).

    On the GPU each backend also gets its graphed default (:data:`GRAPHED_DEFAULTS`) where it
    differs from its plain one. The order there: the model as given, :data:`GPU_LEAD`'s graphed and
    plain defaults (the latter is the user's ``torch.compile`` call), the other graphed defaults,
    then the other plain ones, so that a short run reaches what wins there before what does not.

    Args:
        ctx: The study's context.

    Returns:
        Trial params, one dict per default candidate.
    """
    gpu = ctx.device == "gpu"
    half = ctx.level == "o2" and gpu
    precision = "fp16" if half else None
    plain = [_defaults(backend, ctx, precision, HALF_DEFAULTS if half else {}) for backend in ctx.backends]
    if not gpu:
        return plain
    given = [_defaults("eager", ctx, None, {})] if "eager" in ctx.backends else []
    graphed = [_defaults(backend, ctx, precision, GRAPHED_DEFAULTS) for backend in ctx.backends]
    lead = [p for pair in zip(graphed, plain, strict=True) for p in pair if p["backend"] in GPU_LEAD]
    out = given + lead + [g for g, p in zip(graphed, plain, strict=True) if g != p] + plain
    return [dict(p) for p in dict.fromkeys(tuple(sorted(p.items())) for p in out)]


def _defaults(backend: str, ctx: SpaceContext, precision: str | None, wanted: dict[str, Any]) -> dict[str, Any]:
    """One backend's first values, with ``wanted``'s values (and ``precision``) where the study offers them."""
    wanted = {**wanted, f"{backend}/precision": precision}
    params: dict[str, Any] = {"backend": backend}
    for dim in search_space.dimensions():
        if dim.name == "backend" or not dim.asked(backend, params):
            continue
        for c in dim.offered(backend, ctx):
            if len(c.values) > 1:
                params[c.key] = wanted[c.key] if wanted.get(c.key) in c.values else c.values[0]
    return params


def _open_storage(url: str) -> optuna.storages.BaseStorage:
    """Open the storage, with one-line errors for unusable URLs and missing drivers."""
    try:
        return open_storage(url)
    except ModuleNotFoundError as e:
        raise UserError(f"the storage {redact(url)} needs the Python module {e.name!r}, which is not installed",
                        "pip install 'compile-tuner[postgres]' (or the driver your URL names)") from None
    except Exception as e:  # noqa: BLE001 - any failure here means an unusable URL
        raise UserError(f"cannot open the study storage {redact(url)} "
                        f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''})",
                        "pass a reachable SQLAlchemy URL (or journal:///path) to --storage "
                        "(default: sqlite under --output-dir)") from None


def space_of(study: optuna.Study) -> SpaceContext:
    """The search space a study was created with (what its trials' params decode in)."""
    return SpaceContext.from_dict(study.user_attrs[SPACE_ATTR])


def decode(study: optuna.Study, trial: FrozenTrial) -> Candidate:
    """A finished trial's candidate, decoded from its params with ``FixedTrial``: the code path tuning used."""
    return build_candidate(optuna.trial.FixedTrial(trial.params), space_of(study))


def best_candidate(study: optuna.Study) -> tuple[FrozenTrial, Candidate] | None:
    """The candidate ``tune`` emitted for the study, else its best complete trial's, rebuilt from its params.

    Args:
        study: A study created by this tool.

    Returns:
        ``(trial, candidate)``, or None when no trial completed.
    """
    emitted = study.user_attrs.get(EMITTED_ATTR)
    trial = None
    if emitted is not None:
        trial = next((t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                      if t.number == emitted), None)
    if trial is None:
        try:
            trial = study.best_trial
        except ValueError:
            return None
    return trial, decode(study, trial)


def load_study(study_name: str, storage: str) -> optuna.Study:
    """Load an existing study created by this tool.

    Raises:
        UserError: When the storage cannot be opened or holds no such study.
    """
    try:
        rdb = open_storage(storage)
        names = optuna.study.get_all_study_names(rdb)
    except Exception as e:  # noqa: BLE001
        raise UserError(f"cannot open the study storage {redact(storage)} ({type(e).__name__})",
                        "pass the --storage the study was created with") from None
    if study_name not in names:
        raise UserError(f"no study named {study_name!r} in {redact(storage)}",
                        f"pick one of: {', '.join(names) or '(none yet: run tune first)'}")
    study = optuna.load_study(study_name=study_name, storage=rdb)
    if SPACE_ATTR not in study.user_attrs:
        raise UserError(f"study {study_name!r} was not created by tune", "pass the name of a tune study")
    return study


__all__ = ["best_candidate", "decode", "default_params", "load_study", "open_study", "refusals", "resolve_backends",
           "space_of"]
