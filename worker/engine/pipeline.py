"""The message-to-ledger steps shared by the worker (``run``) and ``replay``.

:func:`derive_messages` turns what one ``consume()`` returned into rows and
rejections; :func:`store_batch` writes a batch to the sink, dead-letters its
rejections (and the messages whose rows the store refused) and waits for their
acknowledgement. Committing offsets, backoff and metrics stay with the callers: the
worker commits to its consumer group, ``replay`` optionally to a progress group.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Final, NamedTuple, Protocol

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, KafkaError, Message

from worker.core.deriver import Derivation
from worker.core.events import EVENTS_PER_TRADE
from worker.core.rejections import Rejection
from worker.engine.batch import Batch, Rejected
from worker.engine.sink import MessageKey, MessageRows, Sink
from worker.ops.logs import log_context

__all__ = (
    "SINK_REJECTED",
    "Consumed",
    "DeadLetters",
    "Stored",
    "derive_messages",
    "rejected_record",
    "store_batch",
)

logger = logging.getLogger(__name__)

SINK_REJECTED: Final = "sink_rejected"
"""Dead-letter reason of a message whose own rows the store refused."""


class DeadLetters(Protocol):
    """Where rejected messages go: the dead-letter topic, or a list (``replay``)."""

    def send(self, rejected: Rejected) -> None: ...
    def flush(self, timeout_s: float) -> None: ...
    def close(self, timeout_s: float = 10.0) -> None: ...


class Consumed(NamedTuple):
    """What one poll yielded, per partition ``(topic, partition)``."""

    rows: list[MessageRows]
    rejected: list[Rejected]
    row_count: int
    last_offsets: dict[tuple[str, int], int]
    """Each partition's last (highest) offset in the poll."""
    counts: dict[tuple[str, int], int]
    """Messages per partition (rows and rejections)."""


class Stored(NamedTuple):
    """The outcome of :func:`store_batch`."""

    rows_written: int
    dead_lettered: list[Rejected]
    """Every message dead-lettered: the batch's rejections, then those the store refused."""


def derive_messages(
    derive: Callable[[bytes], Derivation | Rejection],
    messages: Sequence[Message],
    on_error: Callable[[KafkaError], None],
) -> Consumed:
    """Derive every message; ``on_error`` gets the error events (which carry no offset)."""
    rows: list[MessageRows] = []
    rejected: list[Rejected] = []
    row_count = 0
    counts: dict[tuple[str, int], int] = {}
    last: dict[tuple[str, int], int] = {}
    for msg in messages:
        error = msg.error()
        if error is not None:
            on_error(error)
            continue
        value = msg.value()
        result = derive(value if isinstance(value, bytes) else b"")
        # A message without an error always has topic, partition and offset.
        key = MessageKey(msg.topic(), msg.partition(), msg.offset())  # type: ignore[arg-type]
        if isinstance(result, Rejection):
            rejected.append(rejected_record(msg, key, result.reason, result.detail))
        else:
            rows.append(MessageRows(key, result, msg))
            row_count += EVENTS_PER_TRADE
        tp = (key.topic, key.partition)
        counts[tp] = counts.get(tp, 0) + 1
        last[tp] = key.offset
    return Consumed(rows, rejected, row_count, last, counts)


def store_batch(
    batch: Batch, sink: Sink, dead_letters: DeadLetters, dead_letter_timeout_s: float
) -> Stored:
    """Write the rows, dead-letter the rejections, wait for the dead-letter acks.

    Raises what the sink raises (``TransientStoreError``: retry the whole batch later,
    safe because rows overwrite themselves; ``FatalStoreError``) before anything is
    dead-lettered, and ``DeadLetterError`` when the dead-letter topic did not confirm.
    Only after a normal return may the batch's offsets be committed.
    """
    result = sink.write(batch.rows) if batch.rows else None
    rejected = list(batch.rejected)
    if result is not None and result.rejected:
        by_key = {rows.key: rows for rows in batch.rows}
        for key, reason in result.rejected:
            rows = by_key[key]  # type: ignore[index]
            logger.warning(
                "store refused a message's rows: %s", reason,
                extra=log_context(topic=rows.key.topic, partition=rows.key.partition,
                                  offset=rows.key.offset),
            )  # fmt: skip
            rejected.append(rejected_record(rows.source, rows.key, SINK_REJECTED, reason))
    for item in rejected:
        dead_letters.send(item)
    if rejected:
        dead_letters.flush(dead_letter_timeout_s)
    return Stored(result.rows_written if result is not None else 0, rejected)


def rejected_record(msg: Message, key: MessageKey, reason: str, detail: str) -> Rejected:
    """The dead-letter record of ``msg``: its key, value, timestamp and headers unchanged."""
    kind, ts = msg.timestamp()
    raw = msg.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    headers = [(k, v.encode() if isinstance(v, str) else v or b"") for k, v in pairs]
    record_key = msg.key()
    value = msg.value()
    return Rejected(
        key,
        record_key.encode() if isinstance(record_key, str) else record_key,
        value.encode() if isinstance(value, str) else value,
        ts if kind != TIMESTAMP_NOT_AVAILABLE else None,
        headers or None,
        reason,
        detail,
    )
