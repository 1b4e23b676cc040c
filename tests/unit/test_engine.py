"""The engine with fake consumer, sink and dead letters: every path, on simulated time."""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence

import msgspec
import pytest
from confluent_kafka import KafkaError, KafkaException

from worker.engine.backoff import Backoff
from worker.engine.batch import ROW_SQL_BYTES
from worker.engine.dead_letters import DeadLetterError, ListedDeadLetters
from worker.engine.engine import EngineStopped
from worker.engine.signals import stop_on_signals
from worker.engine.sink import AllStored, CountingSink, MessageKey, MessageRows, SinkResult
from worker.ops.metrics import Metrics
from worker.tdengine.errors import FatalStoreError, PermanentStoreError

from .engine_support import LINES, RecordingSink, member, msgs, value
from .kafka_fakes import FakeConsumer, T, kafka_exception, message

BOTH_MODES = pytest.mark.parametrize("max_in_flight", [0, 1], ids=["inline", "thread"])
"""Writes inline (``batch.max_in_flight = 0``), or on the writer thread; tests that look
after every step at what one step did write inline."""
COMMIT_FAILURES = (
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.REQUEST_TIMED_OUT,
)


class RefusingSink(CountingSink):
    """Refuses the rows of the messages at ``offsets`` (a permanent error of their own)."""

    def __init__(self, offsets: set[int]) -> None:
        self.offsets = offsets

    def write(self, batch: Sequence[MessageRows]) -> SinkResult:
        refused = [r.key for r in batch if r.key.offset in self.offsets]
        stored = sum(len(r.events) for r in batch if r.key.offset not in self.offsets)
        error = PermanentStoreError("Timestamp data out of range", code=0x060B)
        return _Refused(stored, [(key, error) for key in refused])


class _Refused(msgspec.Struct, frozen=True):
    rows_written: int
    rejected: list[tuple[MessageKey, Exception]]


class FailingDeadLetters(ListedDeadLetters):
    def flush(self, timeout_s: float) -> None:
        raise DeadLetterError("dead-letter topic 'dlq' did not acknowledge 1 record(s)")


# -- flush triggers ----------------------------------------------------------------------


def test_a_flush_is_due_at_max_rows() -> None:
    consumer = FakeConsumer([msgs(0, range(2)), msgs(0, range(2, 3))])
    sink = RecordingSink()
    engine = member(consumer, 0, sink=sink, max_rows=8)  # two trades, four rows each
    engine.step()
    assert sink.batches == [[MessageKey(T, 0, 0), MessageKey(T, 0, 1)]]
    assert consumer.commits == [[(T, 0, 2)]]
    engine.step()  # one more trade: below max_rows, stays buffered
    assert engine.buffered_messages == 1 and len(sink.batches) == 1


def test_a_flush_is_due_at_max_bytes() -> None:
    consumer = FakeConsumer([msgs(0, range(1))])
    sink = RecordingSink()
    engine = member(consumer, 0, sink=sink, max_bytes=4 * ROW_SQL_BYTES)
    engine.step()
    assert len(sink.batches) == 1 and consumer.commits == [[(T, 0, 1)]]


def test_a_flush_is_due_when_the_oldest_message_lingered_long_enough() -> None:
    consumer = FakeConsumer([msgs(0, range(3))])
    sink = RecordingSink()
    engine = member(consumer, 0, sink=sink, linger_ms=1000)  # each poll takes 0.1 s
    for _ in range(10):  # the messages arrive with the first poll: 0.9 s old after ten
        engine.step()
    assert sink.batches == [] and engine.buffered_messages == 3
    engine.step()
    assert len(sink.batches) == 1 and consumer.commits == [[(T, 0, 3)]]


def test_a_poll_reads_no_more_than_fits_in_the_batch_so_it_is_due_at_max_rows() -> None:
    many = [message(0, o, LINES[o % len(LINES)]) for o in range(1500)]
    consumer = FakeConsumer([many])
    sink = RecordingSink()
    engine = member(consumer, 0, sink=sink, max_rows=1000 * 4)  # 1,000 trades
    engine.step()
    assert [len(batch) for batch in sink.batches] == [1000]  # not the whole poll of 1,500
    assert consumer.commits == [[(T, 0, 1000)]]
    engine.step()  # the rest: 500 messages, not due
    assert engine.buffered_messages == 500


# -- transient failure: pause, keep polling, retry, resume ---------------------------------


def test_a_transient_failure_pauses_every_partition_and_resumes_after_a_successful_retry() -> None:
    consumer = FakeConsumer([msgs(0, range(2)) + msgs(1, range(2, 4))])
    sink = RecordingSink(failures=2)
    metrics = Metrics()
    engine = member(consumer, 0, 1, sink=sink, metrics=metrics, max_rows=1)
    engine.step()  # the first write fails
    assert sorted(consumer.paused) == [(T, 0), (T, 1)] and engine.paused
    assert value(metrics, "balance_sink_paused") == 1
    assert consumer.commits == [] and engine.buffered_messages == 4
    polls = consumer.consumes
    while sink.batches == []:
        engine.step()
    assert consumer.consumes - polls >= 2, "kept polling (staying in the group) while paused"
    assert sink.failures == 0 and not engine.paused
    assert sorted(consumer.resumed) == [(T, 0), (T, 1)]
    assert consumer.commits == [[(T, 0, 2), (T, 1, 4)]]
    assert value(metrics, "balance_sink_paused") == 0
    assert (
        value(metrics, "balance_sink_flush_duration_seconds_count", outcome="transient_error") == 2
    )
    assert engine.health.failing_since is None


def test_flushes_failing_too_long_make_the_engine_not_ready_but_alive() -> None:
    consumer = FakeConsumer([msgs(0, range(1))])
    engine = member(consumer, 0, sink=RecordingSink(failures=10**6), max_rows=1)
    assert engine.health.readiness()[0]
    for _ in range(40):  # 4 s of polls, past not_ready_after_failing_s
        engine.step()
    ready, reason = engine.health.readiness()
    assert not ready and "flushes failing" in reason
    assert engine.health.liveness() == (True, "ok")
    assert consumer.commits == []


def test_an_assignment_while_paused_is_paused_too() -> None:
    consumer = FakeConsumer([msgs(0, range(1))])
    engine = member(consumer, 0, sink=RecordingSink(failures=10**6), max_rows=1)
    engine.step()
    consumer.rebalance("assign", 3)
    assert consumer.paused == [(T, 0), (T, 3)]


# -- dead letters ----------------------------------------------------------------------------


def test_invalid_messages_and_refused_rows_are_dead_lettered_before_the_commit() -> None:
    polls = [[message(0, 0, LINES[0]), message(0, 1, b"{oops"), message(0, 2, LINES[2])]]
    consumer = FakeConsumer(polls)
    dead = ListedDeadLetters()
    metrics = Metrics()
    engine = member(consumer, 0, sink=RefusingSink({2}), dead_letters=dead, metrics=metrics,
                    max_rows=1)  # fmt: skip
    engine.step()
    assert [(d.offset, d.reason) for d in dead.items] == [(1, "invalid_json"), (2, "sink_rejected")]
    assert "Timestamp data out of range" in dead.items[1].detail
    assert dead.items[1].value == LINES[2].decode()  # the original value, unchanged
    assert consumer.commits == [[(T, 0, 3)]]
    assert engine.totals.rows == 4 and engine.totals.dead == {"invalid_json": 1, "sink_rejected": 1}
    assert value(metrics, "balance_sink_trades_written_total") == 1


@BOTH_MODES
def test_unacknowledged_dead_letters_stop_the_engine_uncommitted(max_in_flight: int) -> None:
    consumer = FakeConsumer([[message(0, 0, b"{oops")]])
    engine = member(
        consumer,
        0,
        dead_letters=FailingDeadLetters(),
        max_rows=1,
        linger_ms=0,
        max_in_flight=max_in_flight,
    )
    with pytest.raises(EngineStopped, match="did not acknowledge"):
        engine.run()
    assert consumer.commits == []


# -- revoke and lost ---------------------------------------------------------------------------


@BOTH_MODES
def test_revoked_partitions_are_flushed_and_committed_before_they_are_given_up(
    max_in_flight: int,
) -> None:
    consumer = FakeConsumer([msgs(0, range(2)) + msgs(1, range(2, 4)), [], msgs(0, range(4, 5))])
    sink = RecordingSink()
    engine = member(consumer, 0, 1, sink=sink, linger_ms=10_000, max_in_flight=max_in_flight)
    engine.step()
    consumer.between_polls.append(lambda: consumer.rebalance("revoke", 1))
    engine.step()
    assert consumer.commits == [[(T, 0, 2), (T, 1, 4)]]  # flushed inside the revoke
    assert engine.assigned == {(T, 0)}
    engine.step()
    engine.stop()
    engine.run()
    assert consumer.commits[-1] == [(T, 0, 5)]


@BOTH_MODES
def test_a_revoke_commits_offsets_still_owed_from_a_failed_commit(max_in_flight: int) -> None:
    consumer = FakeConsumer([msgs(1, range(3))])
    consumer.commit_failures.append(kafka_exception(KafkaError.REBALANCE_IN_PROGRESS))
    engine = member(consumer, 1, max_rows=1, max_in_flight=max_in_flight)
    engine.step()  # stored; its commit failed
    assert consumer.commits == []
    consumer.rebalance("revoke", 1)  # before the retry time: the revoke commits it
    assert consumer.commits == [[(T, 1, 3)]]
    assert engine.assigned == frozenset()


@BOTH_MODES
def test_a_revoke_whose_flush_fails_drops_the_partitions_messages_uncommitted(
    max_in_flight: int,
) -> None:
    consumer = FakeConsumer([msgs(0, range(1)) + msgs(1, range(1, 3))])
    sink = RecordingSink(failures=1)
    engine = member(consumer, 0, 1, sink=sink, max_in_flight=max_in_flight)
    engine.step()
    consumer.rebalance("revoke", 1)
    assert engine.buffered_messages == 1 and consumer.commits == []
    engine.stop()
    engine.run()
    assert sink.batches[-1] == [MessageKey(T, 0, 0)]
    assert consumer.commits == [[(T, 0, 1)]]


@BOTH_MODES
def test_lost_partitions_drop_buffered_messages_and_owed_offsets_uncommitted(
    max_in_flight: int,
) -> None:
    consumer = FakeConsumer([msgs(0, range(2)) + msgs(1, range(2, 4)), msgs(1, range(4, 5))])
    consumer.commit_failures.append(kafka_exception(KafkaError.ILLEGAL_GENERATION))
    sink = RecordingSink()
    metrics = Metrics()
    engine = member(consumer, 0, 1, sink=sink, metrics=metrics, max_rows=16,
                    retry_initial_backoff_ms=1000, max_in_flight=max_in_flight)  # fmt: skip
    engine.step()  # both partitions stored; the commit failed: both owed
    engine.step()  # one more message of partition 1, buffered; no retry yet
    consumer.rebalance("lost", 1)
    assert engine.buffered_messages == 0
    engine.stop()
    engine.run()
    assert consumer.commits == [[(T, 0, 2)]]  # partition 1: neither owed nor buffered now
    assert len(sink.batches) == 1
    assert value(metrics, "balance_sink_rebalances_total", kind="lost") == 1


# -- fatal conditions --------------------------------------------------------------------------


@BOTH_MODES
def test_a_fatal_sink_error_stops_the_engine_and_nothing_is_committed_even_on_close(
    max_in_flight: int,
) -> None:
    consumer = FakeConsumer([msgs(0, range(3))])
    sink = RecordingSink(failures=1, error=FatalStoreError("Authentication failure", code=0x357))
    engine = member(consumer, 0, sink=sink, max_rows=1, max_in_flight=max_in_flight)
    with pytest.raises(EngineStopped, match="Authentication failure"):
        engine.run()
    consumer.rebalance("revoke", 0)  # as during close(): no flush, no commit
    engine.close()
    assert consumer.commits == [] and consumer.closed and sink.closed
    assert sink.batches == []


@BOTH_MODES
def test_a_fatal_kafka_error_stops_the_engine(max_in_flight: int) -> None:
    fatal = KafkaError(KafkaError._FATAL, "fenced", fatal=True)
    consumer = FakeConsumer([[message(0, -1, error=fatal)]])
    engine = member(consumer, 0, max_in_flight=max_in_flight)
    with pytest.raises(EngineStopped, match="cannot go on"):
        engine.run()


@BOTH_MODES
def test_a_fatal_commit_error_stops_the_engine(max_in_flight: int) -> None:
    consumer = FakeConsumer([msgs(0, range(1))])
    fenced = KafkaError(KafkaError._FENCED, "fenced by a newer member", fatal=True)
    consumer.commit_failures.append(KafkaException(fenced))
    engine = member(consumer, 0, max_rows=1, max_in_flight=max_in_flight)
    with pytest.raises(EngineStopped, match="commit failed fatally"):
        engine.run()


# -- shutdown ------------------------------------------------------------------------------------


@BOTH_MODES
def test_stop_flushes_commits_and_leaves_the_group_when_closed(max_in_flight: int) -> None:
    consumer = FakeConsumer([msgs(0, range(3))])
    engine = member(consumer, 0, max_in_flight=max_in_flight)
    consumer.between_polls.extend([lambda: None, engine.stop])
    engine.run()
    assert consumer.commits == [[(T, 0, 3)]]
    assert engine.paused  # nothing new was read while draining
    engine.close()
    assert consumer.closed


@BOTH_MODES
def test_a_flush_still_failing_at_the_shutdown_deadline_stops_uncommitted(
    max_in_flight: int,
) -> None:
    consumer = FakeConsumer([msgs(0, range(3))])
    engine = member(
        consumer,
        0,
        sink=RecordingSink(failures=10**6),
        shutdown_timeout_s=2.0,
        max_in_flight=max_in_flight,
    )
    consumer.between_polls.extend([lambda: None, engine.stop])
    start = consumer.clock()
    with pytest.raises(EngineStopped, match="shutdown flush failed"):
        engine.run()
    assert consumer.commits == []
    assert consumer.clock() - start <= 2.0 + 0.1 + 0.1  # the deadline, two polls before it


# -- the commit defect: failed commits are retried ----------------------------------------------


def test_a_failed_commit_is_retried_with_backoff_though_no_message_arrives_after_it() -> None:
    consumer = FakeConsumer([msgs(0, range(5))])
    consumer.commit_failures.extend(kafka_exception(code) for code in COMMIT_FAILURES)
    metrics = Metrics()
    engine = member(consumer, 0, metrics=metrics, max_rows=1)
    engine.step()  # stored, then three commit attempts fail over the next polls
    attempts: list[float] = []
    while consumer.commits == []:
        failures = len(consumer.commit_failures)
        engine.step()
        if len(consumer.commit_failures) != failures or consumer.commits:
            attempts.append(consumer.clock())
    assert consumer.commits == [[(T, 0, 5)]]  # no message arrived after the first poll
    assert len(attempts) == 3  # the second, third and fourth attempts, each after a backoff
    assert attempts[1] - attempts[0] >= 0.1  # backoff doubles from 0.1 s (jittered)
    assert value(metrics, "balance_sink_commits_total", outcome="error") == 3
    assert value(metrics, "balance_sink_commits_total", outcome="ok") == 1
    assert value(metrics, "balance_sink_committed_offset", topic=T, partition="0") == 5


def test_an_owed_offset_is_replaced_by_a_later_one_and_never_goes_back() -> None:
    consumer = FakeConsumer([msgs(0, range(2)), msgs(0, range(2, 6))])
    consumer.commit_failures.append(kafka_exception(KafkaError.REQUEST_TIMED_OUT))
    engine = member(consumer, 0, max_rows=1)
    engine.step()  # owes 2; the commit fails
    engine.step()  # stores up to 5 before the retry time: one commit of 6
    assert consumer.commits == [[(T, 0, 6)]]


@BOTH_MODES
def test_offsets_owed_at_shutdown_are_committed_before_leaving(max_in_flight: int) -> None:
    consumer = FakeConsumer([msgs(0, range(2))])
    consumer.commit_failures.extend(kafka_exception(code) for code in COMMIT_FAILURES[:2])
    engine = member(consumer, 0, max_rows=1, max_in_flight=max_in_flight)
    consumer.between_polls.extend([lambda: None, engine.stop])
    engine.run()
    assert consumer.commits == [[(T, 0, 2)]]


@BOTH_MODES
def test_a_partition_the_broker_refuses_in_a_commit_stays_owed(max_in_flight: int) -> None:
    consumer = FakeConsumer([msgs(0, range(1)) + msgs(1, range(1, 2))])
    consumer.commit_refusals.append({1})
    engine = member(consumer, 0, 1, max_rows=1, max_in_flight=max_in_flight)
    engine.step()
    engine.stop()
    engine.run()
    assert consumer.commits == [[(T, 0, 1)], [(T, 1, 2)]]


# -- signals and backoff ---------------------------------------------------------------------------


def test_sigterm_inside_the_block_stops_and_the_previous_handler_comes_back() -> None:
    stopped: list[bool] = []
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals(lambda: stopped.append(True)):
        os.kill(os.getpid(), signal.SIGTERM)
    assert stopped == [True]
    assert signal.getsignal(signal.SIGTERM) is before


def test_backoff_doubles_up_to_the_maximum_with_jitter_in_its_upper_half() -> None:
    low, high = Backoff(0.1, 0.5, rng=lambda: 0.0), Backoff(0.1, 0.5, rng=lambda: 1.0)
    assert [round(low.next_delay(), 3) for _ in range(5)] == [0.05, 0.1, 0.2, 0.25, 0.25]
    assert [round(high.next_delay(), 3) for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    high.reset()
    assert high.next_delay() == 0.1


def test_all_stored_is_a_sink_result_without_refusals() -> None:
    result: SinkResult = AllStored(8)
    assert (result.rows_written, list(result.rejected)) == (8, [])
