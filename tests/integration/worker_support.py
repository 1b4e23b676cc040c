"""Helpers for end-to-end worker tests: run the real worker, read the ledger back."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from standins.samples import fee_schedule_text, trade_lines
from worker.core.deriver import Deriver
from worker.core.fee_schedule import parse_fee_schedule
from worker.core.rejections import Rejection

Row = tuple[Any, ...]
ROW_COLUMNS = (
    "CAST(ts AS BIGINT), event_id, event_type, trade_id, user_id, account_type, debit_asset, "
    "debit_amt, credit_asset, credit_amt, fee, fee_asset, is_maker, from_user"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def expected_ledger(lines: Iterable[bytes], schedule_text: str) -> tuple[set[Row], list[str]]:
    """The rows the core derives for ``lines``, and each rejected line's reason, in order."""
    deriver = Deriver(parse_fee_schedule(schedule_text))
    rows: set[Row] = set()
    reasons: list[str] = []
    for raw in lines:
        result = deriver.derive(raw)
        if isinstance(result, Rejection):
            reasons.append(result.reason)
        else:
            rows.update(tuple(e.__getattribute__(f) for f in e.__struct_fields__) for e in result)
    return rows, reasons


def sample_lines(count: int, *, seed: int = 11, invalid_ratio: float = 0.02) -> list[bytes]:
    return trade_lines(count, seed=seed, invalid_ratio=invalid_ratio)


class WorkerProcess:
    """One ``balance-sink run`` child process with its own config file and log."""

    def __init__(self, workdir: Path, name: str, config: str) -> None:
        self.config_path = workdir / f"{name}.toml"
        self.config_path.write_text(config)
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port = int(config.split("port = ")[1].split()[0]) if "port = " in config else 0

    def start(self) -> WorkerProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "worker.commands.cli",
                    "run",
                    "--config",
                    str(self.config_path),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def rss_kib(self) -> int:
        for row in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if row.startswith("VmRSS:"):
                return int(row.split()[1])
        return 0


def worker_config(
    *,
    bootstrap: str,
    topic: str,
    dead_letter_topic: str,
    group: str,
    schedule_path: Path,
    tdengine: Any,
    database: str,
    metrics_port: int | None = None,
    extra: str = "",
) -> str:
    metrics = (
        f'[metrics]\nenabled = true\nhost = "127.0.0.1"\nport = {metrics_port}\n'
        if metrics_port
        else "[metrics]\nenabled = false\n"
    )
    return f"""
fee_schedule = "{schedule_path}"

[kafka]
bootstrap_servers = "{bootstrap}"
group_id = "{group}"
topics = ["{topic}"]
dead_letter_topic = "{dead_letter_topic}"

[kafka.client]
"session.timeout.ms" = 6000
"heartbeat.interval.ms" = 500
"topic.metadata.refresh.interval.ms" = 2000

[tdengine]
url = "{tdengine.url}"
user = "{tdengine.user}"
password = "{tdengine.password}"
database = "{database}"
retry_max_elapsed_s = 2.0
request_timeout_s = 5.0

[batch]
max_rows = 8000
linger_ms = 200

[worker]
retry_initial_backoff_ms = 200
retry_max_backoff_ms = 1000
shutdown_timeout_s = 15
summary_interval_s = 5

[log]
format = "json"
level = "INFO"

{metrics}
{extra}
"""


def write_schedule(workdir: Path) -> tuple[Path, str]:
    text = fee_schedule_text()
    path = workdir / "fee_schedule.toml"
    path.write_text(text)
    return path, text


def high_watermarks(consumer_conf: dict[str, object], topic: str, partitions: int) -> list[int]:
    consumer = Consumer({**consumer_conf, "group.id": "watermarks"})
    try:
        return [consumer.get_watermark_offsets(TopicPartition(topic, p), 10)[1]
                for p in range(partitions)]  # fmt: skip
    finally:
        consumer.close()


def committed_offsets(
    consumer_conf: dict[str, object], group: str, topic: str, partitions: int
) -> list[int]:
    consumer = Consumer({**consumer_conf, "group.id": group})
    try:
        parts = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], 10)
        return [tp.offset for tp in parts]
    finally:
        consumer.close()


def caught_up(committed: list[int], marks: list[int]) -> bool:
    """Whether every partition's committed offset is at its high watermark.

    A partition nobody produced to (mark 0) has nothing to commit: librdkafka answers
    ``OFFSET_INVALID`` (-1001) for it, which counts as caught up too.
    """
    if len(committed) != len(marks):
        return False
    pairs = zip(committed, marks, strict=True)
    return all(offset == mark or (mark == 0 and offset < 0) for offset, mark in pairs)


def wait_until(condition: Callable[[], bool], timeout: float, what: str, *, every: float = 0.5,
               on_timeout: Callable[[], str] | None = None) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every)
    detail = on_timeout() if on_timeout else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{detail}")


def read_rows(sql: Callable[..., dict[str, Any]], database: str) -> list[Row]:
    result = sql(f"SELECT {ROW_COLUMNS} FROM `{database}`.`balance_events`")
    assert result["code"] == 0, result
    return [tuple(r) for r in result["data"]]


def read_dead_letters(consumer_conf: dict[str, object], topic: str) -> list[dict[str, Any]]:
    consumer = Consumer({**consumer_conf, "group.id": f"dlq-reader-{time.time_ns()}",
                         "auto.offset.reset": "earliest"})  # fmt: skip
    consumer.subscribe([topic])
    records: list[dict[str, Any]] = []
    idle_since = time.monotonic()
    try:
        while time.monotonic() - idle_since < 5:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            idle_since = time.monotonic()
            raw = msg.headers() or []
            pairs = raw.items() if isinstance(raw, dict) else raw
            headers = {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in pairs}
            records.append({"value": msg.value(), "key": msg.key(), "headers": headers,
                            "timestamp": msg.timestamp()[1]})  # fmt: skip
    finally:
        consumer.close()
    return records
