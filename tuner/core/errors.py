"""Errors of the user's own input.

A :class:`UserError` stops the tool at once with one line that names the problem and the fix;
the CLI prints it without a traceback and exits with code 2. Everything that goes wrong with a
*candidate* is not an error at all but data (a failed trial with its reason), see
:mod:`tuner.core.records`.
"""

from __future__ import annotations

import traceback
from pathlib import Path


class UserError(Exception):
    """The user's input cannot be used; the message says what is wrong and how to fix it.

    Args:
        problem: What is wrong, e.g. ``"model file decoder.pt does not exist"``.
        fix: What to do about it, e.g. ``"pass an existing path to --model"``.
    """

    exit_code = 2

    def __init__(self, problem: str, fix: str = "") -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}: {fix}" if fix else problem)

    def one_line(self) -> str:
        """The message folded onto one line, as the CLI prints it."""
        return " ".join(str(self).split())


def error_line(e: BaseException, limit: int = 400) -> str:
    """One line naming an exception: its type, the telling line of its message, where it came from.

    That line is the first of the message, except where the first is only a header (TorchScript's
    interpreter errors open with "The following operation failed ..." and end with the cause).

    Args:
        e: The exception.
        limit: Longest message part kept.

    Returns:
        ``"Type: message (at file.py:line)"``.
    """
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    text = lines[0] if lines else ""
    if len(lines) > 1 and (text.startswith("The following operation failed") or text.endswith(":")):
        text = f"{text} ... {lines[-1]}"
    frames = traceback.extract_tb(e.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(e).__name__}: {text[:limit]}{where}"


def first_line(e: BaseException) -> str:
    """An exception as ``Type: first line of its message`` (whole sentences, at most 200 characters)."""
    text = str(e).strip().splitlines()
    if not text:
        return type(e).__name__
    line = text[0]
    if len(line) > 200 and ". " in line[:200]:
        # Keep whole sentences: torch's file errors go on for several after the one that says why.
        line = line[: line.rindex(". ", 0, 200) + 1]
    return f"{type(e).__name__}: {line[:200]}"
