"""Replay planning and the replay loop, with a fake consumer (no broker)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest
from confluent_kafka import KafkaError

from standins.samples import fee_schedule_text, trade_lines
from worker.commands.replay import (
    PartitionRange,
    PartitionSummary,
    Replayer,
    ReplayError,
    ReplaySummary,
    RetentionLostError,
    format_summary,
    make_progress,
    plan_ranges,
)
from worker.core.deriver import Deriver
from worker.core.fee_schedule import parse_fee_schedule
from worker.engine.dead_letters import ListedDeadLetters
from worker.engine.engine import Engine
from worker.engine.sink import CountingSink, MessageRows, Sink, SinkResult
from worker.ops.metrics import Metrics
from worker.tdengine.errors import TransientStoreError

from .kafka_fakes import FakeConsumer, T, engine_settings, message


def test_plan_ranges_defaults_to_the_high_watermark_and_clamps_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    marks = {(T, 0): (0, 100), (T, 1): (10, 50), (T, 2): (0, 0)}
    with caplog.at_level(logging.WARNING):
        ranges = plan_ranges({(T, 0): 20, (T, 1): 60, (T, 2): 0}, marks, {(T, 0): 500})
    assert ranges == [
        PartitionRange(T, 0, 20, 100),  # end 500 is past the high watermark
        PartitionRange(T, 1, 50, 50),  # start past the high watermark: nothing to do
        PartitionRange(T, 2, 0, 0),
    ]
    assert [r.size for r in ranges] == [80, 0, 0]
    assert "end beyond the high watermark" in caplog.text
    assert "start beyond the high watermark" in caplog.text


def test_plan_ranges_end_before_start_is_empty() -> None:
    assert plan_ranges({(T, 0): 30}, {(T, 0): (0, 100)}, {(T, 0): 10}) == [
        PartitionRange(T, 0, 30, 30)
    ]


def test_a_start_below_the_low_watermark_names_every_lost_partition() -> None:
    marks = {(T, 0): (100, 200), (T, 1): (0, 50), (T, 2): (7, 9)}
    with pytest.raises(RetentionLostError) as caught:
        plan_ranges({(T, 0): 99, (T, 1): 0, (T, 2): 3}, marks)
    text = str(caught.value)
    assert "trades[0]: start offset 99 is below the low watermark 100" in text
    assert "trades[2]: start offset 3 is below the low watermark 7" in text
    assert "offsets 3..6 were deleted" in text
    assert "trades[1]" not in text


# -- the loop, with a fake consumer -------------------------------------------------------


LINES = trade_lines(40, seed=5, invalid_ratio=0.0)


def replayer(
    consumer: FakeConsumer,
    ranges: list[PartitionRange],
    *,
    sink: Sink | None = None,
    dead_letters: ListedDeadLetters | None = None,
    commit: bool = True,
    max_retry_s: float = 5.0,
) -> Replayer:
    engine = Engine(
        consumer=consumer, deriver=Deriver(parse_fee_schedule(fee_schedule_text())),
        sink=sink or CountingSink(), dead_letters=dead_letters or ListedDeadLetters(),
        metrics=Metrics(), settings=engine_settings(max_rows=1000, retry_initial_backoff_ms=10),
        give_up_after_s=max_retry_s, clock=consumer.clock,
    )  # fmt: skip
    return Replayer(engine, ranges, commit=commit)


def test_reads_to_the_end_of_each_range_and_ignores_what_follows() -> None:
    p0 = [message(0, o, LINES[o]) for o in range(8)]
    p1 = [message(1, o, LINES[10 + o] if o != 2 else b"{oops") for o in range(3, 6)]
    consumer = FakeConsumer([p0[:3] + p1[:1], p0[3:] + p1[1:]])
    dead = ListedDeadLetters()
    r = replayer(consumer, [PartitionRange(T, 0, 0, 5), PartitionRange(T, 1, 3, 6),
                            PartitionRange(T, 2, 4, 4)], dead_letters=dead)  # fmt: skip
    r.run()
    assert consumer.assigned == [(T, 0, 0), (T, 1, 3)]  # the empty range is not assigned
    assert r.complete
    assert r.totals.messages == 5 + 3
    assert r.totals.rows == 4 * 8
    assert r.next_offsets == {(T, 0): 5, (T, 1): 6, (T, 2): 4}
    assert sorted(consumer.paused) == [(T, 0), (T, 1)]
    assert consumer.commits == [[(T, 0, 0), (T, 1, 3), (T, 2, 4)], [(T, 0, 5), (T, 1, 6)]]


def test_invalid_messages_are_listed_with_their_reason_and_value() -> None:
    msgs = [message(0, 0, LINES[0]), message(0, 1, b"[1]"), message(0, 2, LINES[2])]
    dead = ListedDeadLetters()
    r = replayer(FakeConsumer([msgs]), [PartitionRange(T, 0, 0, 3)], dead_letters=dead)
    r.run()
    assert r.totals.dead == {"invalid_type": 1}
    assert [(i.partition, i.offset, i.reason, i.value) for i in dead.items] == [
        (0, 1, "invalid_type", "[1]")
    ]


def test_partition_eof_at_the_end_finishes_a_partition_whose_last_offsets_are_markers() -> None:
    eof = KafkaError(KafkaError._PARTITION_EOF)
    early = message(0, 2, error=eof)  # the high watermark moved on since: keep reading
    consumer = FakeConsumer(
        [[message(0, 0, LINES[0]), message(0, 1, LINES[1]), early], [],
         [message(0, 2, LINES[2]), message(0, 5, error=eof)]]
    )  # fmt: skip
    r = replayer(consumer, [PartitionRange(T, 0, 0, 5)])
    r.run()
    assert r.complete and r.totals.messages == 3
    assert consumer.commits == [[(T, 0, 0)], [(T, 0, 3)]]
    assert r.next_offsets == {(T, 0): 5}


def test_an_offset_reset_stops_the_replay_instead_of_jumping() -> None:
    reset = message(0, -1, error=KafkaError(KafkaError._AUTO_OFFSET_RESET))
    r = replayer(FakeConsumer([[message(0, 0, LINES[0])], [reset]]),
                 [PartitionRange(T, 0, 0, 5)])  # fmt: skip
    with pytest.raises(ReplayError, match="offsets were lost"):
        r.run()


def test_without_a_progress_group_nothing_is_committed() -> None:
    consumer = FakeConsumer([[message(0, o, LINES[o]) for o in range(3)]])
    replayer(consumer, [PartitionRange(T, 0, 0, 3)], commit=False).run()
    assert consumer.commits == []


class FlakySink(CountingSink):
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def write(self, batch: Sequence[MessageRows]) -> SinkResult:
        self.calls += 1
        if self.calls <= self.failures:
            raise TransientStoreError("connection refused")
        return super().write(batch)


def test_a_failing_write_is_retried_whole_then_committed() -> None:
    sink = FlakySink(failures=2)
    consumer = FakeConsumer([[message(0, o, LINES[o]) for o in range(4)]])
    r = replayer(consumer, [PartitionRange(T, 0, 0, 4)], sink=sink)
    r.run()
    assert sink.calls == 3 and r.totals.rows == 16
    assert consumer.commits == [[(T, 0, 0)], [(T, 0, 4)]]


def test_a_write_failing_past_the_retry_budget_stops_without_committing() -> None:
    consumer = FakeConsumer([[message(0, 0, LINES[0])]])
    r = replayer(consumer, [PartitionRange(T, 0, 0, 1)], sink=FlakySink(10**6), max_retry_s=0.05)
    with pytest.raises(ReplayError, match="TDengine kept failing"):
        r.run()
    assert consumer.commits == [[(T, 0, 0)]]  # only the start: nothing was stored


def test_stop_stores_and_commits_what_was_read() -> None:
    consumer = FakeConsumer([[message(0, 0, LINES[0]), message(0, 1, LINES[1])]])
    r = replayer(consumer, [PartitionRange(T, 0, 0, 10)])
    consumer.between_polls.append(r.stop)  # asked to stop during the first poll
    r.run()
    assert not r.complete
    assert consumer.commits == [[(T, 0, 0)], [(T, 0, 2)]]
    assert r.next_offsets == {(T, 0): 2}


def test_summary_text_names_counts_partitions_and_errors() -> None:
    summary = ReplaySummary(
        completed=False, dry_run=True, messages_read=1234, rows_written=4800,
        dead_lettered={"invalid_json": 3, "unknown_symbol": 1}, duration_s=2.5,
        rate_messages_per_s=493.6, partitions=[PartitionSummary(T, 0, 10, 2000, 1244)],
        dead_letter_topic=None, commit_group="g", fee_schedule="f.toml", error="stopped",
    )  # fmt: skip
    text = format_summary(summary)
    assert text.splitlines()[0] == "replay INCOMPLETE (dry run: nothing written)"
    assert "messages read   1,234" in text
    assert "rows derived    4,800" in text
    assert "4 (invalid_json=3, unknown_symbol=1) listed in the summary" in text
    assert "494 messages/s" in text
    assert "trades[0]  10..2000  next 1244" in text
    assert "error: stopped" in text


def test_progress_is_log_lines_off_a_terminal_and_a_bar_when_asked(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    log = make_progress("auto", 200, 0.0)  # pytest's stdout is not a TTY
    with caplog.at_level(logging.INFO, logger="worker.commands.replay"):
        log.update(50)
        log.close()
    lines = [r for r in caplog.records if r.getMessage() == "replay progress"]
    assert len(lines) == 2
    assert lines[-1].ctx["percent"] == 25.0 and lines[-1].ctx["total"] == 200  # type: ignore[attr-defined]
    bar = make_progress("bar", 200, 10.0)
    bar.update(100)
    bar.close()
    out = capsys.readouterr().out
    assert "replay" in out and "50%" in out and "100/200" in out
    assert make_progress("off", 200, 10.0).__class__.__name__ == "_NoProgress"
