"""The engine's writing side: the batch being read, the batches in flight, commit order.

:class:`Flusher` hands a due batch to the writes (:mod:`worker.engine.writes`), keeps
at most ``max_in_flight`` of them in flight (:mod:`worker.engine.flights`), and takes
ended writes off oldest first: a stored batch's offsets are owed (and committed) only
once every batch before it is stored too. A transient failure schedules a retry of the
same batch with backoff, and nothing after it is committed meanwhile; any other error
is raised. Pausing and resuming consumption is the engine's: :meth:`Flusher.collect`
only says what happened.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Literal

from worker.core.events import EVENTS_PER_TRADE
from worker.engine.backoff import Backoff
from worker.engine.batch import ROW_SQL_BYTES, Batch, TopicPartition as TP
from worker.engine.errors import SinkGaveUp
from worker.engine.flights import Flight, Flights
from worker.engine.health import EngineHealth
from worker.engine.offsets import Committer
from worker.engine.settings import EngineSettings
from worker.engine.sink import SinkTransientError
from worker.engine.writes import Writes, Written
from worker.ops.logs import log_context
from worker.ops.metrics import Metrics

__all__ = ("Flusher", "Landing", "Totals")

logger = logging.getLogger(__name__)

Landing = Literal["none", "stored", "failed"]
"""What :meth:`Flusher.collect` saw: nothing new, batches stored (no write failing any
more), or a write failed transiently (consumption must pause)."""


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


class Flusher:
    """The batch being read and the batches in flight; see the module docstring."""

    def __init__(
        self,
        *,
        writes: Writes,
        settings: EngineSettings,
        committer: Committer,
        metrics: Metrics,
        health: EngineHealth,
        totals: Totals,
        give_up_after_s: float | None,
        clock: Callable[[], float],
    ) -> None:
        self._settings = settings
        self._committer = committer
        self._tracker = committer.tracker
        self._metrics = metrics
        self._health = health
        self._totals = totals
        self._give_up_after_s = give_up_after_s
        self._clock = clock
        self._backoff = Backoff(
            settings.retry_initial_backoff_ms / 1000, settings.retry_max_backoff_ms / 1000
        )
        self.commits = True
        """Owe and commit stored offsets (False: a replay that records no progress)."""
        self.batch = Batch(clock)
        self.flights = Flights(writes, settings.max_in_flight, clock)
        self.retry_at = 0.0
        """When failed writes may be tried again."""
        self.blocked_since: float | None = None
        """Since when the due batch waits for room (``max_in_flight`` writes run)."""

    @property
    def failing(self) -> bool:
        """A write failed and has not succeeded since."""
        return self._health.failing_since is not None

    @property
    def buffered_messages(self) -> int:
        """Messages read and not yet stored (in the batch or in flight)."""
        return len(self.batch) + sum(len(f.batch) for f in self.flights)

    @property
    def buffered_rows(self) -> int:
        return self.batch.row_count + self.flights.rows

    @property
    def pending(self) -> bool:
        """Something read is not stored yet."""
        return bool(len(self.batch) or self.flights)

    def room(self, most: int, least: int) -> int:
        """How many messages to read next: as many as still fit in the batch by rows and
        estimated bytes (a trade is four rows), within ``least`` … ``most``, so a batch
        is due at its limits, not a whole poll past them."""
        settings, batch = self._settings, self.batch
        rows = min(settings.max_rows - batch.row_count,
                   (settings.max_bytes - batch.sql_bytes) // ROW_SQL_BYTES)  # fmt: skip
        return max(least, min(most, -(-rows // EVENTS_PER_TRADE)))

    def due(self) -> bool:
        """Whether the batch is due (by rows, estimated bytes or age)."""
        settings = self._settings
        return self.batch.is_due(
            max_rows=settings.max_rows, max_bytes=settings.max_bytes,
            linger_s=settings.linger_ms / 1000,
        )  # fmt: skip

    def submit(self) -> Landing:
        """Hand the batch to the writes (even past ``max_in_flight``: callers check
        :attr:`Flights.full`); an inline write has ended when this returns."""
        batch, self.batch = self.batch, Batch(self._clock)
        self.blocked_since = None
        if not len(batch):
            return "none"
        self.flights.submit(batch)
        return self.collect()

    def retry_due(self, only: Collection[TP] | None = None) -> Landing:
        """Write failed batches again (those holding ``only``, if given) now."""
        failed = self.flights.failed()
        if only is not None:
            failed = [f for f in failed if not f.offsets.keys().isdisjoint(only)]
        for flight in failed:
            self.flights.retry(flight)
        return self.collect() if failed else "none"

    def collect(self) -> Landing:
        """Take ended writes off, oldest first, owing (and committing) the offsets of
        those stored; schedule the retry of a failed one; raise a fatal error."""
        flights = self.flights
        failure: Exception | None = None
        for flight in flights:
            written = flight.written
            if written is None or written.error is None or flight.seen:
                continue
            if not isinstance(written.error, SinkTransientError):
                self._metrics.flush_duration.labels("fatal_error").observe(written.seconds)
                raise written.error
            flight.seen = True
            self._metrics.flush_duration.labels("transient_error").observe(written.seconds)
            failure = written.error
        landed = False
        while (head := flights.head) is not None and (written := head.written) is not None:
            if written.error is not None:
                break
            flights.pop()
            self._landed(head, written)
            landed = True
        if landed and self.commits:
            self._committer.commit()
        self._metrics.writes_in_flight.set(len(flights))
        if failure is not None:
            self._failed(failure)
            return "failed"
        if landed and not flights.failed():
            self._recovered()
            return "stored"
        return "none"

    def _landed(self, flight: Flight, written: Written) -> None:
        """A batch is stored, and every batch before it: owe its offsets."""
        batch = flight.batch
        if self.commits:
            self._tracker.stored(flight.offsets)
        metrics = self._metrics
        dead = written.dead
        for item in dead:
            metrics.dead_lettered.labels(item.reason).inc()
        metrics.flush_duration.labels("ok").observe(written.seconds)
        metrics.events_written.inc(written.rows_written)
        refused = len(dead) - len(batch.dead_letters)  # messages whose rows the store refused
        metrics.trades_written.inc(len(batch.rows) - refused)
        metrics.last_flush_timestamp.set(time.time())
        totals = self._totals
        totals.rows += written.rows_written
        totals.dead.update(item.reason for item in dead)
        totals.flushes += 1
        logger.debug(
            "flushed",
            extra=log_context(messages=len(batch), rows=written.rows_written,
                              dead_lettered=len(dead), seconds=round(written.seconds, 4)),
        )  # fmt: skip

    def _failed(self, exc: Exception) -> None:
        health = self._health
        now = self._clock()
        if health.failing_since is None:
            health.failing_since = now
        failing_for = now - health.failing_since
        delay = self._backoff.next_delay()
        limit = self._give_up_after_s
        if limit is not None and failing_for + delay > limit:
            raise SinkGaveUp(failing_for, exc) from exc
        self.retry_at = now + delay
        logger.warning(
            "flush failed, partitions paused, retrying: %s", exc,
            extra=log_context(retry_in_s=round(delay, 2), buffered_rows=self.buffered_rows),
        )  # fmt: skip

    def _recovered(self) -> None:
        self._backoff.reset()
        since = self._health.failing_since
        if since is not None:
            failed_for_s = round(self._clock() - since, 1)
            logger.info(
                "flush succeeded again, resuming", extra=log_context(failed_for_s=failed_for_s)
            )
            self._health.failing_since = None

    def settle(self, gone: set[TP], wait_s: float, beat: Callable[[], None]) -> bool:
        """Store what was read of ``gone`` (revoked): write its buffered messages (past
        ``max_in_flight`` if need be), retry its failed writes once, now, and wait up
        to ``shutdown_timeout_s`` for them to land. False if some did not."""
        flights = self.flights
        self.retry_due(only=gone)
        if not gone.isdisjoint(self.batch.high_offsets):
            self.submit()
        deadline = self._clock() + self._settings.shutdown_timeout_s
        while True:
            self.collect()
            if not flights.holds(gone):
                return True
            now = self._clock()
            if flights.running_since is None or now >= deadline:
                return False  # failed (or behind a failed write), or out of time
            flights.wait(min(wait_s, deadline - now))
            beat()

    def drop(self, gone: Collection[TP]) -> int:
        """Forget ``gone`` (revoked or lost): its buffered messages, and its offsets in
        flight (see :meth:`Flights.forget`); returns the messages dropped from the batch."""
        self.flights.forget(gone)
        return self.batch.drop_partitions(gone)
