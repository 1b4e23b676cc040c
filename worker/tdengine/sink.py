"""The TDengine sinks: the engine's :class:`~worker.engine.sink.Sink` over the writer.

The engine's rows go to the writer as they are, and the writer's result, keyed by the
engine's own :class:`~worker.engine.sink.MessageKey`, comes back as the sink result.
"""

from __future__ import annotations

from collections.abc import Sequence

from worker.engine.sink import AllStored, MessageKey, MessageRows, SinkResult
from worker.tdengine.options import TDengineOptions
from worker.tdengine.sql import InsertBuilder
from worker.tdengine.transport import Transport, open_transport
from worker.tdengine.writer import TDengineWriter, WriteResult, WriterObserver, init_database

__all__ = ("StatementOnlySink", "TDengineSink")


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
        try:
            writer = TDengineWriter(transport, options, observer)
            writer.ensure_schema()
        except BaseException:
            transport.close()
            raise
        return cls(writer, transport)

    @staticmethod
    def init_database(options: TDengineOptions) -> str:
        """Create what is missing and check the super table; a human-readable report."""
        return init_database(options)

    def write(self, batch: Sequence[MessageRows]) -> WriteResult[MessageKey]:
        return self._writer.write(batch)

    def close(self) -> None:
        self._transport.close()


class StatementOnlySink:
    """Builds the INSERT statements and discards them: the worker's own cost, measured."""

    def __init__(self, database: str = "ledger") -> None:
        self._builder = InsertBuilder(database)
        self.statements = 0
        self.sql_bytes = 0

    def write(self, batch: Sequence[MessageRows]) -> SinkResult:
        statements = self._builder.build(e for rows in batch for e in rows.events)
        self.statements += len(statements)
        rows = 0
        for statement in statements:
            self.sql_bytes += statement.nbytes
            rows += statement.rows
        return AllStored(rows)

    def close(self) -> None:
        pass
