"""Kafka test doubles for the engine: real ``Message`` objects, a fake clock and consumer.

:class:`FakeConsumer` hands out scripted polls (holding back paused partitions'
messages), records assign/pause/resume/commit calls, fails commits on request, and
advances a :class:`FakeClock` by each poll's timeout, so backoff and linger run on
simulated time: no test waits or times anything.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple, cast

import msgspec
from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from worker.ops.config import BatchSettings, LoopOptions, WorkerSettings

__all__ = ("FakeClock", "FakeConsumer", "T", "engine_settings", "kafka_exception", "message")

T = "trades"


def engine_settings(**changes: Any) -> LoopOptions:
    """``[batch]`` and ``[worker]`` for engine tests: nothing is due by itself (no linger
    within a test's polls), backoff from 0.1 s, writes inline (``max_in_flight=0``: one
    step shows all it did); ``changes`` override any field."""
    batch = BatchSettings(max_rows=10_000, max_bytes=10**9, linger_ms=60_000, max_in_flight=0)
    worker = WorkerSettings(retry_initial_backoff_ms=100, retry_max_backoff_ms=1000,
                            dead_letter_timeout_s=1.0, shutdown_timeout_s=5.0,
                            not_ready_after_failing_s=3.0)  # fmt: skip
    return msgspec.structs.replace(LoopOptions.of(batch, worker), **changes)


class FakeClock:
    """A monotonic clock that moves only when told to (from any thread)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += max(0.0, seconds)


def message(
    partition: int,
    offset: int,
    value: bytes = b"",
    error: KafkaError | None = None,
    *,
    topic: str = T,
) -> Message:
    """A real confluent_kafka ``Message`` as a consumer would return it."""
    return Message(
        topic=topic, partition=partition, offset=offset, value=value, error=error,
        timestamp=(1, 1_700_000_000_000),
    )  # fmt: skip


def kafka_exception(code: int) -> KafkaException:
    """What librdkafka raises when a whole request fails with ``code``."""
    return KafkaException(KafkaError(code))


Callback = Callable[[Any, list[TopicPartition]], None]


class _Refused(NamedTuple):
    """A partition in a commit answer with an error (TopicPartition.error is read-only)."""

    topic: str
    partition: int
    offset: int
    error: KafkaError


class FakeConsumer:
    """Scripted polls; every call the engine makes is recorded."""

    def __init__(
        self,
        polls: Sequence[Sequence[Message]] = (),
        *,
        clock: FakeClock | None = None,
        max_consumes: int = 100,
    ) -> None:
        self.polls: deque[Sequence[Message]] = deque(polls)
        self.clock = clock or FakeClock()
        self.max_consumes = max_consumes
        self.assigned: list[tuple[str, int, int]] = []
        self.paused: list[tuple[str, int]] = []
        self.resumed: list[tuple[str, int]] = []
        self.pausing: set[tuple[str, int]] = set()
        """Partitions paused now: their messages are held back."""
        self.commits: list[list[tuple[str, int, int]]] = []
        """Offsets of every commit the broker accepted, in order."""
        self.commit_failures: deque[KafkaException] = deque()
        """Raised by the next commits, one each, before any succeeds."""
        self.commit_refusals: deque[set[int]] = deque()
        """Partitions the broker refuses, one by one, in the next successful commits."""
        self.subscribed: list[str] = []
        self.callbacks: dict[str, Callback] = {}
        self.between_polls: deque[Callable[[], None]] = deque()
        """Run at the start of the next polls, one each (rebalances, stop requests)."""
        self.consumes = 0
        self.closed = False
        self.writes_run: Callable[[float], object] | None = None
        """Given a poll's timeout, lets a write on another thread end within it (real
        seconds), as a real poll does: the fake poll itself takes no real time."""

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]:
        self.consumes += 1
        assert self.consumes < self.max_consumes, "the engine did not stop by itself"
        if self.between_polls:
            self.between_polls.popleft()()
        if self.writes_run is not None and timeout > 0:
            self.writes_run(timeout)
        self.clock.advance(timeout)
        if not self.polls:
            return []
        poll = self.polls.popleft()
        held = [m for m in poll if (m.topic(), m.partition()) in self.pausing]
        given = [m for m in poll if (m.topic(), m.partition()) not in self.pausing]
        held += given[num_messages:]  # more than asked for: the rest comes next time
        if held:  # a paused partition's messages come once it is resumed
            self.polls.appendleft(held)
        return given[:num_messages]

    def commit(
        self, *, offsets: list[TopicPartition], asynchronous: Literal[False]
    ) -> list[TopicPartition]:
        assert asynchronous is False
        if self.commit_failures:
            raise self.commit_failures.popleft()
        refused = self.commit_refusals.popleft() if self.commit_refusals else set()
        accepted = [tp for tp in offsets if tp.partition not in refused]
        self.commits.append([(tp.topic, tp.partition, tp.offset) for tp in accepted])
        error = KafkaError(KafkaError.OFFSET_METADATA_TOO_LARGE)
        answer = [
            tp if tp.partition not in refused
            else cast(TopicPartition, _Refused(tp.topic, tp.partition, tp.offset, error))
            for tp in offsets
        ]  # fmt: skip
        return answer

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = [(tp.topic, tp.partition, tp.offset) for tp in partitions]

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused.extend((tp.topic, tp.partition) for tp in partitions)
        self.pausing.update((tp.topic, tp.partition) for tp in partitions)

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.resumed.extend((tp.topic, tp.partition) for tp in partitions)
        self.pausing.difference_update((tp.topic, tp.partition) for tp in partitions)

    def subscribe(self, topics: list[str], **callbacks: Callback | None) -> None:
        self.subscribed = list(topics)
        for name, callback in callbacks.items():
            if callback is not None:
                self.callbacks[name.removeprefix("on_")] = callback

    def rebalance(self, kind: Literal["assign", "revoke", "lost"], *partitions: int) -> None:
        """Call the engine's rebalance callback, as librdkafka does inside a poll."""
        self.callbacks[kind](self, [TopicPartition(T, p) for p in partitions])
        if kind != "assign":
            self.pausing.difference_update((T, p) for p in partitions)

    def close(self) -> None:
        self.closed = True
