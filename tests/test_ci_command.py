"""CI runs exactly the README's test command (its second fenced command)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), flags=re.S)
    return [b.strip() for b in blocks]


def ci_command() -> str:
    lines = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines()
             if ln.strip() and not ln.startswith("#") and not ln.startswith(("set ", "cd "))]
    assert len(lines) == 1, lines
    return lines[0].strip()


def test_ci_runs_the_readmes_second_command_verbatim():
    commands = readme_commands()
    assert len(commands) >= 2
    assert ci_command() == commands[1]


def test_the_test_command_installs_what_the_tests_need():
    command = readme_commands()[1]
    assert re.search(r"apt-get install -y -q [^&]*\bpostgresql\b", command)
    assert re.search(r"apt-get install -y -q [^&]*\bchromium\b", command)
    assert "'.[all,test]'" in command
