"""The sink interface the consumer loop writes batches to, and a discarding sink.

A sink stores the rows of many messages at once. It raises
:class:`~worker.tdengine.errors.TransientStoreError` when the whole batch should be
retried later (safe: rows overwrite themselves), raises
:class:`~worker.tdengine.errors.FatalStoreError` when the worker must stop, and
returns the messages whose own rows the store refused (to be dead-lettered).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, NamedTuple, Protocol

from worker.core.events import BalanceEvent

__all__ = ("MessageKey", "MessageRows", "Sink", "SinkResult")


class MessageKey(NamedTuple):
    """Where a message came from: its identity in the whole pipeline."""

    topic: str
    partition: int
    offset: int


class MessageRows(NamedTuple):
    """The rows of one message, keyed by the message, and the record they came from."""

    key: MessageKey
    events: Sequence[BalanceEvent]
    source: Any = None
    """The Kafka message, kept to dead-letter it unchanged if the store refuses it."""


class SinkResult(NamedTuple):
    """What a write stored, and which messages the store refused (key -> reason text)."""

    rows_written: int
    rejected: Sequence[tuple[Hashable, str]]


class Sink(Protocol):
    """Stores batches of message rows."""

    def write(self, batch: Sequence[MessageRows]) -> SinkResult:
        """Store every row of ``batch`` or raise; see the module docstring."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
