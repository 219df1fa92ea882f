"""Test data as the tuner takes it: one tuple of input tensors per sample.

Read from a ``torch.save`` file (``.pt``: a list of input tuples) or an ``.npz`` (arrays named
``s<i>_<j>``: input ``j`` of sample ``i``; or ``arr_0..arr_n`` for a single sample), or given in
Python; every form is checked here, with one-line errors.
"""

from __future__ import annotations

import collections
import os
import re
from typing import Any

import torch

from tuner.core.errors import UserError, first_line
from tuner.core.workload import Sample


def load_test_data(path: str) -> list[Sample]:
    """Read test data: a list of input tuples from ``torch.save`` (.pt) or an ``.npz``.

    Args:
        path: The file.

    Returns:
        The samples, each a tuple of CPU tensors.

    Raises:
        UserError: When the file is missing, unreadable or not a list of input tuples.
    """
    if not os.path.isfile(path):
        raise UserError(f"test data file {path} does not exist", "pass an existing file to --test-data")
    if path.endswith(".npz"):
        import numpy as np

        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except Exception as e:  # noqa: BLE001
            raise UserError(f"test data file {path} is not a readable .npz ({first_line(e)})",
                            "write it with numpy.savez") from None
        return _samples_from_npz(arrays, path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise UserError(f"test data file {path} is not a readable torch.save file ({first_line(e)})",
                        "write a list of input tuples with torch.save(samples, path)") from None
    return as_samples(data, f"test data file {path}")


def _samples_from_npz(arrays: dict[str, Any], path: str) -> list[Sample]:
    keyed: dict[int, dict[int, Any]] = collections.defaultdict(dict)
    for key, value in arrays.items():
        m = re.fullmatch(r"s(\d+)_(\d+)", key)
        if m:
            keyed[int(m.group(1))][int(m.group(2))] = value
        elif re.fullmatch(r"arr_(\d+)", key):
            keyed[0][int(key[4:])] = value
        else:
            raise UserError(f"test data file {path} has an array named {key!r}",
                            "name arrays s<sample>_<input> (e.g. s0_0, s0_1) or save one sample as arr_0..arr_n")
    if not keyed:
        raise UserError(f"test data file {path} holds no arrays", "save at least one sample")
    samples = []
    for i in sorted(keyed):
        inputs = keyed[i]
        if sorted(inputs) != list(range(len(inputs))):
            raise UserError(f"sample {i} of {path} has inputs {sorted(inputs)}", "number inputs 0..n-1 without gaps")
        samples.append(tuple(torch.from_numpy(inputs[j]) for j in range(len(inputs))))
    return samples


def as_samples(data: Any, what: str) -> list[Sample]:
    """Check that ``data`` is a non-empty list of input tuples (a bare tensor is one sample of one input).

    Args:
        data: What the user gave.
        what: How to name it in messages.

    Returns:
        The samples as tuples of tensors.

    Raises:
        UserError: When it is not such a list, or the samples differ in their number of inputs.
    """
    if isinstance(data, torch.Tensor):
        data = [(data,)]
    if not isinstance(data, (list, tuple)) or not data:
        raise UserError(f"{what} is not a non-empty list of input tuples",
                        "give a list such as [(x1, y1), (x2, y2)] with one tuple of tensors per sample")
    samples = []
    for i, sample in enumerate(data):
        if isinstance(sample, torch.Tensor):
            sample = (sample,)
        if not isinstance(sample, (list, tuple)) or not all(isinstance(t, torch.Tensor) for t in sample):
            raise UserError(f"sample {i} of {what} is not a tuple of tensors", "make every sample a tuple of tensors")
        samples.append(tuple(sample))
    arity = {len(s) for s in samples}
    if len(arity) > 1:
        raise UserError(f"the samples of {what} have different numbers of inputs {sorted(arity)}",
                        "give every sample the same inputs")
    return samples


__all__ = ["as_samples", "load_test_data"]
