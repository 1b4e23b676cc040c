"""The TDengine sinks: the engine's :class:`~worker.engine.sink.Sink` over the writer.

The engine's rows go to the writer as they are, and the writer's result, keyed by the
engine's own :class:`~worker.engine.sink.MessageKey`, comes back as the sink result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from operator import attrgetter

from worker.core.event_columns import events_of
from worker.core.events import BalanceEvent
from worker.engine.sink import AllStored, MessageKey, MessageRows, SinkResult
from worker.tdengine.options import TDengineOptions
from worker.tdengine.sql import InsertBuilder
from worker.tdengine.stmt2 import DEFAULT_MAX_ROWS, BindBuilder
from worker.tdengine.transport import Transport, open_transport
from worker.tdengine.write_paths import WriteRequest
from worker.tdengine.writer import (
    PreparedWrite,
    TDengineWriter,
    WriteResult,
    WriterObserver,
    init_database,
)

__all__ = ("BindOnlySink", "BuildOnlySink", "StatementOnlySink", "TDengineSink")

_EVENTS = attrgetter("events")


class TDengineSink:
    """Writes batches through :class:`TDengineWriter` (retries, isolation, checks)."""

    def __init__(self, writer: TDengineWriter, transport: Transport) -> None:
        self._writer = writer
        self._transport = transport

    @classmethod
    def connect(
        cls, options: TDengineOptions, *, observer: WriterObserver | None = None
    ) -> TDengineSink:
        """Open a transport, create or check the schema, and return a ready sink."""
        transport = open_transport(options)
        writer: TDengineWriter | None = None
        try:
            writer = TDengineWriter(transport, options, observer)
            writer.ensure_schema()
            writer.open_path()
        except BaseException:
            if writer is not None:
                writer.close()  # its path's own connections, or stmt2 children started
            transport.close()
            raise
        return cls(writer, transport)

    @staticmethod
    def init_database(options: TDengineOptions) -> str:
        """Create what is missing and check the super table; a human-readable report."""
        return init_database(options)

    def write(self, batch: Sequence[MessageRows]) -> WriteResult[MessageKey]:
        return self._writer.write(batch)

    def prepare(self, batch: Sequence[MessageRows]) -> PreparedWrite[MessageKey]:
        """Build the batch's requests (on the engine's thread; see ``PreparingSink``)."""
        return self._writer.prepare(batch)

    def send(self, prepared: object) -> WriteResult[MessageKey]:
        """Send what :meth:`prepare` built (on the writer thread)."""
        if not isinstance(prepared, PreparedWrite):
            raise TypeError(f"send() takes what prepare() returned, not {type(prepared)!r}")
        return self._writer.send(prepared)

    def close(self) -> None:
        self._writer.close()
        self._transport.close()


class BuildOnlySink:
    """Builds a write path's requests and discards them: the worker's own cost, measured.

    A ``PreparingSink`` as :class:`TDengineSink` is: the engine builds a due batch's
    requests on its own thread (:meth:`prepare`), and :meth:`send` only reports them.
    """

    def __init__(self, build: Callable[[Iterable[BalanceEvent]], Sequence[WriteRequest]]) -> None:
        self._build = build
        self.requests = 0
        self.nbytes = 0

    def prepare(self, batch: Sequence[MessageRows]) -> int:
        """Build the batch's requests; the rows they hold."""
        requests = self._build(events_of(map(_EVENTS, batch)))
        self.requests += len(requests)
        rows = 0
        for request in requests:
            self.nbytes += request.nbytes
            rows += request.rows
        return rows

    def send(self, prepared: object) -> SinkResult:
        if type(prepared) is not int:
            raise TypeError(f"send() takes what prepare() returned, not {type(prepared)!r}")
        return AllStored(prepared)

    def write(self, batch: Sequence[MessageRows]) -> SinkResult:
        return AllStored(self.prepare(batch))

    def close(self) -> None:
        pass


class StatementOnlySink(BuildOnlySink):
    """Builds the INSERT statements of a batch and discards them."""

    def __init__(self, database: str = "ledger") -> None:
        super().__init__(InsertBuilder(database).build)


class BindOnlySink(BuildOnlySink):
    """Builds the stmt2 bind requests of a batch and discards them.

    By default the worker's share with the child-process sender (``stmt2_process``):
    rows checked and sorted into plain columns; with ``make_views`` also taos-ws-py's
    bind views, as the in-process sender needs (the child's share, done here).
    """

    def __init__(self, max_rows: int = DEFAULT_MAX_ROWS, *, make_views: bool = False) -> None:
        super().__init__(BindBuilder(max_rows=max_rows, make_views=make_views).build)
