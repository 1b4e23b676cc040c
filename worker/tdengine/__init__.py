"""TDengine write path: schema, pure SQL building, transports and the batched writer.

Import the public names from here; see each module for details:
``errors`` (classification), ``options`` (``[tdengine]`` config), ``sql`` (pure
statement building), ``schema`` (DDL and checks), ``transport`` (REST and
WebSocket), ``retry`` (the one time budget), ``startup`` (wait for the server,
version and schema) and ``writer`` (isolation, ``init_database``).

The names are imported on first use (PEP 562), so a process that needs one module (a
stmt2 sender's child) does not import them all.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_MODULES: dict[str, str] = {
    "FatalStoreError": "worker.tdengine.errors",
    "InsertBuilder": "worker.tdengine.sql",
    "InsertStatement": "worker.tdengine.sql",
    "NullObserver": "worker.tdengine.writer",
    "OptionsError": "worker.tdengine.errors",
    "PermanentStoreError": "worker.tdengine.errors",
    "QueryResult": "worker.tdengine.transport",
    "RestTransport": "worker.tdengine.transport",
    "RowGroup": "worker.tdengine.writer",
    "RowValueError": "worker.tdengine.errors",
    "SchemaMismatchError": "worker.tdengine.errors",
    "SchemaReport": "worker.tdengine.writer",
    "ServerUnavailableError": "worker.tdengine.errors",
    "StatementSizeError": "worker.tdengine.errors",
    "StoreError": "worker.tdengine.errors",
    "TDengineOptions": "worker.tdengine.options",
    "TDengineWriter": "worker.tdengine.writer",
    "TransientStoreError": "worker.tdengine.errors",
    "Transport": "worker.tdengine.transport",
    "UnsupportedServerError": "worker.tdengine.errors",
    "WebSocketTransport": "worker.tdengine.transport",
    "WriteResult": "worker.tdengine.writer",
    "WriterObserver": "worker.tdengine.writer",
    "build_insert_statements": "worker.tdengine.sql",
    "classify": "worker.tdengine.errors",
    "init_database": "worker.tdengine.writer",
    "open_transport": "worker.tdengine.transport",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'worker.tdengine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
