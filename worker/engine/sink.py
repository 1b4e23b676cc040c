"""The sink contract: what the engine writes batches to, and the only errors it catches.

A sink stores the rows of many messages in one :meth:`Sink.write`. It either

* returns a :class:`SinkResult`: the rows stored, and the messages whose own rows the
  store refused (each with its error; the engine dead-letters them as
  ``sink_rejected``);
* raises :class:`SinkTransientError`: nothing is known to be stored; the engine pauses
  its partitions and retries the whole batch later, which is safe because every row
  overwrites itself;
* or raises :class:`SinkFatalError`: the engine stops and commits nothing further.

Any other exception is a bug and stops the engine the same way.

A sink may also be a :class:`PreparingSink`: its write split into CPU work and the
store's round trips, so that a writer thread only waits (see the class).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol, runtime_checkable

import msgspec
from confluent_kafka import Message

from worker.core.events import BalanceEvent
from worker.errors import SinkFatalError, SinkTransientError

__all__ = (
    "AllStored",
    "CountingSink",
    "MessageKey",
    "MessageRows",
    "PreparingSink",
    "Sink",
    "SinkFatalError",
    "SinkResult",
    "SinkTransientError",
)


class MessageKey(NamedTuple):
    """Where a message came from: its identity in the whole pipeline."""

    topic: str
    partition: int
    offset: int


class MessageRows(msgspec.Struct, frozen=True, gc=False):
    """The rows of one message, keyed by the message, and the record they came from.

    A Struct: one is made for every message read, and a Struct is made in C (a
    NamedTuple takes two allocations and a Python call). Nothing it holds refers back
    to it, so the collector need not track it.
    """

    key: MessageKey
    events: Sequence[BalanceEvent]
    source: Message | None = None
    """The Kafka message, kept to dead-letter it unchanged if the store refuses it."""


class SinkResult(Protocol):
    """What one write stored, and which messages the store refused, with the error."""

    @property
    def rows_written(self) -> int: ...
    @property
    def rejected(self) -> Sequence[tuple[MessageKey, Exception]]: ...


class AllStored(NamedTuple):
    """A :class:`SinkResult` with nothing refused, for sinks that take every row."""

    rows_written: int
    rejected: tuple[()] = ()


class Sink(Protocol):
    """Stores batches of message rows; see the module docstring for the contract."""

    def write(self, batch: Sequence[MessageRows]) -> SinkResult:
        """Store every row of ``batch``, or raise a sink error."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class PreparingSink(Protocol):
    """A sink whose write is :meth:`prepare` then :meth:`send`.

    The engine prepares a batch on its own thread when it is due, and the writer thread
    only sends it: CPU work in either thread holds the GIL, so a writer thread overlaps
    reading only with waits. ``prepare`` may run while an earlier batch is sent; it
    does no I/O and raises only for bugs (rows the store will refuse are ``send``'s to
    report). ``send`` answers as :meth:`Sink.write` does; a retry sends the same
    prepared batch again. A batch changed after it was prepared (a revoke) is written
    with :meth:`Sink.write` instead.
    """

    def prepare(self, batch: Sequence[MessageRows]) -> object:
        """What :meth:`send` needs to store ``batch`` (statements, bound columns, ...)."""
        ...

    def send(self, prepared: object) -> SinkResult:
        """Store a prepared batch, or raise a sink error."""
        ...


class CountingSink:
    """Counts the rows it is given and stores nothing (``replay --dry-run``)."""

    def write(self, batch: Sequence[MessageRows]) -> SinkResult:
        return AllStored(sum(len(rows.events) for rows in batch))

    def close(self) -> None:
        pass
