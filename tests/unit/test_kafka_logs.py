"""librdkafka's lines through our logging: structure, levels, collapsed repeats."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from worker.ops.kafka_logs import LibrdkafkaLogger, kafka_client_config
from worker.ops.logs import configure_logging

FAIL = (
    "[thrd:127.0.0.1:1/bootstrap]: 127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 "
    "failed: Connection refused (after {ms}ms in state CONNECT)"
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.fixture
def stream() -> io.StringIO:
    out = io.StringIO()
    configure_logging(stream=out, level="INFO")
    return out


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def librdkafka_says(logger: logging.Logger, level: int, facility: str, text: str) -> None:
    """What confluent-kafka's C log callback calls on the configured ``logger``."""
    logger.log(level, "%s [%s] %s", facility, "rdkafka#consumer-1", text)


def test_a_line_becomes_a_structured_record_of_the_librdkafka_logger(stream: io.StringIO) -> None:
    logger = LibrdkafkaLogger(clock=Clock())
    librdkafka_says(logger, logging.ERROR, "FAIL", FAIL.format(ms=0))
    (entry,) = lines(stream)
    assert entry["logger"] == "librdkafka"
    assert entry["level"] == "ERROR"
    assert entry["facility"] == "FAIL"
    assert entry["client"] == "rdkafka#consumer-1"
    assert entry["thread"] == "127.0.0.1:1/bootstrap"
    assert entry["msg"].startswith("127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed")


def test_repeats_are_counted_and_the_count_logged_once_per_interval(
    stream: io.StringIO,
) -> None:
    clock = Clock()
    logger = LibrdkafkaLogger(repeat_interval_s=30, clock=clock)
    for i in range(50):  # librdkafka's retry timing differs between repeats
        librdkafka_says(logger, logging.ERROR, "FAIL", FAIL.format(ms=i % 3))
        clock.now += 0.5  # 25 s in all: within one interval
    assert len(lines(stream)) == 1
    clock.now += 10  # past the interval: the next repeat brings the count
    librdkafka_says(logger, logging.ERROR, "FAIL", FAIL.format(ms=0))
    first, summary = lines(stream)
    assert summary["level"] == "ERROR"
    assert summary["repeated"] == 50
    assert summary["facility"] == "FAIL"
    assert summary["msg"].startswith("repeated 50 times in ")
    assert summary["msg"].endswith(first["msg"])
    # Then a new window: quiet until its interval is over, and flush reports what is left.
    for _ in range(3):
        librdkafka_says(logger, logging.ERROR, "FAIL", FAIL.format(ms=0))
    assert len(lines(stream)) == 2
    logger.flush()
    assert [e["repeated"] for e in lines(stream)[2:]] == [3]
    logger.flush()
    assert len(lines(stream)) == 3


def test_a_quiet_line_is_logged_again_after_its_interval_without_a_count(
    stream: io.StringIO,
) -> None:
    clock = Clock()
    logger = LibrdkafkaLogger(repeat_interval_s=30, clock=clock)
    librdkafka_says(logger, logging.WARNING, "GETPID", "[thrd:main]: Failed to acquire PID")
    clock.now += 31
    librdkafka_says(logger, logging.WARNING, "GETPID", "[thrd:main]: Failed to acquire PID")
    assert [("repeated" in e, e["msg"]) for e in lines(stream)] == [
        (False, "Failed to acquire PID"),
        (False, "Failed to acquire PID"),
    ]


def test_other_lines_are_not_collapsed_and_close_expired_windows(stream: io.StringIO) -> None:
    clock = Clock()
    logger = LibrdkafkaLogger(repeat_interval_s=30, clock=clock)
    librdkafka_says(logger, logging.ERROR, "FAIL", FAIL.format(ms=0))
    librdkafka_says(logger, logging.ERROR, "FAIL", FAIL.format(ms=0))
    librdkafka_says(logger, logging.WARNING, "FAIL", FAIL.format(ms=0))  # another level
    librdkafka_says(logger, logging.ERROR, "REQTMOUT", "[thrd:x]: Timed out")
    clock.now += 31
    librdkafka_says(logger, logging.WARNING, "CONFWARN", "[thrd:app]: unknown property")
    facilities = [(e["facility"], e["level"], e.get("repeated")) for e in lines(stream)]
    assert facilities == [
        ("FAIL", "ERROR", None),
        ("FAIL", "WARNING", None),
        ("REQTMOUT", "ERROR", None),
        ("FAIL", "ERROR", 1),  # the FAIL window expired: its count, before the new line
        ("CONFWARN", "WARNING", None),
    ]


def test_levels_follow_the_configured_threshold_even_after_reconfiguration() -> None:
    out = io.StringIO()
    configure_logging(stream=out, level="WARNING")
    logger = LibrdkafkaLogger(clock=Clock())
    librdkafka_says(logger, logging.INFO, "INIT", "[thrd:app]: hello")
    configure_logging(stream=out, level="INFO")
    librdkafka_says(logger, logging.INFO, "INIT", "[thrd:app]: again")
    assert [e["msg"] for e in lines(out)] == ["again"]


def test_kafka_client_config_adds_the_logger_and_keeps_the_rest() -> None:
    base = {"bootstrap.servers": "k:9092", "group.id": "g"}
    config = kafka_client_config(base)
    assert isinstance(config["logger"], logging.Logger)
    assert {k: v for k, v in config.items() if k != "logger"} == base
    assert "logger" not in base


def test_a_real_client_writes_no_raw_librdkafka_line() -> None:
    """A consumer of an unreachable broker: JSON lines only, the failure once."""
    script = textwrap.dedent(
        """
        import time
        from confluent_kafka import Consumer
        from worker.ops.kafka_logs import flush_kafka_logs, kafka_client_config
        from worker.ops.logs import configure_logging

        configure_logging(fmt="json", level="INFO")
        consumer = Consumer(kafka_client_config({
            "bootstrap.servers": "127.0.0.1:1", "group.id": "g",
            "reconnect.backoff.ms": 10, "reconnect.backoff.max.ms": 10,
            "acks": "all",  # a producer property: librdkafka warns (CONFWARN)
        }))
        consumer.subscribe(["t"])
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            consumer.consume(10, 0.1)
        consumer.close()
        flush_kafka_logs()
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    entries = [json.loads(line) for line in proc.stderr.splitlines()]  # all JSON
    facilities = [e["facility"] for e in entries if e["logger"] == "librdkafka"]
    assert "CONFWARN" in facilities
    assert facilities.count("FAIL") <= 3, proc.stderr  # first line, then counts at most
    fails = [e for e in entries if e.get("facility") == "FAIL"]
    assert "127.0.0.1:1" in fails[0]["msg"]
    assert sum(e.get("repeated", 0) for e in fails) > 10, proc.stderr
