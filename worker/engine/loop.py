"""The consumer loop: poll, derive, buffer, flush, dead-letter, commit.

One thread consumes and derives; a flush writes the whole batch to the sink, sends
rejected messages to the dead-letter topic, waits for their acknowledgement, and only
then commits, per partition, the highest offset of the batch plus one. Every message
read is in the batch (as rows or as a rejection), so nothing below a committed offset
is ever missing; a crash before the commit makes the next owner read the messages
again, and their rows overwrite themselves (exactly-once results from at-least-once
delivery).

While a flush fails transiently, every assigned partition is paused and the loop keeps
polling (so the member stays in the group) and retries with exponential backoff; the
buffer cannot grow while paused. Revoked partitions are flushed and committed before
they are given up; lost partitions are dropped without a commit.
"""

from __future__ import annotations

import logging
import random
import signal
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, Final, Protocol

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from worker.core.deriver import Deriver
from worker.engine.batch import Batch
from worker.engine.dead_letters import DeadLetterError, DeadLetterProducer
from worker.engine.pipeline import derive_messages, store_batch
from worker.engine.sink import Sink
from worker.errors import BalanceSinkError
from worker.ops.logs import log_context
from worker.ops.metrics import Metrics
from worker.tdengine.errors import FatalStoreError, TransientStoreError

__all__ = ("ConsumerLoop", "LoopSettings", "WorkerStopped")

logger = logging.getLogger(__name__)

_CONSUME_BATCH: Final = 2000
"""Messages taken from librdkafka per consume() call."""


class WorkerStopped(BalanceSinkError):
    """The worker stopped on a fatal condition; nothing further was committed."""


class LoopSettings(Protocol):
    """What the loop needs from the configuration."""

    @property
    def max_rows(self) -> int: ...
    @property
    def max_bytes(self) -> int: ...
    @property
    def linger_ms(self) -> int: ...
    @property
    def poll_timeout_ms(self) -> int: ...
    @property
    def retry_initial_backoff_ms(self) -> int: ...
    @property
    def retry_max_backoff_ms(self) -> int: ...
    @property
    def dead_letter_timeout_s(self) -> float: ...
    @property
    def shutdown_timeout_s(self) -> float: ...
    @property
    def not_ready_after_failing_s(self) -> float: ...
    @property
    def summary_interval_s(self) -> float: ...


class ConsumerLoop:
    """Runs one consumer-group member until stopped."""

    def __init__(
        self,
        *,
        consumer: Consumer,
        topics: Sequence[str],
        deriver: Deriver,
        sink: Sink,
        dead_letters: DeadLetterProducer,
        metrics: Metrics,
        settings: LoopSettings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._consumer = consumer
        self._topics = list(topics)
        self._deriver = deriver
        self._sink = sink
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._settings = settings
        self._clock = clock
        self._batch = Batch()
        self._assigned: set[tuple[str, int]] = set()
        self._paused = False
        self._failing_since: float | None = None
        self._retry_at = 0.0
        self._backoff_s = settings.retry_initial_backoff_ms / 1000
        self._stopping = False
        self._joined = False
        self._heartbeat = clock()
        self._totals = {"messages": 0, "rows": 0, "dead": 0, "flushes": 0}
        self._last_summary = clock()
        self._previous_handlers: dict[int, Any] = {}

    # -- health ------------------------------------------------------------------------

    def liveness(self) -> tuple[bool, str]:
        """Alive while the loop keeps iterating (a stuck poll or write is not alive)."""
        idle = self._clock() - self._heartbeat
        limit = max(60.0, 4 * self._settings.shutdown_timeout_s)
        if idle > limit:
            return False, f"consumer loop has not iterated for {idle:.0f} s"
        return True, "ok"

    def readiness(self) -> tuple[bool, str]:
        """Ready once in the group, unless flushes have failed for too long."""
        if not self._joined:
            return False, "not yet assigned by the consumer group"
        if self._failing_since is not None:
            failing = self._clock() - self._failing_since
            if failing > self._settings.not_ready_after_failing_s:
                return False, f"flushes failing for {failing:.0f} s"
        return True, "ok"

    @property
    def progress(self) -> dict[str, int]:
        """Totals so far: messages read, rows stored, messages dead-lettered, flushes."""
        return dict(self._totals)

    @property
    def buffered_messages(self) -> int:
        """Messages read but not yet flushed."""
        return len(self._batch)

    # -- lifecycle -------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish: flush, commit, leave the group."""
        self._stopping = True

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop the loop gracefully; the previous handlers come back
        when :meth:`run` returns."""

        def handler(signum: int, frame: FrameType | None) -> None:
            logger.info("stop requested", extra=log_context(signal=signal.Signals(signum).name))
            self.stop()

        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous_handlers[signum] = signal.signal(signum, handler)

    def _restore_signal_handlers(self) -> None:
        for signum, previous in self._previous_handlers.items():
            signal.signal(signum, previous)
        self._previous_handlers.clear()

    def run(self) -> None:
        """Consume until :meth:`stop`; raises :class:`WorkerStopped` on a fatal condition."""
        self._consumer.subscribe(
            self._topics, on_assign=self._on_assign, on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )  # fmt: skip
        try:
            while not self._stopping:
                self._iterate()
            self._shutdown()
        except (FatalStoreError, DeadLetterError, WorkerStopped) as exc:
            logger.critical("stopping on a fatal condition: %s", exc)
            self._close_quietly()
            raise WorkerStopped(str(exc)) from exc
        finally:
            self._restore_signal_handlers()

    def _iterate(self) -> None:
        self._heartbeat = self._clock()
        settings = self._settings
        messages = self._consumer.consume(_CONSUME_BATCH, settings.poll_timeout_ms / 1000)
        if messages:
            self._take(messages)
        if self._paused:
            if self._clock() >= self._retry_at:
                self._flush()
        elif self._batch.is_due(
            max_rows=settings.max_rows, max_bytes=settings.max_bytes,
            linger_s=settings.linger_ms / 1000,
        ):  # fmt: skip
            self._flush()
        self._metrics.buffered_rows.set(self._batch.row_count)
        if self._clock() - self._last_summary >= settings.summary_interval_s:
            self._summary()

    def _take(self, messages: list[Message]) -> None:
        taken = derive_messages(self._deriver.derive, messages, self._on_message_error)
        if taken.last_offsets:
            self._batch.add_consumed(
                taken.rows, taken.rejected, taken.row_count, taken.last_offsets
            )
        for (topic, partition), count in taken.counts.items():
            self._metrics.messages_consumed.labels(topic, str(partition)).inc(count)
        self._totals["messages"] += sum(taken.counts.values())

    def _on_message_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._PARTITION_EOF:
            return
        if error.fatal():
            raise WorkerStopped(f"fatal Kafka error: {error.str()}")
        logger.warning("consumer error: %s", error.str(), extra=log_context(code=error.name()))

    # -- flushing ------------------------------------------------------------------------

    def _flush(self) -> bool:
        """Store the batch, dead-letter its rejects, commit; False if retry is needed."""
        batch = self._batch
        if not len(batch):
            self._recovered()
            return True
        started = time.perf_counter()
        metrics = self._metrics
        try:
            stored = store_batch(
                batch, self._sink, self._dead_letters, self._settings.dead_letter_timeout_s
            )
        except TransientStoreError as exc:
            metrics.flush_duration.labels("transient_error").observe(time.perf_counter() - started)
            self._backpressure(exc)
            return False
        except FatalStoreError:
            metrics.flush_duration.labels("fatal_error").observe(time.perf_counter() - started)
            raise
        rejected = stored.dead_lettered
        for item in rejected:
            metrics.dead_lettered.labels(item.reason).inc()
        self._commit(batch.high_offsets)
        elapsed = time.perf_counter() - started
        rows_written = stored.rows_written
        metrics.flush_duration.labels("ok").observe(elapsed)
        metrics.events_written.inc(rows_written)
        refused = len(rejected) - len(batch.rejected)  # rows the store refused
        metrics.trades_written.inc(len(batch.rows) - refused)
        metrics.last_flush_timestamp.set(time.time())
        self._totals["rows"] += rows_written
        self._totals["dead"] += len(rejected)
        self._totals["flushes"] += 1
        logger.debug(
            "flushed",
            extra=log_context(messages=len(batch), rows=rows_written,
                              dead_lettered=len(rejected), seconds=round(elapsed, 4)),
        )  # fmt: skip
        self._batch = Batch()
        self._recovered()
        return True

    def _commit(self, high_offsets: dict[tuple[str, int], int]) -> None:
        offsets = [
            TopicPartition(topic, partition, offset + 1)
            for (topic, partition), offset in high_offsets.items()
            if (topic, partition) in self._assigned
        ]
        if not offsets:
            return
        try:
            committed = self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            self._metrics.commits.labels("error").inc()
            # Rows are stored; a failed commit only means they may be written again.
            logger.warning("commit failed, messages may be re-read: %s", exc)
            return
        self._metrics.commits.labels("ok").inc()
        for tp in committed or offsets:
            if tp.error is None:
                self._metrics.committed_offset.labels(tp.topic, str(tp.partition)).set(tp.offset)

    def _backpressure(self, exc: Exception) -> None:
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
        delay = self._backoff_s * (0.5 + random.random() / 2)
        self._retry_at = now + delay
        self._backoff_s = min(self._backoff_s * 2, self._settings.retry_max_backoff_ms / 1000)
        if not self._paused:
            self._pause_all()
        logger.warning(
            "flush failed, partitions paused, retrying: %s", exc,
            extra=log_context(retry_in_s=round(delay, 2), buffered_rows=self._batch.row_count),
        )  # fmt: skip

    def _recovered(self) -> None:
        self._backoff_s = self._settings.retry_initial_backoff_ms / 1000
        if self._failing_since is not None:
            logger.info(
                "flush succeeded again, resuming",
                extra=log_context(failed_for_s=round(self._clock() - self._failing_since, 1)),
            )
            self._failing_since = None
        if self._paused:
            self._resume_all()

    def _pause_all(self) -> None:
        parts = [TopicPartition(t, p) for t, p in self._assigned]
        if parts:
            self._consumer.pause(parts)
        self._paused = True
        self._metrics.paused.set(1)
        self._metrics.paused_partitions.set(len(parts))

    def _resume_all(self) -> None:
        parts = [TopicPartition(t, p) for t, p in self._assigned]
        if parts:
            self._consumer.resume(parts)
        self._paused = False
        self._metrics.paused.set(0)
        self._metrics.paused_partitions.set(0)

    # -- rebalancing ---------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._joined = True
        self._metrics.rebalances.labels("assign").inc()
        for tp in partitions:
            self._assigned.add((tp.topic, tp.partition))
        if self._paused and partitions:
            consumer.pause(partitions)
            self._metrics.paused_partitions.set(len(self._assigned))
        self._metrics.assigned_partitions.set(len(self._assigned))
        logger.info(
            "partitions assigned",
            extra=log_context(partitions=[f"{t.topic}[{t.partition}]" for t in partitions]),
        )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._metrics.rebalances.labels("revoke").inc()
        gone = {(tp.topic, tp.partition) for tp in partitions}
        if gone.intersection(self._batch.high_offsets) and not self._flush():
            dropped = self._batch.drop_partitions(gone)
            logger.warning(
                "could not flush revoked partitions; the next owner re-reads them",
                extra=log_context(dropped_messages=dropped),
            )
        self._forget(gone)
        logger.info("partitions revoked", extra=log_context(partitions=sorted(gone)))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._metrics.rebalances.labels("lost").inc()
        gone = {(tp.topic, tp.partition) for tp in partitions}
        dropped = self._batch.drop_partitions(gone)
        self._forget(gone)
        logger.warning(
            "partitions lost; buffered messages dropped uncommitted",
            extra=log_context(partitions=sorted(gone), dropped_messages=dropped),
        )

    def _forget(self, gone: set[tuple[str, int]]) -> None:
        self._assigned -= gone
        for topic, partition in gone:
            self._metrics.forget_partition(topic, partition)
        self._metrics.assigned_partitions.set(len(self._assigned))
        if not self._assigned:
            self._recovered_pause_state()

    def _recovered_pause_state(self) -> None:
        """With nothing assigned and nothing buffered, no flush is pending: unpause."""
        if self._paused and not len(self._batch):
            self._failing_since = None
            self._resume_all()

    # -- shutdown ------------------------------------------------------------------------

    def _shutdown(self) -> None:
        deadline = self._clock() + self._settings.shutdown_timeout_s
        while len(self._batch) and not self._flush():
            if self._clock() + self._backoff_s > deadline:
                logger.error(
                    "could not flush before shutdown; messages stay uncommitted and will be "
                    "re-read", extra=log_context(messages=len(self._batch)),
                )  # fmt: skip
                self._close_quietly()
                raise WorkerStopped("shutdown flush failed; nothing further committed")
            time.sleep(max(0.0, self._retry_at - self._clock()))
        self._summary()
        self._consumer.close()
        self._dead_letters.close()
        self._sink.close()
        logger.info("stopped cleanly")

    def _close_quietly(self) -> None:
        for close in (self._consumer.close, self._dead_letters.close, self._sink.close):
            try:
                close()
            except Exception as exc:
                logger.debug("error while closing: %s", exc)

    def _summary(self) -> None:
        self._last_summary = self._clock()
        logger.info("progress", extra=log_context(**self._totals, assigned=len(self._assigned),
                                                  paused=self._paused))  # fmt: skip
