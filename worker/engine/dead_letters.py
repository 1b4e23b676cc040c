"""Dead letters: messages that cannot become rows, where they go, and how they are kept.

A :class:`DeadLetter` is the original record (key, value, timestamp, headers) plus
the reason and a detail. It goes to a :class:`DeadLetters` destination:

* :class:`DeadLetterProducer`: the dead-letter topic. The record keeps the original
  key, value, timestamp and headers, and gains headers ``reason``, ``detail``,
  ``source_topic``, ``source_partition``, ``source_offset`` and ``worker_version``.
  The producer is idempotent with ``acks=all``; the engine commits a source offset only
  after :meth:`DeadLetterProducer.flush` confirmed delivery.
* :class:`ListedDeadLetters`: a list of :class:`ListedDeadLetter` in memory (``replay
  --dry-run`` or ``--no-dead-letter``, where the summary file lists them; ``audit
  --against-topic``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final, NamedTuple, Protocol

import msgspec
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, KafkaError, Message, Producer

from worker import __version__
from worker.engine.sink import MessageKey
from worker.errors import BalanceSinkError
from worker.ops.kafka_logs import kafka_client_config

__all__ = (
    "SINK_REJECTED",
    "DeadLetter",
    "DeadLetterError",
    "DeadLetterProducer",
    "DeadLetters",
    "ListedDeadLetter",
    "ListedDeadLetters",
    "dead_letter_headers",
    "dead_letter_of",
)

logger = logging.getLogger(__name__)

SINK_REJECTED: Final = "sink_rejected"
"""Dead-letter reason of a message whose own rows the store refused."""

_PRODUCER_DEFAULTS: Final[Mapping[str, Any]] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 20,
    "compression.type": "lz4",
}
# Consumer-only and group properties that a Producer would warn about or refuse.
_CONSUMER_ONLY: Final = frozenset(
    {
        "group.id", "group.instance.id", "group.protocol", "group.remote.assignor",
        "auto.offset.reset", "enable.auto.commit", "enable.auto.offset.store",
        "partition.assignment.strategy", "session.timeout.ms", "heartbeat.interval.ms",
        "max.poll.interval.ms", "fetch.min.bytes", "fetch.wait.max.ms", "fetch.max.bytes",
        "max.partition.fetch.bytes", "queued.min.messages", "queued.max.messages.kbytes",
        "enable.partition.eof", "isolation.level", "auto.commit.interval.ms",
        "check.crcs", "fetch.error.backoff.ms", "fetch.queue.backoff.ms",
        "coordinator.query.interval.ms",
    }
)  # fmt: skip


class DeadLetterError(BalanceSinkError):
    """The dead-letter topic did not acknowledge records: the engine must stop."""


class DeadLetter(NamedTuple):
    """A message to dead-letter, with what its Kafka record carried."""

    key: MessageKey
    record_key: bytes | None
    value: bytes | None
    timestamp_ms: int | None
    headers: list[tuple[str, bytes]] | None
    reason: str
    detail: str


class DeadLetters(Protocol):
    """Where dead letters go: :meth:`send` each, then :meth:`flush` to confirm them all."""

    def send(self, dead: DeadLetter) -> None: ...
    def flush(self, timeout_s: float) -> None: ...
    def close(self, timeout_s: float = 10.0) -> None: ...


def dead_letter_of(msg: Message, key: MessageKey, reason: str, detail: str) -> DeadLetter:
    """The dead letter of ``msg``: its key, value, timestamp and headers unchanged."""
    kind, ts = msg.timestamp()
    raw = msg.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    headers = [(k, v.encode() if isinstance(v, str) else v or b"") for k, v in pairs]
    record_key = msg.key()
    value = msg.value()
    return DeadLetter(
        key,
        record_key.encode() if isinstance(record_key, str) else record_key,
        value.encode() if isinstance(value, str) else value,
        ts if kind != TIMESTAMP_NOT_AVAILABLE else None,
        headers or None,
        reason,
        detail,
    )


def dead_letter_headers(dead: DeadLetter) -> list[tuple[str, bytes]]:
    """The original headers followed by balance-sink's own."""
    key = dead.key
    return [
        *(dead.headers or ()),
        ("reason", dead.reason.encode()),
        ("detail", dead.detail.encode()),
        ("source_topic", key.topic.encode()),
        ("source_partition", str(key.partition).encode()),
        ("source_offset", str(key.offset).encode()),
        ("worker_version", __version__.encode()),
    ]


class DeadLetterProducer:
    """Produces dead letters to one topic and confirms their delivery."""

    def __init__(self, topic: str, client_config: Mapping[str, Any]) -> None:
        self.topic = topic
        config = {k: v for k, v in client_config.items() if k not in _CONSUMER_ONLY}
        config.update(_PRODUCER_DEFAULTS)
        self._producer = Producer(kafka_client_config(config))
        self._pending = 0
        self._failures: list[str] = []

    def send(self, dead: DeadLetter) -> None:
        """Queue one record; :meth:`flush` tells whether it arrived."""
        kwargs: dict[str, Any] = {
            "key": dead.record_key,
            "value": dead.value,
            "headers": dead_letter_headers(dead),
            "on_delivery": self._delivered,
        }
        if dead.timestamp_ms is not None:
            kwargs["timestamp"] = dead.timestamp_ms
        while True:
            try:
                self._producer.produce(self.topic, **kwargs)
                break
            except BufferError:  # local queue full: serve callbacks, then try again
                self._producer.poll(0.1)
        self._pending += 1

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        self._pending -= 1
        if error is not None:
            self._failures.append(f"{error.name()}: {error.str()}")

    def flush(self, timeout_s: float) -> None:
        """Wait for every queued record; raise :class:`DeadLetterError` if any failed."""
        if self._pending:
            self._producer.flush(timeout_s)
        if self._failures:
            failures, self._failures = self._failures, []
            raise DeadLetterError(
                f"dead-letter topic {self.topic!r} refused {len(failures)} record(s): {failures[0]}"
            )
        if self._pending:
            raise DeadLetterError(
                f"dead-letter topic {self.topic!r} did not acknowledge {self._pending} "
                f"record(s) within {timeout_s:.0f} s"
            )

    def close(self, timeout_s: float = 10.0) -> None:
        self._producer.flush(timeout_s)


class ListedDeadLetter(msgspec.Struct, frozen=True):
    """A dead letter as a summary lists it: where it was, why, and its value as text."""

    topic: str
    partition: int
    offset: int
    reason: str
    detail: str
    value: str | None


class ListedDeadLetters:
    """Keeps dead letters in :attr:`items` instead of producing them."""

    def __init__(self) -> None:
        self.items: list[ListedDeadLetter] = []

    def send(self, dead: DeadLetter) -> None:
        key = dead.key
        value = None if dead.value is None else dead.value.decode("utf-8", "replace")
        self.items.append(
            ListedDeadLetter(key.topic, key.partition, key.offset, dead.reason, dead.detail, value)
        )

    def flush(self, timeout_s: float) -> None:
        pass

    def close(self, timeout_s: float = 10.0) -> None:
        pass
