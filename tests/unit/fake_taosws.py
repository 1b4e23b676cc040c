"""A stand-in for the taos-ws-py module (``taosws``): records what the stmt2 path binds.

Column and tag builders return ``(builder name, values)`` tuples, bind views are
:class:`View` records, and a :class:`FakeTaosws` connection's statements record every
prepare, bind and execute. Failures are scripted per stage with the message format
taos-ws-py 0.7 uses against TDengine 3.3.6.13 (``[0x060B] Internal error: `...```).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Stage = Literal["connect", "prepare", "bind", "execute"]


class Error(Exception):
    """taosws.Error."""


class ConnectionError(Error):
    """taosws.ConnectionError."""


class ProgrammingError(Error):
    """taosws.ProgrammingError."""


class QueryError(Error):
    """taosws.QueryError."""


_ERRORS: dict[Stage, type[Error]] = {
    "connect": ConnectionError,
    "prepare": ProgrammingError,
    "bind": ProgrammingError,
    "execute": QueryError,
}


@dataclass(frozen=True)
class View:
    """One ``stmt2_bind_param_view``: table name, tag views, column views."""

    table_name: str | None
    tags: list[tuple[str, Any]] | None
    columns: list[tuple[str, list[Any]]]


def _column(name: str) -> Any:
    def build(values: Sequence[Any]) -> tuple[str, list[Any]]:
        return (name, list(values))

    build.__name__ = name
    return build


def _tag(name: str) -> Any:
    def build(value: Any) -> tuple[str, Any]:
        return (name, value)

    build.__name__ = name
    return build


@dataclass
class FakeStatement:
    """A stmt2 statement of a :class:`FakeTaosws` connection."""

    module: FakeTaosws
    sql: str | None = None
    bound: list[View] = field(default_factory=list)

    def prepare(self, sql: str) -> None:
        self.module.fail("prepare")
        self.sql = sql
        self.module.prepared.append(sql)

    def bind(self, views: list[View]) -> None:
        self.module.fail("bind")
        self.bound = list(views)
        self.module.binds.append(list(views))

    def execute(self) -> int:
        self.module.fail("execute")
        for view in self.bound:
            refusal = self.module.refused_tables.get(view.table_name or "")
            if refusal is not None:
                raise QueryError(refusal)
        rows = {
            (view.table_name, ts, event_id)
            for view in self.bound
            for ts, event_id in zip(view.columns[0][1], view.columns[1][1], strict=True)
        }
        return len(rows) + self.module.affected_delta


@dataclass
class FakeConnection:
    module: FakeTaosws
    dsn: str
    closed: bool = False

    def stmt2_statement(self) -> FakeStatement:
        self.module.statements += 1
        return FakeStatement(self.module)

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeTaosws:
    """The module: builders, ``connect`` and scripted failures.

    ``failures`` maps a stage to the messages to raise, one per call, until empty.
    """

    failures: dict[Stage, list[str]] = field(default_factory=dict)
    affected_delta: int = 0
    refused_tables: dict[str, str] = field(default_factory=dict)
    """Subtable name -> the message ``execute`` raises for any request binding it."""
    connections: list[FakeConnection] = field(default_factory=list)
    prepared: list[str] = field(default_factory=list)
    binds: list[list[View]] = field(default_factory=list)
    statements: int = 0

    Error = Error
    ConnectionError = ConnectionError
    ProgrammingError = ProgrammingError
    QueryError = QueryError

    micros_timestamps_to_column = staticmethod(_column("micros_timestamps_to_column"))
    big_ints_to_column = staticmethod(_column("big_ints_to_column"))
    ints_to_column = staticmethod(_column("ints_to_column"))
    tiny_ints_to_column = staticmethod(_column("tiny_ints_to_column"))
    bools_to_column = staticmethod(_column("bools_to_column"))
    big_int_to_tag = staticmethod(_tag("big_int_to_tag"))
    tiny_int_to_tag = staticmethod(_tag("tiny_int_to_tag"))

    @staticmethod
    def stmt2_bind_param_view(
        table_name: str | None, tags: list[Any] | None, columns: Sequence[Any]
    ) -> View:
        return View(table_name, None if tags is None else list(tags), list(columns))

    def fail(self, stage: Stage) -> None:
        queued = self.failures.get(stage)
        if queued:
            raise _ERRORS[stage](queued.pop(0))

    def connect(self, dsn: str) -> FakeConnection:
        self.fail("connect")
        connection = FakeConnection(self, dsn)
        self.connections.append(connection)
        return connection
