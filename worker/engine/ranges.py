"""Bounded reads: offset ranges per partition, and how far each has been read.

With ``assign()`` the engine reads each :class:`PartitionRange` from its start to its
end (exclusive) and then stops. :class:`RangeBounds` keeps the next offset per
partition, drops what lies past an end, and names the partitions whose range is read
(at an end offset, or at an end-of-partition event at or past it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from confluent_kafka import KafkaError, Message

from worker.engine.batch import TopicPartition as TP

__all__ = ("PartitionRange", "RangeBounds")


class PartitionRange(NamedTuple):
    """Offsets ``start`` (inclusive) to ``end`` (exclusive) of one partition."""

    topic: str
    partition: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return max(0, self.end - self.start)


class RangeBounds:
    """Where each range's read stands; see the module docstring."""

    def __init__(self, ranges: Sequence[PartitionRange]) -> None:
        self.ranges = {(r.topic, r.partition): r for r in ranges}
        self._next = {tp: r.start for tp, r in self.ranges.items()}
        self.reading = {tp for tp, r in self.ranges.items() if r.size}
        """Partitions whose range is not read to its end yet."""
        self._finished: list[TP] = []

    @property
    def next_offsets(self) -> dict[TP, int]:
        """The next offset to read per partition (the end once a partition is done)."""
        return dict(self._next)

    @property
    def done(self) -> int:
        """Offsets covered so far, over all ranges."""
        return sum(self._next[tp] - r.start for tp, r in self.ranges.items())

    @property
    def total(self) -> int:
        """Offsets covered by all ranges."""
        return sum(r.size for r in self.ranges.values())

    def admit(self, messages: Sequence[Message]) -> list[Message]:
        """The messages inside a range still being read, and any error other than EOF."""
        kept: list[Message] = []
        for msg in messages:
            tp = (msg.topic() or "", msg.partition() or 0)
            offset = msg.offset()
            error = msg.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    kept.append(msg)
                elif tp in self.reading and offset is not None and offset >= self.ranges[tp].end:
                    self._finish(tp)
                continue
            if tp not in self.reading:
                continue
            if offset is None or offset >= self.ranges[tp].end:
                self._finish(tp)
                continue
            kept.append(msg)
        return kept

    def advanced(self, last_offsets: Mapping[TP, int]) -> None:
        """Record the last offsets taken into the batch."""
        for tp, last in last_offsets.items():
            # An EOF in the same poll may already have moved this partition to its end.
            self._next[tp] = max(self._next[tp], last + 1)
            if last + 1 >= self.ranges[tp].end:
                self._finish(tp)

    def take_finished(self) -> list[TP]:
        """Partitions whose range was read to its end since the last call."""
        finished, self._finished = self._finished, []
        return finished

    def _finish(self, tp: TP) -> None:
        if tp in self.reading:
            self.reading.discard(tp)
            self._next[tp] = self.ranges[tp].end
            self._finished.append(tp)
