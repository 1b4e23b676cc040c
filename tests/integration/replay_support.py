"""Helpers for ``balance-sink replay`` and ``audit`` end-to-end tests (real broker, TDengine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .worker_support import worker_config, write_schedule

__all__ = ("CliRun", "ReplayEnv")


@dataclass(frozen=True)
class CliRun:
    """A finished CLI process: exit code, output, and the summary file if written."""

    code: int
    output: str
    summary: dict[str, Any] | None


class ReplayEnv:
    """One test's topic, dead-letter topic, database, fee schedule and config file."""

    def __init__(
        self,
        tmp_path: Path,
        kafka_bootstrap: str,
        topic_factory: Any,
        tdengine_endpoint: Any,
        database: str,
        *,
        partitions: int,
    ) -> None:
        self.tmp_path = tmp_path
        self.bootstrap = kafka_bootstrap
        self.partitions = partitions
        self.topic = topic_factory(partitions, prefix="trades")
        self.dead_letter_topic = topic_factory(1, prefix="dlq")
        self.endpoint = tdengine_endpoint
        self.database = database
        self.schedule_path, self.schedule_text = write_schedule(tmp_path)
        self.worker_group = f"live-{uuid.uuid4().hex[:8]}"
        self.config_path = tmp_path / "replay.toml"
        self.config_path.write_text(self.config_text())
        self._runs = 0
        self._started: list[subprocess.Popen[bytes]] = []

    def config_text(self, database: str | None = None) -> str:
        return worker_config(
            bootstrap=self.bootstrap, topic=self.topic, dead_letter_topic=self.dead_letter_topic,
            group=self.worker_group, schedule_path=self.schedule_path, tdengine=self.endpoint,
            database=database or self.database,
        )  # fmt: skip

    def command(self, name: str, *args: str, config: Path | None = None) -> list[str]:
        return [sys.executable, "-m", "worker", name, "--config",
                str(config or self.config_path), *args]  # fmt: skip

    def start(
        self, *args: str, env: dict[str, str] | None = None
    ) -> tuple[subprocess.Popen[bytes], Path, Path]:
        """Start ``replay`` with a summary file; returns the process, summary and log paths."""
        self._runs += 1
        summary = self.tmp_path / f"summary-{self._runs}.json"
        log = self.tmp_path / f"replay-{self._runs}.log"
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        with log.open("wb") as out:
            proc = subprocess.Popen(
                self.command("replay", "--summary-file", str(summary), "--progress", "log",
                             "--progress-interval", "1", *args),
                stdout=out, stderr=subprocess.STDOUT, env=full_env,
            )  # fmt: skip
        self._started.append(proc)
        return proc, summary, log

    def kill_leftovers(self) -> None:
        """Kill replays a failed test left running, so none outlives its test."""
        for proc in self._started:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)

    def replay(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> CliRun:
        """Run ``replay`` to its end."""
        proc, summary, log = self.start(*args, env=env)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_leftovers()
            raise
        data = json.loads(summary.read_text()) if summary.exists() else None
        return CliRun(code, log.read_text(errors="replace"), data)

    def audit(self, *args: str, config: Path | None = None, timeout: float = 120) -> CliRun:
        """Run ``audit``; ``summary`` is its stdout parsed as JSON with ``--format json``."""
        done = subprocess.run(
            self.command("audit", *args, config=config), capture_output=True, timeout=timeout,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        out = done.stdout.decode(errors="replace")
        data = json.loads(out) if "--format" in args and "json" in args and out.strip() else None
        return CliRun(done.returncode, out + done.stderr.decode(errors="replace"), data)
