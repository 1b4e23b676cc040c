"""``balance-sink replay`` end to end: real Kafka broker, TDengine double (or TDENGINE_URL).

Each test runs the real CLI as a subprocess and compares the full row set in TDengine
with what the core derives for exactly the messages in the replayed range.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from .replay_support import ReplayEnv
from .worker_support import (
    committed_offsets,
    expected_ledger,
    read_dead_letters,
    read_rows,
    sample_lines,
    wait_until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.tdengine, pytest.mark.timeout(300)]

PARTITIONS = 3
BASE_MS = 1_700_000_000_000
"""Kafka timestamps of the produced messages: BASE_MS + 10 ms per message index."""


def ts_ms(index: int) -> int:
    return BASE_MS + 10 * index


@pytest.fixture
def env(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_factory: Any,
    tdengine_endpoint: Any,
    tdengine_database: str,
) -> Iterator[ReplayEnv]:
    env = ReplayEnv(tmp_path, kafka_bootstrap, topic_factory, tdengine_endpoint,
                    tdengine_database, partitions=PARTITIONS)  # fmt: skip
    yield env
    env.kill_leftovers()


def assert_rows(tdengine_sql: Any, database: str, expected: set[tuple[Any, ...]]) -> list[Any]:
    rows = read_rows(tdengine_sql, database)
    assert len(rows) == len(set(rows)), "duplicate rows in TDengine"
    missing = expected - set(rows)
    extra = set(rows) - expected
    assert not missing and not extra, f"{len(missing)} rows missing, {len(extra)} extra"
    return rows


def test_replay_from_a_timestamp_writes_exactly_the_rows_at_or_after_it(
    env: ReplayEnv, produce_messages: Any, tdengine_sql: Any, consumer_config: Any
) -> None:
    lines = sample_lines(3000, seed=21, invalid_ratio=0.03)
    produce_messages(env.topic, lines, timestamp_ms=ts_ms)
    middle = 1700
    run = env.replay("--from-timestamp", str(ts_ms(middle)))
    assert run.code == 0, run.output
    expected, reasons = expected_ledger(lines[middle:], env.schedule_text)
    assert_rows(tdengine_sql, env.database, expected)
    assert run.summary is not None
    assert run.summary["completed"] is True
    assert run.summary["messages_read"] == len(lines) - middle
    assert run.summary["rows_written"] == len(expected)
    assert run.summary["dead_lettered"] == dict(Counter(reasons))
    dead = read_dead_letters(consumer_config(), env.dead_letter_topic)
    assert Counter(d["headers"]["reason"] for d in dead) == Counter(reasons)
    assert all(int(d["timestamp"]) >= ts_ms(middle) for d in dead)
    assert "replay progress" in run.output  # plain log lines when stdout is not a TTY
    # The live worker's group was never touched.
    assert (
        committed_offsets(consumer_config(), env.worker_group, env.topic, PARTITIONS)
        == [-1001] * PARTITIONS
    )


def test_replaying_the_whole_topic_twice_changes_nothing(
    env: ReplayEnv, produce_messages: Any, tdengine_sql: Any
) -> None:
    lines = sample_lines(4000, seed=22)
    produce_messages(env.topic, lines)
    expected, _ = expected_ledger(lines, env.schedule_text)
    first = env.replay("--from-beginning")
    assert first.code == 0, first.output
    rows_first = sorted(assert_rows(tdengine_sql, env.database, expected))
    second = env.replay("--from-beginning")
    assert second.code == 0, second.output
    rows_second = sorted(assert_rows(tdengine_sql, env.database, expected))
    assert rows_first == rows_second
    count = tdengine_sql(f"SELECT COUNT(*) FROM `{env.database}`.`balance_events`")
    assert count["data"] == [[len(expected)]]
    assert first.summary is not None and second.summary is not None
    assert first.summary["rows_written"] == second.summary["rows_written"] == len(expected)


def test_sigkilled_replay_resumes_from_its_progress_group_to_the_exact_row_set(
    env: ReplayEnv, produce_messages: Any, tdengine_sql: Any, consumer_config: Any
) -> None:
    lines = sample_lines(24_000, seed=23)
    produce_messages(env.topic, lines)
    expected, _ = expected_ledger(lines, env.schedule_text)
    group = "replay-progress-test"
    small_batches = {"BALANCE_SINK_BATCH__MAX_ROWS": "800"}
    proc, _, log = env.start("--from-beginning", "--commit-group", group, env=small_batches)
    conf = consumer_config()

    def some_progress() -> bool:
        return sum(max(o, 0) for o in committed_offsets(conf, group, env.topic, PARTITIONS)) > 0

    wait_until(some_progress, 60, "a first progress commit", every=0.05,
               on_timeout=lambda: log.read_text())  # fmt: skip
    assert proc.poll() is None, "the replay finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    done = sum(max(o, 0) for o in committed_offsets(conf, group, env.topic, PARTITIONS))
    assert 0 < done < len(lines), done
    partial = tdengine_sql(f"SELECT COUNT(*) FROM `{env.database}`.`balance_events`")
    assert partial["data"][0][0] < len(expected)

    resumed = env.replay("--resume", "--commit-group", group, "--from-beginning")
    assert resumed.code == 0, resumed.output
    assert resumed.summary is not None
    assert resumed.summary["messages_read"] <= len(lines) - done
    assert_rows(tdengine_sql, env.database, expected)
    marks = [p["end"] for p in sorted(resumed.summary["partitions"], key=lambda p: p["partition"])]
    assert committed_offsets(conf, group, env.topic, PARTITIONS) == marks


def corrected_schedule(text: str) -> str:
    """The sample schedule with the second version's VIP-0 discount cut from 100 % to 70 %."""
    first, marker, second = text.partition("effective_from = 2025-06-15")
    assert marker, "the sample schedule changed: no 2025-06-15 version"
    return first + marker + second.replace('"0" = 100', '"0" = 70', 1)


def test_replay_with_a_corrected_schedule_changes_exactly_that_versions_rows(
    env: ReplayEnv, produce_messages: Any, tdengine_sql: Any, tmp_path: Path
) -> None:
    lines = sample_lines(3000, seed=24, invalid_ratio=0.0)
    produce_messages(env.topic, lines)
    assert env.replay("--from-beginning").code == 0
    before = {row[1]: row for row in read_rows(tdengine_sql, env.database)}  # by event_id
    corrected = corrected_schedule(env.schedule_text)
    path = tmp_path / "corrected.toml"
    path.write_text(corrected)
    run = env.replay("--from-beginning", "--fee-schedule", str(path))
    assert run.code == 0, run.output
    assert run.summary is not None and run.summary["fee_schedule"] == str(path)
    expected, _ = expected_ledger(lines, corrected)
    after_rows = assert_rows(tdengine_sql, env.database, expected)
    after = {row[1]: row for row in after_rows}
    assert after.keys() == before.keys()  # overwritten in place: no row added or lost
    version_2_us = 1_749_945_600_000_000  # 2025-06-15T00:00:00Z
    changed = {eid for eid in after if after[eid] != before[eid]}
    assert changed, "the corrected schedule changed no row"
    assert all(after[eid][0] >= version_2_us for eid in changed)
    old, _ = expected_ledger(lines, env.schedule_text)
    differs = {r[1] for r in expected - old}
    assert changed == differs  # exactly the rows whose values the new version changes


def test_dry_run_writes_and_dead_letters_nothing(
    env: ReplayEnv, produce_messages: Any, tdengine_sql: Any, consumer_config: Any
) -> None:
    lines = sample_lines(1500, seed=25, invalid_ratio=0.05)
    produce_messages(env.topic, lines)
    expected, reasons = expected_ledger(lines, env.schedule_text)
    run = env.replay("--from-beginning", "--dry-run", "--commit-group", "dry-run-group")
    assert run.code == 0, run.output
    assert run.summary is not None
    assert run.summary["dry_run"] is True
    assert run.summary["rows_written"] == len(expected)  # derived and counted
    assert run.summary["dead_lettered"] == dict(Counter(reasons))
    assert len(run.summary["invalid"]) == len(reasons)
    databases = tdengine_sql("SHOW DATABASES")
    assert env.database not in {row[0] for row in databases["data"]}
    assert read_dead_letters(consumer_config(), env.dead_letter_topic) == []
    conf = consumer_config()
    assert committed_offsets(conf, "dry-run-group", env.topic, PARTITIONS) == [-1001] * PARTITIONS


def test_no_dead_letter_lists_invalid_messages_in_the_summary_file(
    env: ReplayEnv, produce_messages: Any, tdengine_sql: Any, consumer_config: Any
) -> None:
    lines = sample_lines(1200, seed=26, invalid_ratio=0.05)
    placed = produce_messages(env.topic, lines)
    expected, reasons = expected_ledger(lines, env.schedule_text)
    run = env.replay("--from-beginning", "--no-dead-letter")
    assert run.code == 0, run.output
    assert_rows(tdengine_sql, env.database, expected)
    assert run.summary is not None
    invalid = run.summary["invalid"]
    assert Counter(i["reason"] for i in invalid) == Counter(reasons)
    origin = {pos: line for pos, line in zip(placed, lines, strict=True)}
    for item in invalid:
        assert item["topic"] == env.topic
        assert item["value"].encode() == origin[(item["partition"], item["offset"])]
        assert item["detail"]
    assert read_dead_letters(consumer_config(), env.dead_letter_topic) == []


def test_start_below_the_low_watermark_fails_fast_and_reads_nothing(
    env: ReplayEnv, produce_messages: Any, kafka_bootstrap: str, tdengine_sql: Any
) -> None:
    produce_messages(env.topic, sample_lines(300, seed=27), partition=1)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    futures = admin.delete_records([TopicPartition(env.topic, 1, 120)])
    for future in futures.values():
        future.result(30)
    started = time.monotonic()
    run = env.replay("--from-offset", "1:50")
    assert run.code == 2, run.output
    assert "below the low watermark 120" in run.output
    assert f"{env.topic}[1]" in run.output
    assert time.monotonic() - started < 30
    assert env.database not in {row[0] for row in tdengine_sql("SHOW DATABASES")["data"]}
    # From the low watermark on, the same partition replays fine.
    ok = env.replay("--from-offset", "1:120")
    assert ok.code == 0, ok.output
    assert ok.summary is not None and ok.summary["messages_read"] == 180


def test_sigterm_stops_cleanly_with_progress_committed_and_an_incomplete_summary(
    env: ReplayEnv, produce_messages: Any, tdengine_sql: Any, consumer_config: Any
) -> None:
    lines = sample_lines(24_000, seed=28)
    produce_messages(env.topic, lines)
    expected, _ = expected_ledger(lines, env.schedule_text)
    group = "replay-sigterm-test"
    conf = consumer_config()
    proc, summary_path, log = env.start(
        "--from-beginning", "--commit-group", group, env={"BALANCE_SINK_BATCH__MAX_ROWS": "800"}
    )

    def some_progress() -> bool:
        return sum(max(o, 0) for o in committed_offsets(conf, group, env.topic, PARTITIONS)) > 0

    wait_until(some_progress, 60, "a first progress commit", every=0.05,
               on_timeout=lambda: log.read_text())  # fmt: skip
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 1, log.read_text()
    summary = json.loads(summary_path.read_text())
    assert summary["completed"] is False
    assert "--resume" in summary["error"]
    nexts = [p["next_offset"] for p in sorted(summary["partitions"], key=lambda p: p["partition"])]
    # Everything it read is stored and committed; a partition not reached has its start.
    assert committed_offsets(conf, group, env.topic, PARTITIONS) == nexts
    assert sum(nexts) < len(lines)
    resumed = env.replay("--resume", "--commit-group", group)
    assert resumed.code == 0, resumed.output
    assert resumed.summary is not None
    assert resumed.summary["messages_read"] == len(lines) - sum(nexts)
    assert_rows(tdengine_sql, env.database, expected)
