"""What one ``consume()`` returned, decoded: rows per message, or dead letters; and
what its error events mean."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any, Final, NamedTuple

from confluent_kafka import KafkaError, Message

from worker.core.events import EVENTS_PER_TRADE, BalanceEvent
from worker.core.rejections import Rejection
from worker.engine.batch import TopicPartition
from worker.engine.dead_letters import DeadLetter, dead_letter_of
from worker.engine.errors import EngineStopped
from worker.engine.sink import MessageKey, MessageRows
from worker.ops.logs import log_context

__all__ = ("DecodedBatch", "check_kafka_error", "decode_batch")

logger = logging.getLogger(__name__)

_new_tuple: Final[Any] = tuple.__new__
_PARTITION: Final = itemgetter(0, 1)
"""A :class:`MessageKey`'s ``(topic, partition)``."""
_OFFSET: Final = itemgetter(2)


class DecodedBatch(NamedTuple):
    """Rows and dead letters of one poll, with per-partition bookkeeping."""

    rows: list[MessageRows]
    dead_letters: list[DeadLetter]
    row_count: int
    last_offsets: dict[TopicPartition, int]
    """Each partition's last (highest) offset in the poll."""
    counts: dict[TopicPartition, int]
    """Messages per partition (rows and dead letters)."""


def decode_batch(
    messages: Sequence[Message],
    derive: Callable[[bytes], Sequence[BalanceEvent] | Rejection],
    on_error: Callable[[KafkaError], None],
) -> DecodedBatch:
    """Derive every message's rows; ``on_error`` gets the error events (they carry no data)."""
    rows: list[MessageRows] = []
    dead: list[DeadLetter] = []
    keys: list[MessageKey] = []
    add_rows, add_key = rows.append, keys.append
    for msg in messages:
        error = msg.error()
        if error is not None:
            on_error(error)
            continue
        # tuple.__new__: what the NamedTuples' own __new__ does, minus a Python call.
        key: MessageKey = _new_tuple(MessageKey, (msg.topic(), msg.partition(), msg.offset()))
        if key[2] is None or key[1] is None or key[0] is None:  # never without an error
            raise ValueError(f"a Kafka message without topic, partition or offset: {msg!r}")
        add_key(key)
        value = msg.value()
        result = derive(value if value.__class__ is bytes else b"")
        if result.__class__ is Rejection:
            dead.append(dead_letter_of(msg, key, result.reason, result.detail))
        else:
            add_rows(MessageRows(key, result, msg))  # type: ignore[arg-type]  # not a Rejection
    # Offsets ascend within a partition, so each partition's last key holds its highest.
    partitions = list(map(_PARTITION, keys))
    last = dict(zip(partitions, map(_OFFSET, keys), strict=True))
    return DecodedBatch(rows, dead, len(rows) * EVENTS_PER_TRADE, last, Counter(partitions))


def check_kafka_error(error: KafkaError) -> None:
    """An error event of a poll: ignored (end of partition), logged, or, when offsets
    were lost during the read or the client cannot go on, :class:`EngineStopped`."""
    code = error.code()
    if code == KafkaError._PARTITION_EOF:
        return
    if code == KafkaError._AUTO_OFFSET_RESET or error.fatal():
        raise EngineStopped(
            f"Kafka: {error.str()} ({error.name()}); offsets were lost during the read "
            "or the client cannot go on"
        )
    logger.warning("consumer error: %s", error.str(), extra=log_context(code=error.name()))
