"""What libraries print while the study process builds goes to a log, not between the tuner's lines."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

#: A process that prints natively and from Python inside the context, and its own lines around it.
SCRIPT = """
import os, sys
from pathlib import Path
from tuner.core.native_log import native_output_to
print("before")
with native_output_to(Path(sys.argv[1])):
    os.write(1, b"native out\\n")
    os.write(2, b"native err\\n")
    print("a library's print")
    sys.stderr.write("the tuner's progress\\n")
print("after")
"""


def test_native_and_library_output_goes_to_the_log_and_the_tuners_lines_to_the_screen(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "study.log"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(log)], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["before", "after"]
    assert proc.stderr.splitlines() == ["the tuner's progress"]
    assert sorted(log.read_text().splitlines()) == ["a library's print", "native err", "native out"]
