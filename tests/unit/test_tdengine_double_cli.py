"""The TDengine stand-in's command line: every option explains itself in --help."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

OPTIONS = ("--host", "--port", "--db-file", "--user", "--password", "--server-version")


def help_entries(text: str) -> dict[str, str]:
    """Option -> its help text, from argparse's ``options:`` section."""
    section = text.split("options:", 1)[1]
    entries: dict[str, str] = {}
    current = None
    for line in section.splitlines():
        found = re.match(r"^  (--[\w-]+)(?: [A-Z_]+)?\s*(.*)$", line)
        if found:
            current = found.group(1)
            entries[current] = found.group(2).strip()
        elif current and line.startswith("   "):
            entries[current] = f"{entries[current]} {line.strip()}".strip()
    return entries


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "standins.tdengine_double", "--help"],
        [sys.executable, "-m", "worker", "tdengine-double", "--help"],
    ],
)
def test_every_option_has_help_text(command: list[str]) -> None:
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    entries = help_entries(proc.stdout)
    for option in OPTIONS:
        assert len(entries.get(option, "").split()) >= 3, (option, proc.stdout)
    assert "NOT TDengine" in proc.stdout or "not TDengine" in proc.stdout
