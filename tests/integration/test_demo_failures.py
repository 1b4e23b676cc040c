"""``balance-sink demo`` failing to start: one clear line on stderr, exit 1, quickly.

None of these needs a broker: the failure comes before one would be used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from standins.tdengine_double import TDengineDouble

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def double() -> Iterator[TDengineDouble]:
    server = TDengineDouble(password="the-right-one").start()
    try:
        yield server
    finally:
        server.stop()


def demo(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KAFKA_BOOTSTRAP", "TDENGINE_URL", "TDENGINE_PASSWORD", "JAVA_HOME")
    }
    return subprocess.run(
        [sys.executable, "-m", "worker", "demo", "--trades", "100", *args],
        capture_output=True,
        text=True,
        env={**base, **env},
        timeout=120,
        check=False,
    )


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed demo, checked for what must not be there."""
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("balance-sink demo: ")
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "|FAIL|" not in proc.stdout + proc.stderr  # no raw librdkafka line
    return lines[0]


def test_wrong_tdengine_password(double: TDengineDouble) -> None:
    proc = demo({"TDENGINE_URL": double.url, "TDENGINE_PASSWORD": "wrong-password"})
    line = one_line(proc)
    assert f"TDengine at {double.url}" in line
    assert "wrong-password" not in proc.stdout + proc.stderr


def test_unreachable_kafka_bootstrap(double: TDengineDouble) -> None:
    env = {
        "TDENGINE_URL": double.url,
        "TDENGINE_PASSWORD": "the-right-one",
        "KAFKA_BOOTSTRAP": "127.0.0.1:1",
    }
    line = one_line(demo(env, "--kafka-wait", "2"))
    assert "Kafka at 127.0.0.1:1 did not answer within 2 s" in line
    assert "Connection refused" in line


def test_no_java(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    line = one_line(demo({"PATH": str(empty)}))
    assert "'java' not found" in line


def test_no_maven_and_no_cached_jars(tmp_path: Path) -> None:
    java = shutil.which("java")
    if java is None:
        pytest.skip("needs java, to get as far as the jar download")
    only_java = tmp_path / "bin"
    only_java.mkdir()
    (only_java / "java").symlink_to(java)
    env = {"PATH": str(only_java), "BALANCE_SINK_CACHE": str(tmp_path / "empty-cache")}
    line = one_line(demo(env))
    assert "'mvn' not found" in line
