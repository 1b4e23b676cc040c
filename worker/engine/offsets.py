"""Which offsets the engine owes its consumer group, per partition, and committing them.

The engine hands over the highest offset of every partition in a stored batch; the
:class:`OffsetTracker` owes the group that offset plus one (the next offset to read:
the only place the +1 is applied) until a commit of it succeeds. A failed commit leaves
it owed, and the :class:`Committer` commits it again after a backoff, even if the
partition never sees another message. An offset owed or committed only ever increases
within an assignment; revoked and lost partitions are released (a lost partition's
owed offset is dropped uncommitted).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Literal, NamedTuple, Protocol

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from worker.engine.backoff import Backoff
from worker.engine.batch import TopicPartition as TP
from worker.engine.errors import EngineStopped
from worker.errors import BalanceSinkError
from worker.ops.logs import log_context
from worker.ops.metrics import Metrics

__all__ = ("CommitResult", "Committer", "OffsetOrderError", "OffsetTracker")

logger = logging.getLogger(__name__)


class OffsetOrderError(BalanceSinkError):
    """An offset to commit is not above the last one owed or committed: a bug, so stop."""


class CommitResult(NamedTuple):
    """The partitions (with offsets) the broker accepted, and those it refused."""

    accepted: list[TopicPartition]
    refused: list[TopicPartition]


class _Committer(Protocol):
    def commit(
        self, *, offsets: list[TopicPartition], asynchronous: Literal[False]
    ) -> list[TopicPartition]: ...


class OffsetTracker:
    """Owed and committed offsets of the partitions the engine may commit."""

    __slots__ = ("_assigned", "_committed", "_owed")

    def __init__(self) -> None:
        self._assigned: set[TP] = set()
        self._owed: dict[TP, int] = {}
        self._committed: dict[TP, int] = {}

    @property
    def assigned(self) -> frozenset[TP]:
        """The partitions whose offsets may be committed."""
        return frozenset(self._assigned)

    def owes(self, only: Collection[TP] | None = None) -> bool:
        """Whether a commit is owed (for any of ``only``, if given)."""
        return any(only is None or tp in only for tp in self._owed)

    def assign(self, partitions: Iterable[TP]) -> None:
        """Start tracking ``partitions``."""
        self._assigned.update(partitions)

    def release(self, partitions: Iterable[TP]) -> None:
        """Stop tracking ``partitions``; whatever they still owe is dropped."""
        for tp in partitions:
            self._assigned.discard(tp)
            self._owed.pop(tp, None)
            self._committed.pop(tp, None)

    def stored(self, high_offsets: Mapping[TP, int]) -> None:
        """The messages up to ``high_offsets`` (inclusive) are stored: owe the next ones."""
        self.owe_next({tp: offset + 1 for tp, offset in high_offsets.items()})

    def owe_next(self, next_offsets: Mapping[TP, int]) -> None:
        """Owe the group ``next_offsets`` (next offsets to read) of assigned partitions.

        Raises :class:`OffsetOrderError` when one is not above what the partition
        already owes or committed.
        """
        for tp, offset in next_offsets.items():
            if tp not in self._assigned:
                continue  # revoked or lost meanwhile: its next owner commits
            last = max(self._owed.get(tp, -1), self._committed.get(tp, -1))
            if offset <= last:
                raise OffsetOrderError(
                    f"{tp[0]}[{tp[1]}]: offset {offset} to commit is not above {last}, "
                    "already owed or committed (the consumer position moved back)"
                )
            self._owed[tp] = offset

    def commit(self, consumer: _Committer, only: Collection[TP] | None = None) -> CommitResult:
        """Commit what is owed (for ``only``, if given) synchronously.

        Raises ``KafkaException`` when the request failed as a whole (everything stays
        owed); partitions the broker refused one by one stay owed too.
        """
        owed = sorted(tp for tp in self._owed if only is None or tp in only)
        if not owed:
            return CommitResult([], [])
        offsets = [TopicPartition(t, p, self._owed[(t, p)]) for t, p in owed]
        answered = consumer.commit(offsets=offsets, asynchronous=False) or offsets
        accepted: list[TopicPartition] = []
        refused: list[TopicPartition] = []
        for tp in answered:
            if tp.error is not None:
                refused.append(tp)
                continue
            accepted.append(tp)
            key = (tp.topic, tp.partition)
            self._committed[key] = max(self._committed.get(key, -1), tp.offset)
            if self._owed.get(key) == tp.offset:
                del self._owed[key]
        return CommitResult(accepted, refused)


class Committer:
    """Commits what the tracker owes; after a failure, again once a backoff has passed."""

    __slots__ = ("_backoff", "_clock", "_consumer", "_metrics", "retry_at", "tracker")

    def __init__(
        self,
        consumer: _Committer,
        tracker: OffsetTracker,
        metrics: Metrics,
        backoff: Backoff,
        clock: Callable[[], float],
    ) -> None:
        self._consumer = consumer
        self.tracker = tracker
        self._metrics = metrics
        self._backoff = backoff
        self._clock = clock
        self.retry_at = 0.0
        """When a failed commit may be tried again."""

    def due(self) -> bool:
        """Whether a commit is owed and its retry time has come."""
        return self.tracker.owes() and self._clock() >= self.retry_at

    def commit(self, only: Collection[TP] | None = None) -> bool:
        """Commit the owed offsets (of ``only``); False, and a retry scheduled, on failure.

        Raises :class:`~worker.engine.errors.EngineStopped` on a fatal Kafka error.
        """
        if not self.tracker.owes(only):
            return True
        try:
            result = self.tracker.commit(self._consumer, only)
        except KafkaException as exc:
            error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            if error is not None and error.fatal():
                raise EngineStopped(f"Kafka: commit failed fatally: {error.str()}") from exc
            self._failed(str(exc))
            return False
        for tp in result.accepted:
            self._metrics.committed_offset.labels(tp.topic, str(tp.partition)).set(tp.offset)
        if result.refused:
            refused = (f"{tp.topic}[{tp.partition}]: {tp.error}" for tp in result.refused)
            self._failed("; ".join(refused))
            return False
        self._metrics.commits.labels("ok").inc()
        self._backoff.reset()
        return True

    def _failed(self, reason: str) -> None:
        self._metrics.commits.labels("error").inc()
        delay = self._backoff.next_delay()
        self.retry_at = self._clock() + delay
        # The rows are stored; the offsets stay owed and are committed again.
        logger.warning(
            "commit failed, retrying: %s", reason, extra=log_context(retry_in_s=round(delay, 2))
        )
