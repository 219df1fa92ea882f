"""The workload record: a model, the test data it will really see, and the reference outputs.

Loading one (factories, files, TensorFlow graphs) is :mod:`tuner.workloads`' job; this record is
what every other room passes around.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

import torch

from tuner.core.outputs import OutputSpec, flatten_outputs

Sample = tuple[torch.Tensor, ...]


@dataclasses.dataclass(frozen=True)
class Workload:
    """A model with its test data and reference outputs, placed on one device.

    Attributes:
        name: Short name (the default study name).
        framework: ``"torch"`` or ``"tf"``.
        model: The original model, in eval mode, on ``device``; for ``"tf"`` a
            :class:`~tuner.core.tf_model.TFModel` (a record, not a callable).
        samples: Test inputs, one tuple per sample, on ``device`` (on the CPU for ``"tf"``).
        reference: Flattened reference outputs per sample, on the CPU.
        device: ``"cpu"`` or ``"gpu"``.
        source: Where the model came from (file path, factory or ``"python object"``).
        fingerprint: Digest of the model and of its input signature: one study holds one workload.
        output_spec: The structure of the model's outputs (None for a TF graph, whose outputs are
            its named tensors): backends compile the model with its outputs flattened, and an
            artifact rebuilds them.
    """

    name: str
    framework: str
    model: Any
    samples: tuple[Sample, ...]
    reference: tuple[tuple[torch.Tensor, ...], ...]
    device: str
    source: str
    fingerprint: str
    output_spec: OutputSpec | None = None

    def __post_init__(self) -> None:
        if self.output_spec is not None:
            # Every process that holds the workload (a worker loading it, too) flattens the
            # outputs the same way: the library classes among them are registered here.
            self.output_spec.load()

    def shape_key(self, index: int) -> tuple[tuple[int, ...], ...]:
        """The input shapes of sample ``index`` (static mode compiles once per distinct key)."""
        return tuple(tuple(t.shape) for t in self.samples[index])

    def shape_counts(self) -> dict[tuple[tuple[int, ...], ...], int]:
        """How often each distinct input shape occurs in the test data, in first-seen order."""
        return dict(collections.Counter(self.shape_key(i) for i in range(len(self.samples))))

    def varying_dims(self) -> tuple[tuple[int, ...], ...]:
        """Per input, the dims whose size differs between test samples (symbolic in dynamic modes)."""
        out = []
        for j, first in enumerate(self.samples[0]):
            out.append(tuple(d for d in range(first.dim()) if len({s[j].shape[d] for s in self.samples}) > 1))
        return tuple(out)

    def dim_groups(self) -> dict[tuple[int, int], str]:
        """Names for the varying dims, one name per group of dims that always agree in size.

        ``torch.export`` needs dims that the model forces equal (say every input's batch dim) to
        share one ``Dim``; dims whose sizes agree on every test sample are taken to be one.

        Returns:
            ``{(input_index, dim): group_name}`` for every varying dim.
        """
        names: dict[tuple[int, ...], str] = {}
        groups: dict[tuple[int, int], str] = {}
        for j, dims in enumerate(self.varying_dims()):
            for d in dims:
                pattern = tuple(s[j].shape[d] for s in self.samples)
                names.setdefault(pattern, f"d{len(names)}")
                groups[(j, d)] = names[pattern]
        return groups

    def example_index(self) -> int:
        """The sample with the most elements: the example to export/trace with.

        A large example avoids size-1 dims, which ``torch.export`` would specialise on.
        """
        return max(range(len(self.samples)), key=lambda i: sum(t.numel() for t in self.samples[i]))

    def has_convolutions(self) -> bool:
        """Whether the model holds torch convolution modules (cuDNN runs them on the GPU).

        Scripted submodules keep their class name in ``original_name``. Convolutions called as
        functions (``F.conv2d``) are not seen; such a model is searched without the cuDNN choices.

        Returns:
            True for a torch model with a ``Conv1d/2d/3d`` or ``ConvTranspose`` module; False for
            TF models and everything else.
        """
        if self.framework != "torch" or not isinstance(self.model, torch.nn.Module):
            return False
        names = {"Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"}
        return any(isinstance(m, torch.nn.modules.conv._ConvNd) or getattr(m, "original_name", None) in names
                   for m in self.model.modules())

    def shapes_summary(self) -> list[dict[str, Any]]:
        """The test-data shape distribution, for the report."""
        return [{"shapes": [list(s) for s in key], "count": n} for key, n in self.shape_counts().items()]


__all__ = ["Sample", "Workload", "flatten_outputs"]
