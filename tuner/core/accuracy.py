"""The accuracy rule a study judges candidates by: what ``--accuracy`` / ``Config(accuracy=...)`` take.

A rule compares a candidate's outputs with the fp32 reference over the whole test data and gives
one score and a verdict (:func:`tuner.runtime.correctness.check_outputs` applies it):

- ``elementwise:ATOL,RTOL``: every element within ``ATOL + RTOL * |ref|`` (numpy's ``allclose``).
  Score: the largest share of that tolerance used (passes at most 1).
- ``rel-l2:X``: per output and sample, ``||out - ref|| / ||ref||`` at most X. Score: the largest.
- ``cosine:X``: per output and sample, the cosine similarity of the flattened tensors at least X.
  Score: the smallest.
- ``top1`` or ``top1:X``: the argmax over the last dimension of the first output (the logits)
  agrees with the reference's at a share of at least X (default 1) of the positions, per sample.
  Score: the smallest share.
- ``module:function``: ``function(reference, outputs)`` returns ``(score, passed)``; both
  arguments are lists (one entry per test sample) of tuples of tensors, the model's outputs
  flattened, on the CPU. The module must be importable by the worker processes.

Under every built-in rule integer and boolean outputs must match exactly, shapes must match, and a
NaN or infinity where the reference has a finite number fails.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Callable
from typing import Any

from tuner.core import defaults
from tuner.core.errors import UserError

#: The rule kinds, as ``--accuracy`` spells them.
KINDS: tuple[str, ...] = ("elementwise", "rel-l2", "cosine", "top1", "function")
_USAGE = ("pass --accuracy elementwise:ATOL,RTOL, rel-l2:X, cosine:X, top1[:X] or module:function "
          "(e.g. --accuracy rel-l2:0.02)")


@dataclasses.dataclass(frozen=True)
class AccuracyRule:
    """One parsed accuracy rule.

    Attributes:
        kind: One of :data:`KINDS`.
        values: The rule's numbers: ``(atol, rtol)`` for elementwise, ``(threshold,)`` otherwise
            (empty for a function).
        function: ``module:function`` of a user's rule.
    """

    kind: str
    values: tuple[float, ...] = ()
    function: str = ""

    @property
    def spec(self) -> str:
        """The rule as ``--accuracy`` takes it (what the study, the report and MLflow record)."""
        if self.kind == "function":
            return self.function
        return f"{self.kind}:{','.join(f'{v:g}' for v in self.values)}"

    @property
    def higher_is_better(self) -> bool:
        """Whether a larger score is closer to the reference (cosine, top1)."""
        return self.kind in ("cosine", "top1")

    def passes(self, score: float) -> bool:
        """Whether a built-in rule's score passes."""
        if self.kind == "elementwise":
            return score <= 1.0
        return score >= self.values[0] if self.higher_is_better else score <= self.values[0]

    def resolve(self) -> Callable[[Any, Any], Any]:
        """A user rule's function, imported.

        Raises:
            UserError: When the module or the function cannot be found.
        """
        module_name, _, name = self.function.partition(":")
        try:
            fn = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError) as e:
            raise UserError(f"accuracy function {self.function!r} cannot be loaded ({e})",
                            "pass --accuracy module:function naming a function importable here (on PYTHONPATH)") from e
        if not callable(fn):
            raise UserError(f"accuracy function {self.function!r} is not callable",
                            "pass --accuracy module:function naming a function(reference, outputs) -> (score, passed)")
        return fn  # type: ignore[no-any-return]


def _numbers(text: str, count: int, spec: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count or any(v < 0 for v in values):
        raise UserError(f"accuracy rule {spec!r} needs {count} non-negative number(s) after ':'", _USAGE)
    return values


def parse_accuracy(spec: str) -> AccuracyRule:
    """Parse ``--accuracy``.

    Args:
        spec: The rule as the user wrote it.

    Returns:
        The rule.

    Raises:
        UserError: For an unknown kind or bad numbers, naming the forms accepted.
    """
    kind, sep, rest = spec.strip().partition(":")
    if kind == "elementwise":
        return AccuracyRule("elementwise", _numbers(rest, 2, spec))
    if kind in ("rel-l2", "cosine"):
        (value,) = _numbers(rest, 1, spec)
        if kind == "cosine" and value > 1:
            raise UserError(f"accuracy rule {spec!r}: a cosine threshold is at most 1", _USAGE)
        return AccuracyRule(kind, (value,))
    if kind == "top1":
        (value,) = _numbers(rest, 1, spec) if sep else (1.0,)
        if value > 1:
            raise UserError(f"accuracy rule {spec!r}: top1's agreement share is at most 1", _USAGE)
        return AccuracyRule("top1", (value,))
    if sep and re.fullmatch(r"[A-Za-z_][\w.]*", kind) and re.fullmatch(r"[A-Za-z_]\w*", rest):
        return AccuracyRule("function", (), f"{kind}:{rest}")
    raise UserError(f"unknown accuracy rule {spec!r}", _USAGE)


def checked_spec(spec: str | None) -> str | None:
    """``--accuracy`` as given, checked and in its canonical spelling (None stays None).

    A user's function is imported here, so that one that does not import stops the run at once
    rather than failing every trial.

    Raises:
        UserError: For a rule that cannot be used.
    """
    if spec is None:
        return None
    rule = parse_accuracy(spec)
    if rule.kind == "function":
        rule.resolve()
    return rule.spec


def accuracy_rule(spec: str | None, level: str) -> AccuracyRule:
    """The rule a run uses: ``spec`` where the user gave one, else the level's default.

    Args:
        spec: ``--accuracy`` as given, or None.
        level: The run's level (``o1`` or ``o2``).
    """
    return parse_accuracy(spec if spec is not None else defaults.ACCURACY[level])


__all__ = ["KINDS", "AccuracyRule", "accuracy_rule", "checked_spec", "parse_accuracy"]
