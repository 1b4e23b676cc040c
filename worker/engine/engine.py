"""The stream engine: consume, decode, batch, store, dead-letter, commit.

One thread consumes and decodes. A due batch is handed to the writes
(:mod:`worker.engine.writes`: one writer thread, or inline with ``batch.max_in_flight =
0``), which write it to the sink, send its dead letters and wait for their
acknowledgement, while the engine reads and derives the next batch. At most
``max_in_flight`` batches are in flight (:mod:`worker.engine.flights`); only once a
batch's write succeeded, and every batch before it landed, does the engine owe the
consumer group, per partition, the batch's highest offset plus one (see
:mod:`worker.engine.offsets`), and commit it. Every message read is in a batch (as rows
or as a dead letter), so nothing below a committed offset is ever missing; a crash
before the commit makes the next reader read the messages again, and their rows
overwrite themselves (exactly-once results from at-least-once delivery). A commit that
fails stays owed and is retried with backoff on later iterations, before a revoked
partition is given up, and at the end.

When the next batch is due and ``max_in_flight`` writes run, the engine reads nothing
until one ends (after :data:`WAIT_BEFORE_PAUSE_S`, with every partition paused while it
keeps polling), so memory stays bounded. While a write fails transiently, every
assigned partition is paused, the engine keeps polling (so the member stays in the
group) and writes the same batch again with backoff; nothing after it is committed.
Revoked partitions' batches are written and committed before they are given up (the
wait is bounded by ``shutdown_timeout_s``); lost partitions are dropped without a
commit.

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
from collections.abc import Callable, Sequence
from typing import Final

from confluent_kafka import Message, TopicPartition

from worker.core.deriver import Deriver
from worker.engine.backoff import Backoff
from worker.engine.batch import Batch, TopicPartition as TP
from worker.engine.collector import fewer_collections
from worker.engine.dead_letters import DeadLetter, DeadLetterError, DeadLetters
from worker.engine.decode import check_kafka_error, decode_batch
from worker.engine.errors import EngineStopped, SinkGaveUp
from worker.engine.flushing import Flusher, Landing, Totals
from worker.engine.health import EngineHealth
from worker.engine.kafka import KafkaConsumer
from worker.engine.offsets import Committer, OffsetOrderError, OffsetTracker
from worker.engine.ranges import RangeBounds
from worker.engine.settings import EngineSettings
from worker.engine.sink import PreparingSink, Sink, SinkFatalError
from worker.engine.store import store_batch
from worker.engine.writes import Writes, writes_for
from worker.ops.logs import log_context
from worker.ops.metrics import Metrics

__all__ = (
    "CONSUME_BATCH",
    "WAIT_BEFORE_PAUSE_S",
    "Engine",
    "EngineSettings",
    "EngineStopped",
    "SinkGaveUp",
    "Totals",
)

logger = logging.getLogger(__name__)

CONSUME_BATCH: Final = 2000
"""Messages taken from librdkafka per consume() call at most."""

CONSUME_LEAST: Final = 100
"""Messages asked for at least, even when fewer fit in the batch: smaller polls would
cost more calls than the rows by which a batch may pass its limits (400) are worth."""

WAIT_BEFORE_PAUSE_S: Final = 5.0
"""How long a due batch waits for a write to end before the partitions are paused.
Meanwhile nothing is polled (no rebalance is served); a shorter wait, the usual one
when the store is the bottleneck, so costs no pause and resume, which would make
librdkafka drop its prefetched messages and fetch them again."""


class Engine:
    """Runs one consumer through the pipeline; see the module docstring.

    Parameters
    ----------
    give_up_after_s:
        Stop with :class:`SinkGaveUp` once flushes have failed for this long; ``None``
        (the worker) keeps retrying, paused, for as long as it takes.
    clock:
        Monotonic clock of linger, backoff, health and deadlines (tests pass a fake).
    writes:
        Where batches are written; default :func:`~worker.engine.writes.writes_for`
        ``settings.max_in_flight`` (a writer thread, or inline for 0).
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
        writes: Writes | None = None,
    ) -> None:
        self._consumer = consumer
        # The rows as TradeRows: a writer that knows them reads whole batches as columns.
        self._derive = deriver.derive_rows
        self._sink = sink
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._settings = settings
        self._clock = clock
        self._tracker = OffsetTracker()
        self._bounds: RangeBounds | None = None
        self._held: set[TP] = set()
        """Partitions paused for good: their range is read."""
        self.health = EngineHealth(settings, clock)
        self._paused = False
        self._draining = False
        self._stopping = False
        self._failed = False
        backoff = Backoff(settings.retry_initial_backoff_ms / 1000,
                          settings.retry_max_backoff_ms / 1000)  # fmt: skip
        self._committer = Committer(consumer, self._tracker, metrics, backoff, clock)
        self._preparing = sink if isinstance(sink, PreparingSink) else None
        self._writes = writes or writes_for(settings.max_in_flight, self._store)
        self.totals = Totals()
        self._flusher = Flusher(
            writes=self._writes, settings=settings, committer=self._committer,
            metrics=metrics, health=self.health, totals=self.totals,
            give_up_after_s=give_up_after_s, clock=clock,
        )  # fmt: skip

    # -- progress ---------------------------------------------------------------------

    @property
    def buffered_messages(self) -> int:
        """Messages read but not yet stored (buffered or being written)."""
        return self._flusher.buffered_messages

    @property
    def in_flight(self) -> int:
        """Batches handed to the writes and not yet taken off (stored, or to retry)."""
        return len(self._flusher.flights)

    def wait_for_write(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` (real seconds) for a running write to end; True if
        one ended, or none runs. The next :meth:`step` takes it off."""
        return self._flusher.flights.wait(timeout_s)

    @property
    def assigned(self) -> frozenset[TP]:
        """Partitions the engine reads and commits."""
        return self._tracker.assigned

    @property
    def paused(self) -> bool:
        """Whether consumption is paused (the sink is failing, writes are behind, or the
        engine drains)."""
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
        self._flusher.commits = commit
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
            with fewer_collections():
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
        """Leave the group, stop the writes, then close the dead-letter producer and the
        sink.

        After a fatal condition, errors while closing are only logged, and a revoke
        during the close commits nothing.
        """
        closes = (self._consumer.close, self._writes.close, self._dead_letters.close,
                  self._sink.close)  # fmt: skip
        for close in closes:
            if not self._failed:
                close()
                continue
            try:
                close()
            except Exception as exc:
                logger.debug("error while closing: %s", exc)

    def _fail(self, exc: Exception) -> None:
        self._failed = True
        self._flusher.flights.clear()
        logger.critical("stopping on a fatal condition: %s", exc)

    def _ranges_read(self) -> bool:
        return self._bounds is not None and not self._bounds.reading

    # -- one iteration -------------------------------------------------------------------

    def step(self) -> None:
        """One iteration: poll (or wait for a write to end), take ended writes off,
        write the batch when due (or retry failed writes when their time has come), and
        commit owed offsets whose retry time has come. :meth:`run` loops on it."""
        self._beat()
        flusher = self._flusher
        flights = flusher.flights
        poll_s = self._settings.poll_timeout_ms / 1000
        messages: list[Message] = []
        most = flusher.room(CONSUME_BATCH, CONSUME_LEAST)
        if self._paused and flights.running_since is not None:
            flights.wait(poll_s)  # until a write ends; then serve rebalances
            messages = self._consumer.consume(most, 0)
        elif self._paused:
            timeout = poll_s
            if flusher.failing:
                timeout = min(timeout, max(0.0, flusher.retry_at - self._clock()))
            messages = self._consumer.consume(most, timeout)
        elif flights.full and flusher.due():
            flights.wait(poll_s)  # no room for the due batch: read nothing meanwhile
        else:
            messages = self._consumer.consume(most, poll_s)
        if messages:
            self._take(messages)
        self._landed(flusher.collect())
        self._write_when_due()
        if self._committer.due():
            self._committer.commit()
        self._metrics.buffered_rows.set(flusher.buffered_rows)

    def _beat(self) -> None:
        self.health.beat(self._flusher.flights.running_since)

    def _take(self, messages: list[Message]) -> None:
        bounds = self._bounds
        if bounds is not None:
            messages = bounds.admit(messages)
        decoded = decode_batch(messages, self._derive, check_kafka_error)
        if decoded.last_offsets:
            self._flusher.batch.add_consumed(
                decoded.rows, decoded.dead_letters, decoded.row_count, decoded.last_offsets
            )
        if bounds is not None:
            bounds.advanced(decoded.last_offsets)
            for tp in bounds.take_finished():
                self._hold(tp, bounds.ranges[tp].end)
        for (topic, partition), count in decoded.counts.items():
            self._metrics.messages_consumed.labels(topic, str(partition)).inc(count)
        self.totals.messages += sum(decoded.counts.values())

    def _hold(self, tp: TP, end: int) -> None:
        """Pause ``tp`` for good: its range is read."""
        self._held.add(tp)
        self._consumer.pause([TopicPartition(*tp)])
        logger.info("partition done", extra=log_context(topic=tp[0], partition=tp[1], end=end))

    # -- writing ------------------------------------------------------------------------

    def _store(self, batch: Batch) -> tuple[int, list[DeadLetter]]:
        """The write of one batch (run by the writes: on the writer thread, or inline)."""
        return store_batch(
            batch, self._sink, self._dead_letters, self._settings.dead_letter_timeout_s
        )

    def _write_when_due(self) -> None:
        """Hand the due batch to the writes if one may start, or retry failed writes
        whose time has come; pause when a due batch waited too long for room."""
        flusher = self._flusher
        if flusher.failing:
            if self._clock() >= flusher.retry_at:
                self._landed(flusher.retry_due())
            return
        if not flusher.due():
            return
        batch = flusher.batch
        if self._preparing is not None and batch.prepared is None and batch.rows:
            batch.prepared = self._preparing.prepare(batch.rows)  # here, not on the writer
        if not flusher.flights.full:
            self._landed(flusher.submit())
            return
        now = self._clock()
        if flusher.blocked_since is None:
            flusher.blocked_since = now
        elif not self._paused and now - flusher.blocked_since >= WAIT_BEFORE_PAUSE_S:
            self._set_paused(True)
            logger.info(
                "writes behind: partitions paused until one ends",
                extra=log_context(in_flight=len(flusher.flights),
                                  buffered_rows=flusher.buffered_rows),
            )  # fmt: skip

    def _landed(self, landing: Landing) -> None:
        """Pause while a write fails; resume once writes are stored again (and there is
        room for the next)."""
        if landing == "failed" and not self._paused:
            self._set_paused(True)
        elif landing == "stored" and self._paused and not self._draining:
            flusher = self._flusher
            if not flusher.flights.full or not flusher.due():  # room, or nothing waits
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
            flusher = self._flusher
            if not flusher.settle(gone, self._settings.poll_timeout_ms / 1000, self._beat):
                logger.warning(
                    "revoked partitions' writes not stored in time; the next owner re-reads "
                    "them", extra=log_context(partitions=sorted(gone)),
                )  # fmt: skip
            # The writes waited for may have failed, or succeeded after failing.
            self._landed("failed" if flusher.failing else "stored")
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
        dropped = self._release(gone)
        logger.warning(
            "partitions lost; buffered messages and owed offsets dropped uncommitted",
            extra=log_context(partitions=sorted(gone), dropped_messages=dropped),
        )

    def _release(self, gone: set[TP]) -> int:
        """Give ``gone`` up: drop what is read of it and what it owes; returns the
        buffered messages dropped."""
        self._tracker.release(gone)
        dropped = self._flusher.drop(gone)
        self._held -= gone
        for topic, partition in gone:
            self._metrics.forget_partition(topic, partition)
        self._metrics.assigned_partitions.set(len(self._tracker.assigned))
        idle = not self._tracker.assigned and not self._flusher.pending
        if idle and self._paused and not self._draining:
            # Nothing assigned, buffered or in flight: no write is pending.
            self.health.failing_since = None
            self._set_paused(False)
        return dropped

    # -- the end ---------------------------------------------------------------------------

    def _drain(self) -> None:
        """Write the batch, let every write land, make the owed commits; read nothing new.

        After :meth:`stop` the writes must be done within ``shutdown_timeout_s``; a
        write not done by then stops the engine uncommitted. At the end of the ranges
        the writes may take as long as the sink may fail (``give_up_after_s``), and the
        commits then get ``shutdown_timeout_s``.
        """
        self._draining = True
        if not self._paused:
            self._set_paused(True)
        flusher = self._flusher
        flights = flusher.flights
        poll_s = self._settings.poll_timeout_ms / 1000
        budget = self._settings.shutdown_timeout_s
        flush_deadline = self._clock() + budget if self._stopping else math.inf
        commit_deadline: float | None = None
        while flusher.pending or self._tracker.owes():
            flusher.collect()
            now = self._clock()
            if flusher.pending:
                if flusher.failing and now >= flusher.retry_at and flights.failed():
                    flusher.retry_due()
                    continue
                if not flusher.failing and len(flusher.batch) and not flights.full:
                    flusher.submit()
                    continue
                running = flights.running_since is not None
                wake = now if running or not flusher.failing else flusher.retry_at
                if wake > flush_deadline or (running and now >= flush_deadline):
                    logger.error(
                        "could not flush before shutdown; messages stay uncommitted and will be "
                        "re-read", extra=log_context(messages=flusher.buffered_messages),
                    )  # fmt: skip
                    raise EngineStopped("shutdown flush failed; nothing further committed")
                if running:
                    flights.wait(min(poll_s, flush_deadline - now))
                self._idle(wake)
                continue
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
            self._idle(self._committer.retry_at)

    def _idle(self, until: float) -> None:
        """Poll (paused: serving rebalances) until ``until`` or one poll timeout."""
        self._beat()
        now = self._clock()
        timeout = min(self._settings.poll_timeout_ms / 1000, max(0.0, until - now))
        messages = self._consumer.consume(CONSUME_BATCH, timeout)
        if messages:  # read before the pause took effect: flushed with the rest
            self._take(messages)
