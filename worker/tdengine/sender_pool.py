"""Several senders side by side, so one request's work overlaps another's wait.

A sender carries one request at a time. :class:`SenderPool` keeps ``N`` of them and,
for :meth:`~SenderPool.execute_all`, hands a batch's requests to whichever is free,
from ``N`` threads that wait with the GIL released:

* stmt2: a child-process sender
  (:class:`~worker.tdengine.stmt2_process.Stmt2ProcessSender`) makes a request's bind
  views, holding its own GIL, then waits for the server; while one child makes views,
  another's request is on the server;
* SQL over REST: a transport (one keep-alive connection each) posts an INSERT and
  waits; the server works on several statements at once.

Each request gets its own outcome (:class:`SendOutcome`): the affected-row count, or
the classified :class:`~worker.tdengine.errors.StoreError` it raised. The pool never
retries; the writer decides, per request, as it does for one sent alone. Anything else
a sender raises (a bug) is raised once every request has ended.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from contextlib import suppress
from typing import Any, NamedTuple, Protocol, TypeVar

from worker.tdengine.errors import StoreError, TransientStoreError

__all__ = ("PooledSender", "SendOutcome", "SenderPool", "outcome_of")

_T = TypeVar("_T")
_R = TypeVar("_R")


class PooledSender(Protocol):
    """What the pool needs of a sender: a stmt2 child-process sender, or a SQL transport
    (:class:`~worker.tdengine.write_paths.StatementSender`)."""

    def open(self) -> None: ...
    def execute(self, request: Any) -> int: ...
    def close(self) -> None: ...


class SendOutcome(NamedTuple):
    """How one request of :meth:`SenderPool.execute_all` ended.

    Attributes
    ----------
    affected:
        The server's affected-row count (``None`` when ``error`` is set).
    error:
        The classified error the request raised, or ``None``.
    seconds:
        How long the request took, from when a sender took it.
    """

    affected: int | None
    error: StoreError | None
    seconds: float


def _closed() -> TransientStoreError:
    """The error of a request :meth:`SenderPool.close` cancelled before it started."""
    return TransientStoreError("TDengine sender pool closed before the request was sent")


class SenderPool:
    """Sends requests through several senders at once.

    Parameters
    ----------
    senders:
        At least one sender; each carries one request at a time.
    """

    def __init__(self, senders: Sequence[PooledSender]) -> None:
        if not senders:
            raise ValueError("a sender pool needs at least one sender")
        self._senders = tuple(senders)
        self._free: queue.SimpleQueue[PooledSender] = queue.SimpleQueue()
        for sender in self._senders:
            self._free.put(sender)
        self._threads: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"SenderPool({list(self._senders)!r})"

    @property
    def size(self) -> int:
        """How many requests can be in flight at once."""
        return len(self._senders)

    @property
    def senders(self) -> tuple[PooledSender, ...]:
        """The senders, in the order given."""
        return self._senders

    def open(self) -> None:
        """Open every sender, side by side (start-up); raise the first one's error.

        Each sender starts its child and connects; its ``open`` errors are raised here.
        """
        if self.size == 1:
            self._senders[0].open()
            return
        futures = [self._pool().submit(sender.open) for sender in self._senders]
        _wait_all(futures)
        for future in futures:
            if future.cancelled():
                raise _closed()
            future.result()

    def execute(self, request: Any) -> int:
        """Send one request on a free sender, in the calling thread."""
        sender = self._free.get()
        try:
            return sender.execute(request)
        finally:
            self._free.put(sender)

    def execute_all(self, requests: Sequence[Any]) -> list[SendOutcome]:
        """Send ``requests`` side by side; one outcome each, in the requests' order.

        Returns once every request has ended. A request's :class:`StoreError` is its
        outcome; any other exception is raised (after every request has ended).
        """
        return self._run(requests)

    def close(self) -> None:
        """Cancel the requests not started, then close every sender (bounded: a busy
        child is killed). A cancelled request's outcome is a transient error."""
        threads, self._threads = self._threads, None
        if threads is not None:
            threads.shutdown(wait=False, cancel_futures=True)  # no queued request starts a child
        for sender in self._senders:
            sender.close()

    def _run(self, requests: Sequence[Any]) -> list[SendOutcome]:
        if len(requests) <= 1 or self.size == 1:
            return list(map(self._one, requests))
        threads = self._pool()
        futures: list[Future[SendOutcome] | None] = []
        for request in requests:
            try:
                futures.append(threads.submit(self._one, request))
            except RuntimeError:  # closed meanwhile: this request and the rest stay unsent
                futures.append(None)
        _wait_all([future for future in futures if future is not None])  # all ended first
        return [
            SendOutcome(None, _closed(), 0.0)
            if future is None or future.cancelled()
            else future.result()
            for future in futures
        ]

    def _pool(self) -> ThreadPoolExecutor:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(self.size, thread_name_prefix="tdengine-sender")
        return self._threads

    def _one(self, request: Any) -> SendOutcome:
        sender = self._free.get()
        try:
            return outcome_of(sender.execute, request)
        finally:
            self._free.put(sender)


def outcome_of(send: Callable[[_R], int], request: _R) -> SendOutcome:
    """``send(request)`` timed: its affected-row count, or the :class:`StoreError` it raised."""
    started = time.perf_counter()
    try:
        affected = send(request)
    except StoreError as exc:
        return SendOutcome(None, exc, time.perf_counter() - started)
    return SendOutcome(int(affected), None, time.perf_counter() - started)


def _wait_all(futures: list[Future[_T]]) -> None:
    """Wait until every future has ended or was cancelled.

    Not ``concurrent.futures.wait``: it never returns for a future that
    ``shutdown(cancel_futures=True)`` cancelled (no worker marks it notified).
    """
    for future in futures:
        with suppress(CancelledError):
            future.exception()  # waits; a cancelled future raises at once
