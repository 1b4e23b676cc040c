"""Batches being written, oldest first: what may be committed, and in which order.

A :class:`Flight` is a batch handed to :class:`~worker.engine.writes.Writes` with a
copy of its partitions' highest offsets. Only the oldest flight (:attr:`Flights.head`)
may be taken off once its write succeeded, so a later batch's offsets are never owed
before an earlier batch is stored. A flight whose write failed stays where it is, to
be written again (:meth:`Flights.retry`).

Offsets of revoked or lost partitions are forgotten in every flight
(:meth:`Flights.forget`): rows already on their way may still be written (they
overwrite themselves), but the next owner commits them, and a partition assigned
again never sees an old flight's offset.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field

from worker.engine.batch import Batch, TopicPartition as TP
from worker.engine.writes import Writes, Written

__all__ = ("Flight", "Flights")


@dataclass(slots=True, eq=False)
class Flight:
    """One batch being written (or written, or failed)."""

    batch: Batch
    future: Future[Written]
    submitted: float
    """Clock time of the (last) submission."""
    offsets: dict[TP, int] = field(default_factory=dict)
    """Highest offset per partition, owed once the write succeeded."""

    seen: bool = False
    """Its failure was handled (a retry is scheduled)."""

    @property
    def done(self) -> bool:
        return self.future.done()

    @property
    def written(self) -> Written | None:
        """The outcome of its write, once ended (None while it runs)."""
        future = self.future
        return future.result() if future.done() and not future.cancelled() else None


class Flights:
    """At most ``limit`` batches in flight (one while ``limit`` is 0, written inline)."""

    __slots__ = ("_clock", "_flights", "_writes", "limit")

    def __init__(self, writes: Writes, limit: int, clock: Callable[[], float]) -> None:
        self._writes = writes
        self.limit = max(1, limit)
        self._clock = clock
        self._flights: deque[Flight] = deque()

    def __len__(self) -> int:
        return len(self._flights)

    def __iter__(self) -> Iterator[Flight]:
        return iter(self._flights)

    @property
    def full(self) -> bool:
        """Whether another batch must wait for a write to end."""
        return len(self._flights) >= self.limit

    @property
    def rows(self) -> int:
        """Rows in flight."""
        return sum(f.batch.row_count for f in self._flights)

    @property
    def running_since(self) -> float | None:
        """Submission time of the oldest write not ended; None when none runs."""
        return next((f.submitted for f in self._flights if not f.done), None)

    def submit(self, batch: Batch) -> Flight:
        """Hand ``batch`` to the writes (even when :attr:`full`: a revoke's last batch)."""
        flight = Flight(batch, self._writes.submit(batch), self._clock(), dict(batch.high_offsets))
        self._flights.append(flight)
        return flight

    @property
    def head(self) -> Flight | None:
        """The oldest flight: the next whose offsets may be owed."""
        return self._flights[0] if self._flights else None

    def pop(self) -> Flight:
        """Remove and return the oldest flight (its write succeeded)."""
        return self._flights.popleft()

    def failed(self) -> list[Flight]:
        """Flights whose write ended with an error, oldest first."""
        return [f for f in self._flights if (w := f.written) is not None and w.error is not None]

    def retry(self, flight: Flight) -> None:
        """Write ``flight``'s batch again (after its write failed)."""
        flight.future = self._writes.submit(flight.batch)
        flight.submitted = self._clock()
        flight.seen = False

    def holds(self, partitions: Collection[TP]) -> bool:
        """Whether a flight owes offsets of any of ``partitions``."""
        return any(tp in f.offsets for f in self._flights for tp in partitions)

    def forget(self, partitions: Collection[TP]) -> None:
        """Owe nothing for ``partitions`` (revoked or lost) when the flights land; a
        failed write's batch also drops their messages (its retry leaves them to the
        next owner). Batches queued or being written are not touched."""
        for flight in self._flights:
            for tp in partitions:
                flight.offsets.pop(tp, None)
            if (written := flight.written) is not None and written.error is not None:
                flight.batch.drop_partitions(partitions)

    def wait(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` (real seconds) for a running write to end; True if
        one ended (or none runs)."""
        running = [f.future for f in self._flights if not f.done]
        if not running:
            return True
        done, _ = wait(running, timeout=max(0.0, timeout_s), return_when=FIRST_COMPLETED)
        return bool(done)

    def clear(self) -> None:
        """Forget every flight (a fatal condition: nothing is committed any more)."""
        for flight in self._flights:
            flight.future.cancel()
        self._flights.clear()
