"""Where a batch's writes run: inline, or on a writer thread while the engine reads on.

A write is one call of a :data:`StoreJob` (the sink's write, then the batch's dead
letters, acknowledged). The engine hands batches to a :class:`Writes` and gets a
``Future`` of a :class:`Written` per batch (which holds the error, if any: the future
itself never raises); which kind runs them is a detail behind that protocol:

* :class:`InlineWrites` runs the job inside :meth:`~Writes.submit` (``batch.max_in_flight
  = 0``: nothing overlaps, the engine's behaviour before overlapping writes);
* :class:`ThreadWrites` runs jobs one at a time, in submission order, on one daemon
  thread. The sink and the dead-letter producer are then used by that thread only.
  This overlaps a write with consuming and deriving only while the write releases the
  GIL: REST over ``requests`` does, during its network waits; taos-ws-py does not, so
  the stmt2 path sends from a child process and this thread waits on its pipe
  (:mod:`worker.tdengine.stmt2_process`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Final, NamedTuple, Protocol

from worker.engine.batch import Batch
from worker.engine.dead_letters import DeadLetter

__all__ = ("InlineWrites", "StoreJob", "ThreadWrites", "Writes", "Written", "writes_for")

logger = logging.getLogger(__name__)

_CLOSE_WAIT_S: Final = 5.0
"""How long :meth:`ThreadWrites.close` waits for a write still running (after a fatal
condition, or a shutdown past its deadline); the thread is a daemon, so it never holds
the process beyond that."""


class Written(NamedTuple):
    """What one write did: stored, or failed with ``error``."""

    seconds: float
    """How long the write took (without its wait in a queue)."""
    error: BaseException | None = None
    """What the job raised; the other fields are then empty."""
    rows_written: int = 0
    dead: tuple[DeadLetter, ...] = ()
    """Every message dead-lettered: the batch's own, then those the store refused."""


StoreJob = Callable[[Batch], tuple[int, list[DeadLetter]]]
"""Writes a batch's rows and dead letters; returns the rows written and the dead
letters, or raises what the sink (or the dead-letter destination) raises."""


class Writes(Protocol):
    """Runs :data:`StoreJob` calls; each :meth:`submit` returns the write's future."""

    def submit(self, batch: Batch) -> Future[Written]:
        """Start writing ``batch`` (after the writes submitted before it)."""
        ...

    def close(self) -> None:
        """Run nothing more; cancel what has not started."""
        ...


def _run(job: StoreJob, batch: Batch, future: Future[Written]) -> None:
    if not future.set_running_or_notify_cancel():
        return
    started = time.perf_counter()
    try:
        rows, dead = job(batch)
    except BaseException as exc:  # the engine decides what an error means
        future.set_result(Written(time.perf_counter() - started, exc))
    else:
        future.set_result(Written(time.perf_counter() - started, None, rows, tuple(dead)))


class InlineWrites:
    """Runs each write inside :meth:`submit`: its future is done when it returns."""

    def __init__(self, job: StoreJob) -> None:
        self._job = job

    def submit(self, batch: Batch) -> Future[Written]:
        future: Future[Written] = Future()
        _run(self._job, batch, future)
        return future

    def close(self) -> None:
        pass


class ThreadWrites:
    """Runs writes one at a time, in submission order, on one daemon writer thread."""

    def __init__(self, job: StoreJob, *, name: str = "balance-sink-writer") -> None:
        self._job = job
        self._queue: queue.SimpleQueue[tuple[Batch, Future[Written]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._closed = False
        self._thread.start()

    def submit(self, batch: Batch) -> Future[Written]:
        if self._closed:
            raise RuntimeError("writes closed")
        future: Future[Written] = Future()
        self._queue.put((batch, future))
        return future

    def _serve(self) -> None:
        while (item := self._queue.get()) is not None:
            batch, future = item
            _run(self._job, batch, future)

    def close(self) -> None:
        """Cancel the writes not started; wait a little for the running one."""
        if self._closed:
            return
        self._closed = True
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[1].cancel()
        self._queue.put(None)
        self._thread.join(_CLOSE_WAIT_S)
        if self._thread.is_alive():
            logger.warning("a write was still running when the writer closed")


def writes_for(max_in_flight: int, job: StoreJob) -> Writes:
    """The kind for ``batch.max_in_flight``: inline for 0, else one writer thread."""
    return InlineWrites(job) if max_in_flight == 0 else ThreadWrites(job)
