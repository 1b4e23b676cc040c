"""The real broker behaves as the sink relies on: commits, rebalances, replay by time;
and the engine's commits reach the high watermark on it even when some fail."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import Literal

import pytest
from confluent_kafka import (
    OFFSET_END,
    TIMESTAMP_CREATE_TIME,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from standins.samples import fee_schedule_text, trade_lines
from tests.fixtures.kafka import ConsumerConfigFactory, ProduceMessages, TopicFactory
from worker.core.deriver import Deriver
from worker.core.fee_schedule import parse_fee_schedule
from worker.engine.dead_letters import ListedDeadLetters
from worker.engine.engine import Engine
from worker.engine.kafka import RebalanceCallback
from worker.engine.sink import CountingSink
from worker.ops.config import LoopOptions
from worker.ops.metrics import Metrics

from .worker_support import committed_offsets, high_watermarks, wait_until

logger = logging.getLogger(__name__)

# func_only: the session broker's start-up (maybe a first jar download) is bounded by its
# own timeouts, not by the budget of whichever test happens to need it first.
pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120, func_only=True)]

_POLL_S = 0.1
_WAIT_S = 30.0


class RebalanceState:
    """Records one consumer's rebalance callbacks and the partitions it holds."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.owned: set[int] = set()
        self.events: list[tuple[str, tuple[int, ...]]] = []

    def _record(self, kind: str, partitions: list[TopicPartition]) -> set[int]:
        ids = {tp.partition for tp in partitions}
        self.events.append((kind, tuple(sorted(ids))))
        return ids

    def on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.owned |= self._record("assign", partitions)

    def on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.owned -= self._record("revoke", partitions)

    def on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.owned -= self._record("lost", partitions)

    @property
    def changes(self) -> list[tuple[str, tuple[int, ...]]]:
        """Events that moved partitions (cooperative rounds also call back with none)."""
        return [event for event in self.events if event[1]]

    def __repr__(self) -> str:
        return f"{self.name}: owned={sorted(self.owned)} events={self.events}"


def _subscribe(config: dict[str, object], topic: str, state: RebalanceState) -> Consumer:
    consumer = Consumer(config)
    consumer.subscribe(
        [topic], on_assign=state.on_assign, on_revoke=state.on_revoke, on_lost=state.on_lost
    )
    return consumer


def _poll_until(
    condition: Callable[[], bool],
    consumers: Sequence[Consumer],
    describe: Callable[[], str],
    timeout: float = _WAIT_S,
) -> None:
    """Poll every consumer (serving its callbacks) until ``condition`` holds or time is up."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not reached within {timeout:g}s: {describe()}")
        for consumer in consumers:
            msg = consumer.poll(_POLL_S)
            assert msg is None or msg.error() is None, msg.error()


def test_ten_thousand_messages_round_trip_with_manual_commits(
    topic_factory: TopicFactory,
    produce_messages: ProduceMessages,
    consumer_config: ConsumerConfigFactory,
) -> None:
    count, partitions = 10_000, 4
    topic = topic_factory(partitions)
    messages = [(f"key-{i}".encode(), f"value-{i}".encode()) for i in range(count)]

    started = time.perf_counter()
    placed = produce_messages(topic, messages)
    logger.info("produced messages=%d seconds=%.3f", count, time.perf_counter() - started)

    assert len(placed) == count
    per_partition = Counter(p for p, _ in placed)
    assert sorted(per_partition) == list(range(partitions)), per_partition

    consumer = Consumer(consumer_config())
    seen: dict[tuple[int, int], bytes] = {}
    started = time.perf_counter()
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + _WAIT_S
        while len(seen) < count and time.monotonic() < deadline:
            batch = consumer.consume(num_messages=1000, timeout=0.5)
            for msg in batch:
                assert msg.error() is None, msg.error()
                partition, offset, value = msg.partition(), msg.offset(), msg.value()
                assert partition is not None and offset is not None and value is not None
                assert (partition, offset) not in seen, f"redelivered {partition}/{offset}"
                seen[(partition, offset)] = value
            if batch:
                for tp in consumer.commit(asynchronous=False):
                    assert tp.error is None, tp
        assert len(seen) == count
        logger.info("consumed messages=%d seconds=%.3f", count, time.perf_counter() - started)

        # Every message exactly once, at the offset its delivery report gave.
        assert seen == {placed[i]: value for i, (_, value) in enumerate(messages)}

        # Committed offsets are the high watermarks: a restart would re-read nothing.
        committed = consumer.committed(
            [TopicPartition(topic, p) for p in range(partitions)], timeout=10.0
        )
        for tp in committed:
            assert tp.error is None, tp
            low, high = consumer.get_watermark_offsets(tp, timeout=10.0)
            assert (low, high) == (0, per_partition[tp.partition])
            assert tp.offset == high, f"partition {tp.partition}: committed {tp.offset} != {high}"
    finally:
        consumer.close()


def test_cooperative_sticky_group_splits_and_hands_back_partitions(
    topic_factory: TopicFactory, consumer_config: ConsumerConfigFactory
) -> None:
    topic = topic_factory(4)
    everything = {0, 1, 2, 3}
    config = consumer_config(**{"partition.assignment.strategy": "cooperative-sticky"})
    first, second = RebalanceState("first"), RebalanceState("second")

    def describe() -> str:
        return f"{first!r}; {second!r}"

    c1 = _subscribe(config, topic, first)
    c2: Consumer | None = None
    try:
        _poll_until(lambda: first.owned == everything, [c1], describe)
        assert first.changes == [("assign", (0, 1, 2, 3))]

        c2 = _subscribe(config, topic, second)
        _poll_until(
            lambda: len(first.owned) == 2 and len(second.owned) == 2,
            [c1, c2],
            describe,
        )
        assert first.owned | second.owned == everything
        assert first.owned.isdisjoint(second.owned)
        # Cooperative: the first consumer gave up only what moved, and kept the rest.
        moved = tuple(sorted(second.owned))
        assert first.changes == [("assign", (0, 1, 2, 3)), ("revoke", moved)]
        assert second.changes == [("assign", moved)]
        assert {tp.partition for tp in c1.assignment()} == first.owned
        assert {tp.partition for tp in c2.assignment()} == second.owned

        c2.close()  # leaves the group; its revoke callback runs inside close()
        c2 = None
        assert second.owned == set()
        assert second.changes[-1] == ("revoke", moved)

        _poll_until(lambda: first.owned == everything, [c1], describe)
        assert first.changes[-1] == ("assign", moved)  # incremental: only the returned ones
        assert {tp.partition for tp in c1.assignment()} == everything
        assert all(kind != "lost" for kind, _ in first.events + second.events), describe()
    finally:
        if c2 is not None:
            c2.close()
        c1.close()


def test_offsets_for_times_finds_replay_start(
    topic_factory: TopicFactory,
    produce_messages: ProduceMessages,
    consumer_config: ConsumerConfigFactory,
) -> None:
    topic = topic_factory(1)
    base = (int(time.time()) - 3600) * 1000  # an hour ago, on a whole second
    stamps = [base + 1000 * i for i in range(5)]
    placed = produce_messages(
        topic, [f"m{i}".encode() for i in range(5)], partition=0, timestamp_ms=lambda i: stamps[i]
    )
    assert placed == [(0, i) for i in range(5)]

    consumer = Consumer(consumer_config())
    try:

        def offset_for(timestamp_ms: int) -> int:
            (tp,) = consumer.offsets_for_times([TopicPartition(topic, 0, timestamp_ms)], 10.0)
            assert tp.error is None, tp
            return tp.offset

        assert offset_for(base - 60_000) == 0  # before the first message
        assert offset_for(stamps[0]) == 0
        assert offset_for(stamps[2]) == 2  # exact timestamp
        assert offset_for(stamps[2] + 1) == 3  # between two: the next message
        assert offset_for(stamps[2] + 999) == 3
        assert offset_for(stamps[4]) == 4
        assert offset_for(stamps[4] + 1) == OFFSET_END == -1  # past the end

        # Replaying from the found offset yields the messages with their CreateTime.
        consumer.assign([TopicPartition(topic, 0, offset_for(stamps[3]))])
        replayed: list[tuple[int, tuple[int, int]]] = []
        deadline = time.monotonic() + _WAIT_S
        while len(replayed) < 2 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None:
                assert msg.error() is None, msg.error()
                offset = msg.offset()
                assert offset is not None
                replayed.append((offset, msg.timestamp()))
        assert replayed == [
            (3, (TIMESTAMP_CREATE_TIME, stamps[3])),
            (4, (TIMESTAMP_CREATE_TIME, stamps[4])),
        ]
    finally:
        consumer.close()


def test_kip848_consumer_protocol_splits_and_hands_back_partitions(
    topic_factory: TopicFactory, consumer_config: ConsumerConfigFactory
) -> None:
    """The broker's group.consumer.* settings and the fixture's config for the new protocol."""
    topic = topic_factory(4)
    config = consumer_config(**{"group.protocol": "consumer"})
    assert "session.timeout.ms" not in config  # librdkafka rejects it with this protocol
    first, second = RebalanceState("first"), RebalanceState("second")

    def describe() -> str:
        return f"{first!r}; {second!r}"

    c1 = _subscribe(config, topic, first)
    c2: Consumer | None = None
    try:
        _poll_until(lambda: first.owned == {0, 1, 2, 3}, [c1], describe)
        c2 = _subscribe(config, topic, second)
        _poll_until(lambda: len(first.owned) == len(second.owned) == 2, [c1, c2], describe)
        assert first.owned.isdisjoint(second.owned)
        c2.close()
        c2 = None
        _poll_until(lambda: first.owned == {0, 1, 2, 3}, [c1], describe)
    finally:
        if c2 is not None:
            c2.close()
        c1.close()


class CommitFailingConsumer:
    """The real consumer, whose first commits fail with ``codes``, as during a rebalance."""

    def __init__(self, consumer: Consumer, codes: Sequence[int]) -> None:
        self._consumer = consumer
        self._failures = deque(codes)
        self.attempts: list[str] = []

    def commit(
        self, *, offsets: list[TopicPartition], asynchronous: Literal[False]
    ) -> list[TopicPartition]:
        if self._failures:
            error = KafkaError(self._failures.popleft())
            self.attempts.append(error.name())
            raise KafkaException(error)
        committed = self._consumer.commit(offsets=offsets, asynchronous=False)
        self.attempts.append("ok")
        return committed

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]:
        return self._consumer.consume(num_messages, timeout)

    def pause(self, partitions: list[TopicPartition]) -> None:
        self._consumer.pause(partitions)

    def resume(self, partitions: list[TopicPartition]) -> None:
        self._consumer.resume(partitions)

    def assign(self, partitions: list[TopicPartition]) -> None:
        self._consumer.assign(partitions)

    def subscribe(self, topics: list[str], **callbacks: RebalanceCallback | None) -> None:
        self._consumer.subscribe(topics, **callbacks)

    def close(self) -> None:
        self._consumer.close()


def test_partitions_idle_after_a_failed_commit_still_get_committed_to_the_high_watermark(
    topic_factory: TopicFactory,
    produce_messages: ProduceMessages,
    consumer_config: ConsumerConfigFactory,
) -> None:
    topic = topic_factory(2)
    lines = trade_lines(200, seed=3)
    for partition in (0, 1):  # both partitions get messages, then nothing more: both go idle
        produce_messages(topic, lines[partition::2], partition=partition)
    config = consumer_config()
    consumer = CommitFailingConsumer(
        Consumer(config),
        [KafkaError.ILLEGAL_GENERATION, KafkaError.REBALANCE_IN_PROGRESS,
         KafkaError.REQUEST_TIMED_OUT],
    )  # fmt: skip
    settings = LoopOptions(
        max_rows=100_000, max_bytes=10**9, linger_ms=200, max_in_flight=1, poll_timeout_ms=100,
        retry_initial_backoff_ms=200, retry_max_backoff_ms=1000, dead_letter_timeout_s=5.0,
        shutdown_timeout_s=10.0, not_ready_after_failing_s=60.0, summary_interval_s=60.0,
    )  # fmt: skip
    engine = Engine(
        consumer=consumer, deriver=Deriver(parse_fee_schedule(fee_schedule_text())),
        sink=CountingSink(), dead_letters=ListedDeadLetters(), metrics=Metrics(),
        settings=settings,
    )  # fmt: skip
    engine.subscribe([topic])
    failure: list[BaseException] = []

    def run() -> None:
        try:
            engine.run()
        except BaseException as exc:  # reported by the test thread
            failure.append(exc)

    runner = threading.Thread(target=run, name="engine")
    runner.start()
    group = str(config["group.id"])
    marks = high_watermarks(config, topic, 2)
    assert all(mark > 0 for mark in marks), marks  # the premise: both partitions had messages
    try:
        wait_until(
            lambda: committed_offsets(config, group, topic, 2) == marks or bool(failure),
            60, f"committed offsets at the high watermarks {marks}",
            on_timeout=lambda: f"commit attempts: {consumer.attempts}",
        )  # fmt: skip
        assert not failure, failure
        assert engine.totals.messages == sum(marks)
        # Every failure came before the success, and some commit was a retry: with one
        # commit per flush (the defect), the offsets would have stayed behind.
        assert consumer.attempts[:3] == [
            "ILLEGAL_GENERATION", "REBALANCE_IN_PROGRESS", "REQUEST_TIMED_OUT",
        ]  # fmt: skip
        assert "ok" in consumer.attempts[3:]
        assert len(consumer.attempts) > engine.totals.flushes
    finally:
        engine.stop()
        runner.join(30)
        engine.close()
    assert not failure, failure
