"""The ``tune`` command line.

::

    tune --trials 200                                   # the built-in demo workload
    tune --model my_pkg.models:make_decoder --test-data batches.pt --trials 200 --device gpu
    tune --model decoder.pt --test-data batches.pt --level o2 --study-name dec
    tune --model frozen.pb --inputs a,b --outputs c,d --test-data test_bc4.npy --test-data more.npy
    tune best --study-name dec                          # the best config as JSON

Errors of the user's own input print one line and exit with code 2; a study that ends with no
successful trial exits with code 1 (no artifact); an interrupted one with 130.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from tuner.core import defaults
from tuner.core.errors import UserError

app = typer.Typer(
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Search how to compile a PyTorch or TensorFlow model (backend, static or dynamic shapes, fusion, "
    "precision) for the test data it will really see; every candidate is measured, checked against the reference "
    "outputs and logged to MLflow; the fastest correct one is written to <output-dir>/<study>/best/ with a report. "
    "With no --model, tunes the built-in demo (a WAP-style attention decoder).",
)


def _split(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    if not names:
        raise UserError("--backends is empty", "name at least one backend, e.g. --backends eager,inductor")
    return names


@app.callback(invoke_without_command=True)
def tune_command(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(
        help="The model: a factory 'module:function' (returns the model, or (model, test_data)), a TorchScript "
             "file, a torch.export .pt2 file, or a TensorFlow frozen GraphDef (.pb) or SavedModel directory. "
             "Default: the built-in demo decoder.")] = None,
    test_data: Annotated[list[str] | None, typer.Option(
        "--test-data", help="Test inputs: a torch.save'd list of input tuples (.pt), or an .npz with arrays "
                            "s<sample>_<input>; for a TF model, .npy/.npz feed dicts {placeholder: array}. "
                            "Repeat for several files. Optional when the factory returns test data.")] = None,
    inputs: Annotated[str | None, typer.Option(
        help="A TF model's input tensors, comma-separated (e.g. encoder_memory_placeholder,"
             "encoder_memory_length_placeholder); a SavedModel's signature arguments.")] = None,
    outputs: Annotated[str | None, typer.Option(
        help="A TF model's output tensors, comma-separated (e.g. score,seq_id).")] = None,
    trials: Annotated[int, typer.Option(help="Finished trials the study should hold; a resumed study only runs "
                                             "the rest. Identical candidates are measured once.")] = defaults.TRIALS,
    device: Annotated[str, typer.Option(help="cpu, gpu, or auto (the GPU when there is one).")] = "auto",
    level: Annotated[str, typer.Option(help="o1: fp32 results (TF32 off, tight tolerance); o2: also TF32/fp16/bf16 "
                                            "judged by --accuracy's rule.")] = defaults.LEVEL,
    accuracy: Annotated[str | None, typer.Option(
        help="How close to the fp32 reference a candidate must be: elementwise:ATOL,RTOL, rel-l2:X (per output "
             "and sample), cosine:X, top1[:X] (argmax of the first output) or module:function. Default: "
             f"{defaults.ACCURACY['o1']} at o1, {defaults.ACCURACY['o2']} at o2.")] = None,
    study_name: Annotated[str | None, typer.Option(
        "--study-name", help="Study (and MLflow experiment) name; an existing study of the same workload is "
                             "continued. Default: the model's name.")] = None,
    storage: Annotated[str | None, typer.Option(
        help="Optuna storage: an SQLAlchemy URL (sqlite:///..., postgresql://user@host/db to share a study "
             "between machines) or journal:///path/file.log. Default: sqlite:///<output-dir>/study.db.")] = None,
    mlflow_uri: Annotated[str | None, typer.Option(
        "--mlflow-uri", help="MLflow tracking URI. Default: sqlite:///<output-dir>/mlflow.db.")] = None,
    no_mlflow: Annotated[bool, typer.Option(
        "--no-mlflow", help="Run without MLflow tracking (said so in the output).")] = False,
    backends: Annotated[str | None, typer.Option(
        help="Comma-separated backends to search (default: every available one for the model's framework).")
    ] = None,
    timeout: Annotated[float | None, typer.Option(
        help="Seconds for the whole run: loading, the search, the finalists, the export and its check. The "
             "search stops early enough for the rest, and trials still running then are stopped.")] = None,
    trial_timeout: Annotated[float, typer.Option(
        "--trial-timeout", help="Seconds one candidate may take to build and measure; past it the trial "
                                "fails with reason 'timeout' and the study goes on.")] = defaults.TRIAL_TIMEOUT_S,
    workers: Annotated[int | None, typer.Option(
        help="Worker processes evaluating candidates in parallel on this host, spread over the GPUs "
             "(CUDA_VISIBLE_DEVICES); they compile at once and take turns timing on a GPU. Default: on a "
             f"GPU host one per {defaults.CORES_PER_GPU_WORKER} cores, at most {defaults.MAX_GPU_WORKERS}; on a "
             "CPU-only host 1. More machines join a study by sharing --storage.")] = None,
    memory_limit: Annotated[float | None, typer.Option(
        "--memory-limit", help="GiB of resident memory one worker may use; a candidate over it fails with "
                               f"'out of memory'. Default: {defaults.MEMORY_SHARE:.0%} of RAM (or of the "
                               "container's memory limit, where lower) split between the workers.")] = None,
    output_dir: Annotated[Path, typer.Option(
        "--output-dir", help="Folder for study.db, mlflow.db, mlruns/ and <study>/best/.")] = Path(defaults.OUTPUT_DIR),
    seed: Annotated[int, typer.Option(help="Seed of the TPE sampler.")] = defaults.SEED,
    static_only: Annotated[bool, typer.Option(
        "--static-only", help="Search only static-shape candidates (compiled per distinct input shape).")] = False,
    expensive: Annotated[bool, typer.Option(
        "--expensive", help="Also search choices that cost minutes per candidate: Inductor's max-autotune "
                            "modes on the GPU and the larger MetaSchedule budgets (64@top8, 256@top2 on the "
                            "GPU; 64@top2 on the CPU).")] = False,
    no_prune: Annotated[bool, typer.Option(
        "--no-prune", help="Measure every candidate fully (no stopping of clearly slow ones).")] = False,
    repeats: Annotated[int, typer.Option(
        help="Timed calls per test sample (their median is its latency).")] = defaults.REPEATS,
    finalists: Annotated[int, typer.Option(
        help="After the trials, measure this many of the fastest distinct candidates again side by side "
             "with eager and emit the fastest (a trial's single measurement can be lucky).")] = defaults.FINALISTS,
    verbose: Annotated[bool, typer.Option(
        "--verbose", help="Show the compilers' own warnings (hidden by default).")] = False,
) -> None:
    """Tune a model (see the options), or run a subcommand."""
    if ctx.invoked_subcommand is not None:
        return
    if not verbose:
        # Candidate compilers warn a lot (deprecations, autotuning notes) about code that is
        # not the user's; a failing candidate's reason is shown on its own line anyway.
        warnings.simplefilter("ignore")
    from tuner.api.preflight import preflight
    from tuner.api.progress import RichProgress
    from tuner.api.tuning import run
    from tuner.core.devices import resolve_device
    from tuner.core.settings import TuneSettings
    from tuner.workloads.loading import load_workload

    # Check the cheap things before loading the model (which may take a while).
    settings = TuneSettings(study_name=study_name or "placeholder", output_dir=output_dir, storage=storage,
                            mlflow_uri=mlflow_uri, trials=trials, timeout_s=timeout, trial_timeout_s=trial_timeout,
                            seed=seed, level=level, accuracy=accuracy,
                            backends=_split(backends), static_only=static_only, expensive=expensive, prune=not no_prune,
                            repeats=repeats, finalists=finalists, workers=workers, memory_limit_gb=memory_limit)
    dev = resolve_device(device)
    checked = preflight(settings, track=not no_mlflow)
    progress = RichProgress()
    what = model or "the built-in demo"
    # A spinner that leaves no line behind: if the model, its data or the study refuses the run,
    # the error is the only line on stderr. The next phase line says what was loaded.
    with progress.console.status(f"loading {what} on {dev}"), checked.budget.phase("load"):
        workload = load_workload(model, test_data, dev, inputs=inputs, outputs=outputs)
    result = run(workload, checked if study_name else checked.named(workload.name), progress=progress)
    _print_result(result, progress)
    if result.report["search"]["stopped_by"] == "interrupted":
        # The best so far is written, but the study is not done: say so to scripts (128 + SIGINT).
        raise typer.Exit(130)
    if result.artifact_dir is None:
        # Nothing to deploy: a script must not go on as if there were (the line above says why).
        raise typer.Exit(1)


def _print_result(result: Any, progress: Any) -> None:
    report = result.report
    if result.artifact_dir is None:
        return  # finalize said why, in one line
    lines = [json.dumps({"optimizations": report["optimizations"]}, indent=2),
             f"best: trial {report['chosen']['trial']}: {report['chosen']['description']}"]
    if report.get("speedup"):
        lines.append(f"speedup over eager (side by side, whole test data): {report['speedup']:.2f}x")
    search = report["search"]
    lines.append(f"trials: {search['trials']} ({search['complete']} complete, {search['failed']} failed, "
                 f"{search['pruned']} pruned; {search['distinct_candidates']} distinct candidates), "
                 f"stopped by {search['stopped_by']}")
    timing = report.get("timing") or {}
    if timing:
        lines.append("time: " + ", ".join(f"{k.removesuffix('_s')} {v:.1f} s" for k, v in timing.items()
                                          if k not in ("budget_s", "reserved_s") and v is not None)
                     + (f" (budget {timing['budget_s']:g} s, {timing['reserved_s']:.0f} s of it kept for "
                        "after the search)" if timing.get("budget_s") else ""))
    lines.append(f"written: {result.artifact_dir} ({report['chosen']['backend']} artifact, report.json, "
                 "best_config.json)")
    if result.mlflow_uri:
        lines.append(f"browse: mlflow ui --backend-store-uri {result.mlflow_uri}")
    for line in lines:
        progress.console.print(line, markup=False, highlight=False, soft_wrap=True)


@app.command("best")
def best_command(
    study_name: Annotated[str, typer.Option("--study-name", help="The study.")],
    storage: Annotated[str | None, typer.Option(
        help="Its storage URL. Default: sqlite:///<output-dir>/study.db.")] = None,
    output_dir: Annotated[Path, typer.Option("--output-dir", help="Where tune wrote it.")] = Path(defaults.OUTPUT_DIR),
) -> None:
    """Print the best config of a study as JSON."""
    from tuner.api.tuning import best_config

    url = storage or f"sqlite:///{output_dir.expanduser().resolve() / 'study.db'}"
    if storage is None and not (output_dir / "study.db").exists():
        raise UserError(f"no study database at {output_dir / 'study.db'}",
                        "pass the --output-dir or --storage that tune used")
    typer.echo(json.dumps(best_config(study_name, url), indent=2))


def _stop_on_signals() -> None:
    """Make SIGINT (Ctrl-C) and SIGTERM stop the study cleanly, writing the best so far.

    Python turns SIGINT into KeyboardInterrupt only if SIGINT was not ignored when it started, and
    a shell starts background jobs with SIGINT ignored; a scheduler or ``kill`` sends SIGTERM.
    Both should end a study the way Ctrl-C at a terminal does.
    """
    import signal

    from tuner.core import stopping

    def interrupt(signum: int, frame: object) -> None:
        stopping.on_signal()

    default_hook = sys.unraisablehook

    def unraisable(info: Any) -> None:
        # A KeyboardInterrupt that landed in a finalizer is dropped by Python; the request is in
        # `stopping` and the loop ends at the next trial, so do not print it as an error.
        if not isinstance(info.exc_value, KeyboardInterrupt):
            default_hook(info)

    sys.unraisablehook = unraisable

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``tune`` console script.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).
    """
    import click

    _stop_on_signals()
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="tune", standalone_mode=False)
    except UserError as e:
        print(f"tune: error: {e.one_line()}", file=sys.stderr)
        sys.exit(e.exit_code)
    except click.exceptions.ClickException as e:
        e.show()
        sys.exit(2 if isinstance(e, click.exceptions.UsageError) else e.exit_code)
    except (KeyboardInterrupt, click.exceptions.Abort):
        print("tune: aborted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
