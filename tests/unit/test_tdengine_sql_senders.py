"""SQL statements side by side: ``tdengine.sql_senders`` and :class:`SqlPath` with more
than one connection, alone and under the writer.

Concurrency is shown with barriers (a statement that needs another in flight at once
to pass), never with timing.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.unit.test_tdengine_writer import FAST, FakeTransport, trade_groups
from worker.ops.config import load_settings
from worker.ops.config_errors import ConfigErrors
from worker.tdengine import sink, write_paths
from worker.tdengine.errors import (
    FatalStoreError,
    OptionsError,
    PermanentStoreError,
    TransientStoreError,
)
from worker.tdengine.options import DEFAULT_SQL_SENDERS, MAX_SQL_SENDERS, TDengineOptions
from worker.tdengine.sink import TDengineSink
from worker.tdengine.sql import InsertStatement
from worker.tdengine.transport import RestTransport, WebSocketTransport
from worker.tdengine.write_paths import SqlPath, open_write_path
from worker.tdengine.writer import TDengineWriter

WAIT_S = 20.0
"""How long a barrier waits for its partner: far past any scheduling delay."""


class SharedServer:
    """One in-memory TDengine behind several connections (a lock around each call)."""

    def __init__(self) -> None:
        self.store = FakeTransport()
        self.lock = threading.Lock()

    def execute(self, sql: str) -> int:
        with self.lock:
            return self.store.execute(sql)


class Connection:
    """A connection to :class:`SharedServer`; each INSERT first meets ``barrier``."""

    def __init__(self, server: SharedServer, barrier: threading.Barrier | None = None) -> None:
        self.server = server
        self.barrier = barrier
        self.used = 0
        self.busy = threading.Lock()
        self.closed = False

    def execute(self, sql: str) -> int:
        if not self.busy.acquire(blocking=False):
            raise AssertionError("a connection carried two statements at once")
        try:
            self.used += 1
            if self.barrier is not None and sql.startswith("INSERT"):
                self.barrier.wait(WAIT_S)
            return self.server.execute(sql)
        finally:
            self.busy.release()

    def query(self, sql: str) -> Any:
        raise AssertionError(f"no query expected: {sql}")

    def close(self) -> None:
        self.closed = True


def statements(path: SqlPath, trades: int) -> list[InsertStatement]:
    built = path.build([event for group in trade_groups(trades) for event in group.events])
    assert len(built) >= 4, "the test needs several statements"
    return built


def trade_of(row: Any) -> int:
    """The trade of a stored row (its event_id // 4)."""
    return int(row[3]) // 4


SMALL = 4_096
"""Statement bytes (the least allowed): a few dozen rows each, so a batch makes several."""


# ------------------------------------------------------------------ options


def test_sql_senders_default_to_two_over_rest_and_one_over_websocket() -> None:
    rest = TDengineOptions(password="taosdata")
    assert rest.sql_sender_count == DEFAULT_SQL_SENDERS == 2
    assert TDengineOptions(url="https://db:6041", password="x").sql_sender_count == 2
    assert TDengineOptions(url="ws://db:6041", password="x").sql_sender_count == 1
    assert TDengineOptions(password="x", sql_senders=5).sql_sender_count == 5
    assert TDengineOptions(url="wss://db:6041", password="x", sql_senders=1).sql_sender_count == 1


@pytest.mark.parametrize("value", [0, MAX_SQL_SENDERS + 1, -1, True])
def test_sql_senders_out_of_range_name_the_field(value: Any) -> None:
    with pytest.raises(OptionsError, match=rf"tdengine\.sql_senders.*1\.\.{MAX_SQL_SENDERS}"):
        TDengineOptions(password="taosdata", sql_senders=value)


def test_several_sql_senders_need_rest() -> None:
    with pytest.raises(OptionsError, match=r"tdengine\.sql_senders.*http\(s\) tdengine\.url"):
        TDengineOptions(url="ws://db:6041", password="taosdata", sql_senders=2)
    with pytest.raises(msgspec.ValidationError, match="sql_senders"):
        msgspec.convert({"sql_senders": "2"}, TDengineOptions)


# ------------------------------------------------------------------ the path


def test_the_path_opens_more_rest_connections_and_closes_only_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = SharedServer()
    opened: list[Connection] = []

    def open_transport(options: TDengineOptions) -> Connection:
        assert options.url == "http://localhost:6041"
        opened.append(Connection(server))
        return opened[-1]

    monkeypatch.setattr(write_paths, "open_transport", open_transport)
    options = TDengineOptions(password="taosdata", sql_senders=3)
    mine = RestTransport(options.url, options.user, options.password)
    path = open_write_path(options, mine)
    assert isinstance(path, SqlPath) and path.parallel_sends == 3 and len(opened) == 2
    path.close()
    assert all(connection.closed for connection in opened)
    mine.close()


def test_other_transports_send_alone() -> None:
    options = TDengineOptions(url="ws://db:6041", password="taosdata")
    websocket = WebSocketTransport(options.url, options.user, options.password)
    assert open_write_path(options, websocket).parallel_sends == 1
    fake = Connection(SharedServer())
    rest_options = TDengineOptions(password="taosdata", sql_senders=4)
    assert open_write_path(rest_options, fake).parallel_sends == 1


def test_send_all_has_two_statements_in_flight_at_once() -> None:
    server, barrier = SharedServer(), threading.Barrier(2)
    first, second = Connection(server, barrier), Connection(server, barrier)
    path = SqlPath(first, "ledger", SMALL, extra=[second])
    built = statements(path, 60)
    if len(built) % 2:  # every statement meets a partner
        built = built[:-1]
    outcomes = path.send_all(built)
    assert [o.error for o in outcomes] == [None] * len(built)
    assert [o.affected for o in outcomes] == [s.rows for s in built]
    assert first.used + second.used == len(built) and first.used and second.used
    path.close()
    assert second.closed and not first.closed


def test_each_statement_keeps_its_own_error_and_order() -> None:
    server = SharedServer()
    refusal = PermanentStoreError("[0x2603] Table does not exist", code=0x2603)
    refusing = {"sql": ""}

    class Refusing(Connection):
        def execute(self, sql: str) -> int:
            if sql in refusing.values():
                raise refusal
            return super().execute(sql)

    path = SqlPath(Refusing(server), "ledger", SMALL, extra=[Refusing(server)])
    built = statements(path, 60)
    refusing.update(first=built[1].sql, last=built[-1].sql)
    outcomes = path.send_all(built)
    refused = {1, len(built) - 1}
    assert [i for i, o in enumerate(outcomes) if o.error is refusal] == sorted(refused)
    assert [o.affected for i, o in enumerate(outcomes) if i not in refused] == [
        s.rows for i, s in enumerate(built) if i not in refused
    ]
    path.close()


# ------------------------------------------------------------------ under the writer


def sql_writer(server: SharedServer, senders: int = 2) -> TDengineWriter:
    connections = [Connection(server) for _ in range(senders)]
    options = msgspec.structs.replace(FAST, max_statement_bytes=SMALL)
    path = SqlPath(connections[0], "ledger", SMALL, extra=connections[1:])
    return TDengineWriter(server.store, options, path=path, sleep=lambda _: None)


def test_the_writer_stores_every_row_once_through_two_connections() -> None:
    two, one = SharedServer(), SharedServer()
    groups = trade_groups(60)
    assert sql_writer(two).write(groups).rows_written == 240
    assert sql_writer(one, senders=1).write(groups).rows_written == 240
    assert two.store.rows == one.store.rows and len(two.store.rows) == 240


def test_the_writer_isolates_a_refused_message_sent_beside_others() -> None:
    server = SharedServer()
    refusal = PermanentStoreError("[0x060B] Timestamp data out of range", code=0x060B)
    bad_trade = 17
    server.store.reject_row = lambda row: refusal if trade_of(row) == bad_trade else None
    groups = trade_groups(40)
    result = sql_writer(server).write(groups)
    assert [key for key, _ in result.rejected] == [("trades", 0, bad_trade - 1)]
    assert result.rows_written == 39 * 4
    assert {trade_of(row) for row in server.store.rows} == set(range(1, 41)) - {bad_trade}


def test_the_writer_retries_a_failed_first_attempt_alone() -> None:
    server = SharedServer()
    server.store.errors = [TransientStoreError("connection reset")]
    result = sql_writer(server).write(trade_groups(40))
    assert result.rows_written == 160 and not result.rejected
    assert len(server.store.rows) == 160


def test_a_sink_that_cannot_start_closes_every_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    refusal = FatalStoreError("[0x0357] Authentication failure", code=0x0357)
    extra: list[Connection] = []
    closed: list[str] = []

    class RefusedRest(RestTransport):
        def execute(self, sql: str) -> int:
            raise refusal

        def query(self, sql: str) -> Any:
            raise refusal

        def close(self) -> None:
            closed.append("sink's own")
            super().close()

    def open_extra(options: TDengineOptions) -> Connection:
        extra.append(Connection(SharedServer()))
        return extra[-1]

    monkeypatch.setattr(write_paths, "open_transport", open_extra)
    monkeypatch.setattr(sink, "open_transport", lambda o: RefusedRest(o.url, o.user, o.password))
    options = TDengineOptions(password="taosdata", sql_senders=3, startup_timeout_s=0.0)
    with pytest.raises(FatalStoreError, match="Authentication"):
        TDengineSink.connect(options)
    assert len(extra) == 2 and all(connection.closed for connection in extra)
    assert closed == ["sink's own"]


def test_a_refused_sql_senders_names_its_environment_variable() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "config.toml"
    environ = {
        "BALANCE_SINK_TDENGINE__SQL_SENDERS": "2",
        "BALANCE_SINK_TDENGINE__URL": "ws://db:6041",
    }
    with pytest.raises(
        ConfigErrors, match=r"BALANCE_SINK_TDENGINE__SQL_SENDERS=2: tdengine\.sql_senders"
    ):
        load_settings(example, environ)
    loaded = load_settings(example, {"BALANCE_SINK_TDENGINE__SQL_SENDERS": "3"})
    assert loaded.tdengine.sql_sender_count == 3
