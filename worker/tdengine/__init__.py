"""TDengine write path: schema, pure SQL building, transports and the batched writer.

Import the public names from here; see each module for details:
``errors`` (classification), ``options`` (``[tdengine]`` config), ``sql`` (pure
statement building), ``schema`` (DDL and checks), ``transport`` (REST and
WebSocket), ``retry`` (the one time budget), ``startup`` (wait for the server,
version and schema) and ``writer`` (isolation, ``init_database``).
"""

from worker.tdengine.errors import (
    FatalStoreError,
    OptionsError,
    PermanentStoreError,
    RowValueError,
    SchemaMismatchError,
    ServerUnavailableError,
    StatementSizeError,
    StoreError,
    TransientStoreError,
    UnsupportedServerError,
    classify,
)
from worker.tdengine.options import TDengineOptions
from worker.tdengine.sql import InsertBuilder, InsertStatement, build_insert_statements
from worker.tdengine.transport import (
    QueryResult,
    RestTransport,
    Transport,
    WebSocketTransport,
    open_transport,
)
from worker.tdengine.writer import (
    NullObserver,
    RowGroup,
    SchemaReport,
    TDengineWriter,
    WriteResult,
    WriterObserver,
    init_database,
)

__all__ = (
    "FatalStoreError",
    "InsertBuilder",
    "InsertStatement",
    "NullObserver",
    "OptionsError",
    "PermanentStoreError",
    "QueryResult",
    "RestTransport",
    "RowGroup",
    "RowValueError",
    "SchemaMismatchError",
    "SchemaReport",
    "ServerUnavailableError",
    "StatementSizeError",
    "StoreError",
    "TDengineOptions",
    "TDengineWriter",
    "TransientStoreError",
    "Transport",
    "UnsupportedServerError",
    "WebSocketTransport",
    "WriteResult",
    "WriterObserver",
    "build_insert_statements",
    "classify",
    "init_database",
    "open_transport",
)
