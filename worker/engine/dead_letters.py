"""The dead-letter producer: rejected messages, unchanged, with the reason in headers.

The record keeps the original key, value, timestamp and headers, and gains headers
``reason``, ``detail``, ``source_topic``, ``source_partition``, ``source_offset`` and
``worker_version``. The producer is idempotent with ``acks=all``; the consumer commits
a source offset only after :meth:`DeadLetterProducer.flush` confirmed delivery.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from confluent_kafka import KafkaError, Message, Producer

from worker import __version__
from worker.engine.batch import Rejected
from worker.errors import BalanceSinkError
from worker.ops.kafka_logs import kafka_client_config

__all__ = ("DeadLetterError", "DeadLetterProducer", "dead_letter_headers")

logger = logging.getLogger(__name__)

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
        "check.crcs", "fetch.error.backoff.ms", "coordinator.query.interval.ms",
    }
)  # fmt: skip


class DeadLetterError(BalanceSinkError):
    """The dead-letter topic did not acknowledge records: the worker must stop."""


def dead_letter_headers(rejected: Rejected) -> list[tuple[str, bytes]]:
    """The original headers followed by balance-sink's own."""
    key = rejected.key
    return [
        *(rejected.headers or ()),
        ("reason", rejected.reason.encode()),
        ("detail", rejected.detail.encode()),
        ("source_topic", key.topic.encode()),
        ("source_partition", str(key.partition).encode()),
        ("source_offset", str(key.offset).encode()),
        ("worker_version", __version__.encode()),
    ]


class DeadLetterProducer:
    """Produces rejected messages to one topic and confirms their delivery."""

    def __init__(self, topic: str, client_config: Mapping[str, Any]) -> None:
        self.topic = topic
        config = {k: v for k, v in client_config.items() if k not in _CONSUMER_ONLY}
        config.update(_PRODUCER_DEFAULTS)
        self._producer = Producer(kafka_client_config(config))
        self._pending = 0
        self._failures: list[str] = []

    def send(self, rejected: Rejected) -> None:
        """Queue one record; :meth:`flush` tells whether it arrived."""
        kwargs: dict[str, Any] = {
            "key": rejected.record_key,
            "value": rejected.value,
            "headers": dead_letter_headers(rejected),
            "on_delivery": self._delivered,
        }
        if rejected.timestamp_ms is not None:
            kwargs["timestamp"] = rejected.timestamp_ms
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
