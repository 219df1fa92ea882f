"""The benchmark's workloads, and how each is prepared and loaded.

A workload is built from its module's seeded factories (``make_model``, ``make_samples``) or, for
the TensorFlow one, from files that :func:`prepare` wrote on a host with TensorFlow. ``prepare``
writes every workload's test data into ``DIR/<name>/`` so that the GPU machine measures exactly
the data the CPU side made (the PyTorch models are rebuilt there from their seeds).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import torch

from tuner.core.errors import UserError
from tuner.core.workload import Workload
from tuner.workloads.loading import make_workload

#: Sizes a workload comes in: the benchmark's (``full``) and the CPU smoke run's (``small``).
SIZES: tuple[str, ...] = ("full", "small")


@dataclasses.dataclass(frozen=True)
class BenchWorkload:
    """One workload of the benchmark.

    Attributes:
        name: Its name on the command line and in the results.
        title: What it is, in a few words.
        stresses: What it stresses (shown in the results table).
        framework: ``torch`` or ``tf``.
        module: The module under ``experiments.workloads`` with its factories.
    """

    name: str
    title: str
    stresses: str
    framework: str
    module: str

    def factories(self) -> Any:
        """The workload's module."""
        return importlib.import_module(f"experiments.workloads.{self.module}")


WORKLOADS: dict[str, BenchWorkload] = {w.name: w for w in (
    BenchWorkload("demo", "WAP attention decoder (tuner.workloads.demo), batches 8/4/1", "mixed shapes, many small ops",
                  "torch", "demo"),
    BenchWorkload("tf_asr", "seed-like TF ASR decoder (frozen GraphDef, while loop)", "TF graph, control flow",
                  "tf", "tf_asr"),
    BenchWorkload("bert", "BERT-base-like encoder, variable sequence lengths", "dynamic shapes, GEMMs",
                  "torch", "bert"),
    BenchWorkload("resnet", "ResNet-18-style conv net, batch 1 and 32", "static shapes, convolutions",
                  "torch", "resnet"),
    BenchWorkload("mlp", "small MLP at batch 1", "launch-bound", "torch", "mlp"),
    BenchWorkload("hf_bert", "Hugging Face BertModel (BERT-base), padded batches of 1-8 x 32-128 tokens",
                  "a library's outputs, attention masks, dynamic shapes", "torch", "hf_bert"),
    BenchWorkload("hf_gpt2", "Hugging Face GPT2LMHeadModel, a prefill and a cached decode step",
                  "DynamicCache in and out, a dynamic past", "torch", "hf_gpt2"),
    BenchWorkload("hf_vit", "Hugging Face ViTModel (ViT-B/16), batch 1 and 8", "GEMMs, attention", "torch",
                  "hf_vit"),
    BenchWorkload("resnet50", "ResNet-50 (torchvision's, else transformers'), batch 1 and 8", "convolutions",
                  "torch", "resnet50"),
)}


def parse_names(text: str) -> list[str]:
    """``"a,b"`` or ``"all"`` as workload names, in the registry's order.

    Raises:
        UserError: For an unknown name.
    """
    names = list(WORKLOADS) if text.strip() == "all" else [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown or not names:
        raise UserError(f"unknown workload(s) {', '.join(unknown) or '(none given)'}",
                        f"pass --workloads with names from: {', '.join(WORKLOADS)} (or 'all')")
    return [n for n in WORKLOADS if n in names]


def tf_installed() -> bool:
    """Whether TensorFlow can be imported here (the GPU machine has none)."""
    return importlib.util.find_spec("tensorflow") is not None


def prepare(names: list[str], size: str, out: Path) -> dict[str, Any]:
    """Write each workload's test data (and the TF workload's ONNX export and reference) under ``out``.

    Args:
        names: Workloads.
        size: ``full`` or ``small``.
        out: The folder; ``out/<name>/`` per workload and ``out/manifest.json``.

    Returns:
        The manifest.

    Raises:
        UserError: When the TF workload is asked for and TensorFlow is not installed.
    """
    out.mkdir(parents=True, exist_ok=True)
    old_manifest = out / "manifest.json"
    if old_manifest.is_file() and json.loads(old_manifest.read_text()).get("size") != size:
        raise UserError(f"{out} holds data of another size than {size}",
                        "prepare into another folder, or pass the same --size")
    for name in names:
        w = WORKLOADS[name]
        folder = out / name
        folder.mkdir(exist_ok=True)
        mod = w.factories()
        if w.framework == "tf":
            if not tf_installed():
                raise UserError("preparing tf_asr needs TensorFlow (its ONNX export and reference outputs)",
                                "run --prepare on a host with tensorflow-cpu and tf2onnx installed")
            times = mod.TIMES if size == "full" else mod.TIMES[:3]
            mod.prepare(folder, times)
        else:
            torch.save(mod.make_samples(size), folder / "test_data.pt")
    # Several calls may prepare different workloads into one folder (checked above: one size).
    old = json.loads(old_manifest.read_text()) if old_manifest.is_file() else {}
    manifest = {"size": size, "workloads": [n for n in WORKLOADS if n in set(old.get("workloads", [])) | set(names)]}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def load(name: str, size: str, device: str, data_dir: Path | None) -> Workload:
    """The tuner's workload for ``name`` on ``device``.

    Args:
        name: A key of :data:`WORKLOADS`.
        size: ``full`` or ``small``; when ``data_dir`` is given, its manifest's size wins (the
            model must match the data).
        device: ``"cpu"`` or ``"gpu"``.
        data_dir: What :func:`prepare` wrote; None makes the data here (not for ``tf_asr``, which
            always comes from prepared files).

    Returns:
        The workload (reference outputs from the original model on ``device``; for ``tf_asr``
        plain TensorFlow's).

    Raises:
        UserError: When the files are missing, or ``tf_asr`` is asked for without files or TensorFlow.
    """
    w = WORKLOADS[name]
    mod = w.factories()
    folder = data_dir / name if data_dir is not None else None
    if data_dir is not None:
        check_prepared([name], data_dir)
        size = prepared_size(data_dir)
    if w.framework == "tf":
        if folder is None:
            raise UserError("tf_asr is measured from prepared files (its ONNX export and TF's reference outputs)",
                            "run bench.py --prepare DIR where TensorFlow is installed and pass --data DIR")
        workload: Workload = mod.load_prepared(folder, device)
        return workload
    model = mod.make_model(size)
    samples = (torch.load(folder / "test_data.pt", weights_only=True) if folder is not None
               else mod.make_samples(size))
    return make_workload(model, samples, device, name=name, source=f"experiments.workloads.{w.module}")


def check_prepared(names: list[str], data_dir: Path | None) -> None:
    """Fail before anything runs when ``data_dir`` lacks one of the workloads (:func:`load` would fail at its turn).

    Args:
        names: The workloads of the run, in order.
        data_dir: What :func:`prepare` wrote, or None (every workload made here; see :func:`load`).

    Raises:
        UserError: Naming every missing workload, and the command that prepares them.
    """
    if data_dir is None:
        return
    missing = [n for n in names if not (data_dir / n).is_dir()] if (data_dir / "manifest.json").is_file() else names
    if missing:
        raise UserError(f"{data_dir} holds no prepared files for {', '.join(missing)}: with --data every workload "
                        "of the run comes from it",
                        f"run bench.py --prepare {data_dir} --workloads {','.join(names)} first, or run "
                        f"{', '.join(missing)} in a call without --data")


def prepared_size(data_dir: Path) -> str:
    """The size the files in ``data_dir`` were prepared at (its manifest's)."""
    return str(json.loads((data_dir / "manifest.json").read_text())["size"])
