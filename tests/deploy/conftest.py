"""Fixtures of the deploy tests: repository paths and the external tools they drive."""

from __future__ import annotations

import shutil

import pytest

PROMTOOL_INSTALL = "apt-get update && apt-get install -y prometheus"


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path of ``promtool``; its absence fails (never skips) the tests that need it."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not on PATH: install Debian's prometheus package "
            f"(`{PROMTOOL_INSTALL}`), which ships /usr/bin/promtool",
            pytrace=False,
        )
    return path
