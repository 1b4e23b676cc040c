"""The consumer's buffer: messages read but not yet stored, across partitions.

Every message read enters the batch, as rows or as a rejection, so the highest offset
of a partition in the batch is safe to commit (plus one) once the batch is flushed:
nothing below it is missing. Flushing is due at a row count, an estimated SQL size,
or an age, whichever comes first.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Final, NamedTuple

from worker.engine.sink import MessageKey, MessageRows

__all__ = ("ROW_SQL_BYTES", "Batch", "Rejected")

ROW_SQL_BYTES: Final = 120
"""Estimated bytes of SQL per row: a VALUES tuple of 12 integers plus its share of the
subtable header. Only the flush trigger uses it; the writer splits by exact length."""

TopicPartition = tuple[str, int]


class Rejected(NamedTuple):
    """A message to dead-letter, with what the Kafka record carried."""

    key: MessageKey
    record_key: bytes | None
    value: bytes | None
    timestamp_ms: int | None
    headers: list[tuple[str, bytes]] | None
    reason: str
    detail: str


class Batch:
    """Messages read since the last successful flush."""

    __slots__ = ("created", "high_offsets", "rejected", "row_count", "rows")

    def __init__(self) -> None:
        self.rows: list[MessageRows] = []
        self.rejected: list[Rejected] = []
        self.high_offsets: dict[TopicPartition, int] = {}
        self.row_count = 0
        self.created = time.monotonic()

    def __len__(self) -> int:
        return len(self.rows) + len(self.rejected)

    @property
    def sql_bytes(self) -> int:
        """Estimated SQL bytes of the buffered rows."""
        return self.row_count * ROW_SQL_BYTES

    def add_consumed(
        self,
        rows: list[MessageRows],
        rejected: list[Rejected],
        row_count: int,
        last_offsets: dict[TopicPartition, int],
    ) -> None:
        """Add what one poll returned; ``last_offsets`` is each partition's last offset.

        Offsets within a partition arrive in increasing order, so the last one of a
        poll is that partition's highest so far.
        """
        if not self.high_offsets:  # the first messages: the batch's age starts now
            self.created = time.monotonic()
        self.rows.extend(rows)
        self.rejected.extend(rejected)
        self.row_count += row_count
        self.high_offsets.update(last_offsets)

    def is_due(self, *, max_rows: int, max_bytes: int, linger_s: float) -> bool:
        """Whether a flush is due now."""
        if not self.high_offsets:
            return False
        return (
            self.row_count >= max_rows
            or self.sql_bytes >= max_bytes
            or time.monotonic() - self.created >= linger_s
        )

    def drop_partitions(self, partitions: Collection[TopicPartition]) -> int:
        """Forget the messages of ``partitions`` (revoked or lost); returns how many."""
        gone = set(partitions)
        if not gone.intersection(self.high_offsets):
            return 0
        before = len(self)
        self.rows = [r for r in self.rows if (r.key.topic, r.key.partition) not in gone]
        self.rejected = [r for r in self.rejected if (r.key.topic, r.key.partition) not in gone]
        self.row_count = sum(len(r.events) for r in self.rows)
        for tp in gone:
            self.high_offsets.pop(tp, None)
        return before - len(self)
