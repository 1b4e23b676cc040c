"""The Kafka consumer calls the engine makes; a confluent_kafka ``Consumer`` has them all."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

from confluent_kafka import Message, TopicPartition

__all__ = ("KafkaConsumer", "RebalanceCallback", "range_consumer_config")

RebalanceCallback = Callable[[Any, list[TopicPartition]], None]


class KafkaConsumer(Protocol):
    """The subset of ``confluent_kafka.Consumer`` the engine uses (tests pass fakes)."""

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]: ...
    def commit(
        self, *, offsets: list[TopicPartition], asynchronous: Literal[False]
    ) -> list[TopicPartition]: ...
    def pause(self, partitions: list[TopicPartition]) -> None: ...
    def resume(self, partitions: list[TopicPartition]) -> None: ...
    def assign(self, partitions: list[TopicPartition]) -> None: ...
    def subscribe(
        self,
        topics: list[str],
        *,
        on_assign: RebalanceCallback | None = None,
        on_revoke: RebalanceCallback | None = None,
        on_lost: RebalanceCallback | None = None,
    ) -> None: ...
    def close(self) -> None: ...


def range_consumer_config(base: Mapping[str, Any], group: str) -> dict[str, Any]:
    """Consumer properties for reading ranges with ``assign()`` (``replay``, ``audit``).

    ``group`` only names where progress is committed (if at all); the consumer never
    joins it. An offset that disappears while reading stops the read instead of jumping
    (``auto.offset.reset=error``), and the end of a partition is reported.
    """
    config = dict(base)
    config.update(
        {
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "error",
        }
    )
    for key in ("statistics.interval.ms", "partition.assignment.strategy"):
        config.pop(key, None)
    return config
