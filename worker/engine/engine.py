"""The stream engine: consume, decode, batch, store, dead-letter, commit.

One thread consumes and decodes; a flush writes the whole batch to the sink, sends its
dead letters and waits for their acknowledgement, and only then owes the consumer
group, per partition, the highest offset of the batch plus one (see
:mod:`worker.engine.offsets`), and commits it. Every message read is in the batch (as
rows or as a dead letter), so nothing below a committed offset is ever missing; a crash
before the commit makes the next reader read the messages again, and their rows
overwrite themselves (exactly-once results from at-least-once delivery). A commit that
fails stays owed and is retried with backoff on later iterations, before a revoked
partition is given up, and at the end.

While a flush fails transiently, every assigned partition is paused and the engine
keeps polling (so the member stays in the group) and retries with backoff; the batch
cannot grow while paused. Revoked partitions are flushed and committed before they are
given up; lost partitions are dropped without a commit.

Two ways to drive it, then :meth:`Engine.run`:

* :meth:`Engine.subscribe`: a consumer-group member that runs until :meth:`Engine.stop`
  (``balance-sink run``);
* :meth:`Engine.assign_ranges`: reads offset ranges to their end, then returns
  (``replay``, ``audit --against-topic``).

Either way it ends by draining: nothing new is read, the batch is flushed and owed
offsets are committed, with backoff, while polling serves rebalances.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from confluent_kafka import KafkaError, Message, TopicPartition

from worker.core.deriver import Deriver
from worker.engine.backoff import Backoff
from worker.engine.batch import Batch, TopicPartition as TP
from worker.engine.dead_letters import DeadLetterError, DeadLetters
from worker.engine.decode import decode_batch
from worker.engine.errors import EngineStopped, SinkGaveUp
from worker.engine.health import EngineHealth
from worker.engine.kafka import KafkaConsumer
from worker.engine.offsets import Committer, OffsetOrderError, OffsetTracker
from worker.engine.ranges import RangeBounds
from worker.engine.settings import EngineSettings
from worker.engine.sink import Sink, SinkFatalError, SinkTransientError
from worker.engine.store import store_batch
from worker.ops.logs import log_context
from worker.ops.metrics import Metrics

__all__ = ("CONSUME_BATCH", "Engine", "EngineSettings", "EngineStopped", "SinkGaveUp", "Totals")

logger = logging.getLogger(__name__)

CONSUME_BATCH: Final = 2000
"""Messages taken from librdkafka per consume() call."""


@dataclass(slots=True)
class Totals:
    """What the engine did so far."""

    messages: int = 0
    """Messages read (rows or dead letters)."""
    rows: int = 0
    """Rows the sink stored (or counted)."""
    dead: Counter[str] = field(default_factory=Counter)
    """Messages dead-lettered, by reason."""
    flushes: int = 0


class Engine:
    """Runs one consumer through the pipeline; see the module docstring.

    Parameters
    ----------
    give_up_after_s:
        Stop with :class:`SinkGaveUp` once flushes have failed for this long; ``None``
        (the worker) keeps retrying, paused, for as long as it takes.
    clock:
        Monotonic clock of linger, backoff, health and deadlines (tests pass a fake).
    """

    def __init__(
        self,
        *,
        consumer: KafkaConsumer,
        deriver: Deriver,
        sink: Sink,
        dead_letters: DeadLetters,
        metrics: Metrics,
        settings: EngineSettings,
        give_up_after_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._consumer = consumer
        self._derive = deriver.derive
        self._sink = sink
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._settings = settings
        self._give_up_after_s = give_up_after_s
        self._clock = clock
        self._batch = Batch(clock)
        self._tracker = OffsetTracker()
        self._commits = True
        self._bounds: RangeBounds | None = None
        self._held: set[TP] = set()
        """Partitions paused for good: their range is read."""
        initial_s = settings.retry_initial_backoff_ms / 1000
        max_s = settings.retry_max_backoff_ms / 1000
        self._flush_backoff = Backoff(initial_s, max_s)
        self._retry_at = 0.0
        self.health = EngineHealth(settings, clock)
        self._paused = False
        self._draining = False
        self._stopping = False
        self._failed = False
        self._committer = Committer(
            consumer, self._tracker, metrics, Backoff(initial_s, max_s), clock
        )
        self.totals = Totals()

    # -- progress ---------------------------------------------------------------------

    @property
    def buffered_messages(self) -> int:
        """Messages read but not yet flushed."""
        return len(self._batch)

    @property
    def assigned(self) -> frozenset[TP]:
        """Partitions the engine reads and commits."""
        return self._tracker.assigned

    @property
    def paused(self) -> bool:
        """Whether consumption is paused (the sink is failing, or the engine drains)."""
        return self._paused

    # -- driving -----------------------------------------------------------------------

    def subscribe(self, topics: Sequence[str]) -> None:
        """Join the consumer group on ``topics``; partitions come and go by rebalance."""
        self._consumer.subscribe(
            list(topics), on_assign=self._on_assign, on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )  # fmt: skip

    def assign_ranges(self, bounds: RangeBounds, *, commit: bool) -> None:
        """Read the ranges of ``bounds`` to their end; with ``commit``, commit progress.

        With ``commit`` every start is committed first, so a resume after any stop
        knows where each partition begins, even one that had nothing read yet.
        """
        self._bounds = bounds
        self._commits = commit
        self.health.reading = True
        self._tracker.assign(bounds.ranges)
        self._held.update(tp for tp in bounds.ranges if tp not in bounds.reading)
        if commit and bounds.ranges:
            self._tracker.owe_next({tp: r.start for tp, r in bounds.ranges.items()})
            self._committer.commit()
        if bounds.reading:
            starts = [(t, p, bounds.ranges[(t, p)].start) for t, p in sorted(bounds.reading)]
            self._consumer.assign([TopicPartition(t, p, o) for t, p, o in starts])

    def stop(self) -> None:
        """Finish: stop reading, flush and commit what was read, then :meth:`run` returns."""
        self._stopping = True

    def run(self, on_step: Callable[[], None] | None = None) -> None:
        """Consume until :meth:`stop` (or every range is read), then drain.

        ``on_step`` is called after every iteration and once at the end. Raises
        :class:`EngineStopped` on a fatal condition (nothing further is committed).
        """
        try:
            while not self._stopping and not self._ranges_read():
                self.step()
                if on_step is not None:
                    on_step()
            self._drain()
        except EngineStopped as exc:
            self._fail(exc)
            raise
        except (SinkFatalError, DeadLetterError, OffsetOrderError) as exc:
            self._fail(exc)
            raise EngineStopped(str(exc)) from exc
        except BaseException:
            self._failed = True
            raise
        if on_step is not None:
            on_step()

    def close(self) -> None:
        """Leave the group, then close the dead-letter producer and the sink.

        After a fatal condition, errors while closing are only logged, and a revoke
        during the close commits nothing.
        """
        for close in (self._consumer.close, self._dead_letters.close, self._sink.close):
            if not self._failed:
                close()
                continue
            try:
                close()
            except Exception as exc:
                logger.debug("error while closing: %s", exc)

    def _fail(self, exc: Exception) -> None:
        self._failed = True
        logger.critical("stopping on a fatal condition: %s", exc)

    def _ranges_read(self) -> bool:
        return self._bounds is not None and not self._bounds.reading

    # -- one iteration -------------------------------------------------------------------

    def step(self) -> None:
        """One iteration: poll, flush when due (or when a failed flush may be retried),
        and commit owed offsets whose retry time has come. :meth:`run` loops on it."""
        self.health.beat()
        now = self._clock()
        timeout = self._settings.poll_timeout_ms / 1000
        if self._paused:
            timeout = min(timeout, max(0.0, self._retry_at - now))
        messages = self._consumer.consume(CONSUME_BATCH, timeout)
        if messages:
            self._take(messages)
        settings = self._settings
        if self._paused:
            if self._clock() >= self._retry_at:
                self._flush()
        elif self._batch.is_due(
            max_rows=settings.max_rows, max_bytes=settings.max_bytes,
            linger_s=settings.linger_ms / 1000,
        ):  # fmt: skip
            self._flush()
        if self._committer.due():
            self._committer.commit()
        self._metrics.buffered_rows.set(self._batch.row_count)

    def _take(self, messages: list[Message]) -> None:
        bounds = self._bounds
        if bounds is not None:
            messages = bounds.admit(messages)
        decoded = decode_batch(messages, self._derive, self._on_kafka_error)
        if decoded.last_offsets:
            self._batch.add_consumed(
                decoded.rows, decoded.dead_letters, decoded.row_count, decoded.last_offsets
            )
        if bounds is not None:
            bounds.advanced(decoded.last_offsets)
            for tp in bounds.take_finished():
                self._hold(tp, bounds.ranges[tp].end)
        for (topic, partition), count in decoded.counts.items():
            self._metrics.messages_consumed.labels(topic, str(partition)).inc(count)
        self.totals.messages += sum(decoded.counts.values())

    def _on_kafka_error(self, error: KafkaError) -> None:
        code = error.code()
        if code == KafkaError._PARTITION_EOF:
            return
        if code == KafkaError._AUTO_OFFSET_RESET or error.fatal():
            raise EngineStopped(
                f"Kafka: {error.str()} ({error.name()}); offsets were lost during the read "
                "or the client cannot go on"
            )
        logger.warning("consumer error: %s", error.str(), extra=log_context(code=error.name()))

    def _hold(self, tp: TP, end: int) -> None:
        """Pause ``tp`` for good: its range is read."""
        self._held.add(tp)
        self._consumer.pause([TopicPartition(*tp)])
        logger.info("partition done", extra=log_context(topic=tp[0], partition=tp[1], end=end))

    # -- flushing ------------------------------------------------------------------------

    def _flush(self) -> bool:
        """Store the batch, dead-letter, commit; False when it must be retried later."""
        batch = self._batch
        if not len(batch):
            self._recovered()
            return True
        metrics = self._metrics
        started = time.perf_counter()
        try:
            rows_written, dead = store_batch(
                batch, self._sink, self._dead_letters, self._settings.dead_letter_timeout_s
            )
        except SinkTransientError as exc:
            metrics.flush_duration.labels("transient_error").observe(time.perf_counter() - started)
            self._backpressure(exc)
            return False
        except SinkFatalError:
            metrics.flush_duration.labels("fatal_error").observe(time.perf_counter() - started)
            raise
        self._batch = Batch(self._clock)
        if self._commits:
            self._tracker.stored(batch.high_offsets)
            self._committer.commit()
        elapsed = time.perf_counter() - started
        for item in dead:
            metrics.dead_lettered.labels(item.reason).inc()
        metrics.flush_duration.labels("ok").observe(elapsed)
        metrics.events_written.inc(rows_written)
        refused = len(dead) - len(batch.dead_letters)  # messages whose rows the store refused
        metrics.trades_written.inc(len(batch.rows) - refused)
        metrics.last_flush_timestamp.set(time.time())
        totals = self.totals
        totals.rows += rows_written
        totals.dead.update(item.reason for item in dead)
        totals.flushes += 1
        logger.debug(
            "flushed",
            extra=log_context(messages=len(batch), rows=rows_written, dead_lettered=len(dead),
                              seconds=round(elapsed, 4)),
        )  # fmt: skip
        self._recovered()
        return True

    def _backpressure(self, exc: Exception) -> None:
        now = self._clock()
        if self.health.failing_since is None:
            self.health.failing_since = now
        failing_for = now - self.health.failing_since
        delay = self._flush_backoff.next_delay()
        limit = self._give_up_after_s
        if limit is not None and failing_for + delay > limit:
            raise SinkGaveUp(failing_for, exc) from exc
        self._retry_at = now + delay
        if not self._paused:
            self._set_paused(True)
        logger.warning(
            "flush failed, partitions paused, retrying: %s", exc,
            extra=log_context(retry_in_s=round(delay, 2), buffered_rows=self._batch.row_count),
        )  # fmt: skip

    def _recovered(self) -> None:
        self._flush_backoff.reset()
        since = self.health.failing_since
        if since is not None:
            failed_for_s = round(self._clock() - since, 1)
            logger.info(
                "flush succeeded again, resuming", extra=log_context(failed_for_s=failed_for_s)
            )
            self.health.failing_since = None
        if self._paused and not self._draining:
            self._set_paused(False)

    def _active(self) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t, p in sorted(self._tracker.assigned - self._held)]

    def _set_paused(self, paused: bool) -> None:
        """Pause (or resume) every assigned partition whose range is not read."""
        parts = self._active()
        if parts:
            (self._consumer.pause if paused else self._consumer.resume)(parts)
        self._paused = paused
        self._metrics.paused.set(int(paused))
        self._metrics.paused_partitions.set(len(parts) if paused else 0)

    # -- rebalancing ---------------------------------------------------------------------

    def _on_assign(self, consumer: object, partitions: list[TopicPartition]) -> None:
        self.health.reading = True
        self._metrics.rebalances.labels("assign").inc()
        self._tracker.assign((tp.topic, tp.partition) for tp in partitions)
        if self._paused and partitions:
            self._consumer.pause(partitions)
            self._metrics.paused_partitions.set(len(self._tracker.assigned))
        self._metrics.assigned_partitions.set(len(self._tracker.assigned))
        logger.info(
            "partitions assigned",
            extra=log_context(partitions=[f"{t.topic}[{t.partition}]" for t in partitions]),
        )

    def _on_revoke(self, consumer: object, partitions: list[TopicPartition]) -> None:
        self._metrics.rebalances.labels("revoke").inc()
        gone = {(tp.topic, tp.partition) for tp in partitions}
        if not self._failed:
            if gone.intersection(self._batch.high_offsets) and not self._flush():
                dropped = self._batch.drop_partitions(gone)
                logger.warning(
                    "could not flush revoked partitions; the next owner re-reads them",
                    extra=log_context(dropped_messages=dropped),
                )
            if not self._committer.commit(only=gone):
                logger.warning(
                    "revoked partitions given up with offsets uncommitted; the next owner "
                    "re-reads from the last commit", extra=log_context(partitions=sorted(gone)),
                )  # fmt: skip
        self._release(gone)
        logger.info("partitions revoked", extra=log_context(partitions=sorted(gone)))

    def _on_lost(self, consumer: object, partitions: list[TopicPartition]) -> None:
        self._metrics.rebalances.labels("lost").inc()
        gone = {(tp.topic, tp.partition) for tp in partitions}
        dropped = self._batch.drop_partitions(gone)
        self._release(gone)
        logger.warning(
            "partitions lost; buffered messages and owed offsets dropped uncommitted",
            extra=log_context(partitions=sorted(gone), dropped_messages=dropped),
        )

    def _release(self, gone: set[TP]) -> None:
        self._tracker.release(gone)
        self._held -= gone
        for topic, partition in gone:
            self._metrics.forget_partition(topic, partition)
        self._metrics.assigned_partitions.set(len(self._tracker.assigned))
        idle = not self._tracker.assigned and not len(self._batch)
        if idle and self._paused and not self._draining:
            # Nothing assigned and nothing buffered: no flush is pending.
            self.health.failing_since = None
            self._set_paused(False)

    # -- the end ---------------------------------------------------------------------------

    def _drain(self) -> None:
        """Flush the batch and make the owed commits, reading nothing new.

        After :meth:`stop` both must be done within ``shutdown_timeout_s``; a flush not
        done by then stops the engine uncommitted. At the end of the ranges the flush
        may take as long as the sink may fail (``give_up_after_s``), and the commits
        then get ``shutdown_timeout_s``.
        """
        self._draining = True
        if not self._paused:
            self._set_paused(True)
        budget = self._settings.shutdown_timeout_s
        flush_deadline = self._clock() + budget if self._stopping else math.inf
        commit_deadline: float | None = None
        while len(self._batch) or self._tracker.owes():
            now = self._clock()
            if len(self._batch):
                if now >= self._retry_at and self._flush():
                    continue
                if self._retry_at > flush_deadline:
                    logger.error(
                        "could not flush before shutdown; messages stay uncommitted and will be "
                        "re-read", extra=log_context(messages=len(self._batch)),
                    )  # fmt: skip
                    raise EngineStopped("shutdown flush failed; nothing further committed")
                wake = self._retry_at
            else:
                if commit_deadline is None:
                    commit_deadline = min(flush_deadline, now + budget)
                if now >= self._committer.retry_at and self._committer.commit():
                    continue
                if self._committer.retry_at > commit_deadline:
                    logger.warning(
                        "commits still failing at the end; the next reader re-reads from the "
                        "last committed offset (the rows are stored)",
                    )
                    return
                wake = self._committer.retry_at
            self._idle(wake)

    def _idle(self, until: float) -> None:
        """Poll (paused: serving rebalances) until ``until`` or one poll timeout."""
        self.health.beat()
        now = self._clock()
        timeout = min(self._settings.poll_timeout_ms / 1000, max(0.0, until - now))
        messages = self._consumer.consume(CONSUME_BATCH, timeout)
        if messages:  # read before the pause took effect: flushed with the rest
            self._take(messages)
