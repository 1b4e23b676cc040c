"""The engine's buffer: messages read but not yet stored, across partitions.

Every message read enters the batch, as rows or as a dead letter, so the highest offset
of a partition in the batch is safe to commit (plus one) once the batch is flushed:
nothing below it is missing. Flushing is due at a row count, an estimated SQL size,
or an age, whichever comes first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Final

from worker.engine.dead_letters import DeadLetter
from worker.engine.sink import MessageRows

__all__ = ("ROW_SQL_BYTES", "Batch", "TopicPartition")

ROW_SQL_BYTES: Final = 120
"""Estimated bytes of SQL per row: a VALUES tuple of 12 integers plus its share of the
subtable header. Only the flush trigger uses it; the writer splits by exact length."""

TopicPartition = tuple[str, int]
"""A partition as the engine keys it: ``(topic, partition)``."""


class Batch:
    """Messages read since the last successful flush."""

    __slots__ = (
        "_clock", "created", "dead_letters", "high_offsets", "prepared", "row_count", "rows",
    )  # fmt: skip

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.rows: list[MessageRows] = []
        self.dead_letters: list[DeadLetter] = []
        self.high_offsets: dict[TopicPartition, int] = {}
        self.row_count = 0
        self.created = clock()
        self.prepared: object | None = None
        """The rows as a :class:`~worker.engine.sink.PreparingSink` prepared them."""

    def __len__(self) -> int:
        return len(self.rows) + len(self.dead_letters)

    @property
    def sql_bytes(self) -> int:
        """Estimated SQL bytes of the buffered rows."""
        return self.row_count * ROW_SQL_BYTES

    def add_consumed(
        self,
        rows: list[MessageRows],
        dead_letters: list[DeadLetter],
        row_count: int,
        last_offsets: dict[TopicPartition, int],
    ) -> None:
        """Add what one poll returned; ``last_offsets`` is each partition's last offset.

        Offsets within a partition arrive in increasing order, so the last one of a
        poll is that partition's highest so far.
        """
        if not self.high_offsets:  # the first messages: the batch's age starts now
            self.created = self._clock()
        self.rows.extend(rows)
        self.dead_letters.extend(dead_letters)
        self.row_count += row_count
        self.high_offsets.update(last_offsets)

    def is_due(self, *, max_rows: int, max_bytes: int, linger_s: float) -> bool:
        """Whether a flush is due now."""
        if not self.high_offsets:
            return False
        return (
            self.row_count >= max_rows
            or self.sql_bytes >= max_bytes
            or self._clock() - self.created >= linger_s
        )

    def drop_partitions(self, partitions: Collection[TopicPartition]) -> int:
        """Forget the messages of ``partitions`` (revoked or lost); returns how many."""
        gone = set(partitions)
        if not gone.intersection(self.high_offsets):
            return 0
        self.prepared = None  # it holds their rows
        before = len(self)
        self.rows = [r for r in self.rows if (r.key.topic, r.key.partition) not in gone]
        self.dead_letters = [
            d for d in self.dead_letters if (d.key.topic, d.key.partition) not in gone
        ]
        self.row_count = sum(len(r.events) for r in self.rows)
        for tp in gone:
            self.high_offsets.pop(tp, None)
        return before - len(self)
