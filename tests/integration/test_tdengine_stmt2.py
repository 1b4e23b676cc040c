"""The stmt2 write path against a real TDengine over WebSocket.

Selected only when ``TDENGINE_URL`` points at a real server (its ``ws://`` address is
derived from it: same host and port, taosAdapter serves both). The in-repo TDengine
stand-in speaks REST only, with no WebSocket endpoint, so without ``TDENGINE_URL``
every test here is skipped, saying so: this is the one integration module that cannot
run against the stand-in.

The database and super table are created with the production DDL
(:mod:`worker.tdengine.schema`) over REST; every test uses its own database, dropped
at teardown. Every test runs with both senders (the ``stmt2`` fixture): in the
worker's process (:class:`Stmt2Sender`, views made here) and from a child process
(:class:`Stmt2ProcessSender`, plain rows sent there), which must store and refuse
exactly the same.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import msgspec
import pytest

from tests.fixtures.tdengine import TDengineEndpoint
from tests.unit.test_tdengine_sql import trade_events
from tests.unit.test_tdengine_stmt2 import sample_events
from worker.core.events import BalanceEvent
from worker.tdengine.errors import (
    FatalStoreError,
    PermanentStoreError,
    StoreError,
    TransientStoreError,
)
from worker.tdengine.options import TDengineOptions
from worker.tdengine.schema import (
    composite_key_keyword,
    create_database_sql,
    create_stable_sql,
    parse_server_version,
    server_version_sql,
)
from worker.tdengine.sql import InsertBuilder
from worker.tdengine.stmt2 import DEFAULT_SHAPE, SHAPES, BindBuilder, Shape, Stmt2Sender
from worker.tdengine.stmt2_process import Stmt2ProcessSender
from worker.tdengine.transport import RestTransport

pytestmark = [
    pytest.mark.tdengine,
    pytest.mark.skipif(
        not os.environ.get("TDENGINE_URL"),
        reason="stmt2 needs a real TDengine's WebSocket API: set TDENGINE_URL (the in-repo "
        "stand-in serves REST only)",
    ),
]

TS0 = 1_700_000_000_000_000  # 2023-11-14 in microseconds: inside a 3650-day KEEP window


@pytest.fixture
def rest(tdengine_endpoint: TDengineEndpoint) -> Iterator[RestTransport]:
    transport = RestTransport(
        tdengine_endpoint.url, tdengine_endpoint.user, tdengine_endpoint.password
    )
    yield transport
    transport.close()


def create_ledger(rest: RestTransport, database: str) -> None:
    """The production DDL: database with precision 'us', the super table with its key."""
    version = str(rest.query(server_version_sql()).rows[0][0])
    keyword = composite_key_keyword(parse_server_version(version))
    rest.execute(create_database_sql(TDengineOptions(database=database, keep="3650d")))
    rest.execute(create_stable_sql(database, keyword))


@pytest.fixture
def ledger(rest: RestTransport, tdengine_database: str) -> str:
    create_ledger(rest, tdengine_database)
    return tdengine_database


@pytest.fixture
def other_ledger(rest: RestTransport) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    create_ledger(rest, name)
    yield name
    rest.execute(f"DROP DATABASE IF EXISTS `{name}`")


Sender = Stmt2Sender | Stmt2ProcessSender
SenderKind = Literal["inline", "process"]


class Stmt2:
    """Builders and senders of one kind: in the worker's process, or from a child."""

    def __init__(self, kind: SenderKind) -> None:
        self.kind = kind

    def builder(self, **options: Any) -> BindBuilder:
        return BindBuilder(make_views=self.kind == "inline", **options)

    def sender(
        self, url: str, user: str, password: str, database: str, shape: Shape = DEFAULT_SHAPE
    ) -> Sender:
        if self.kind == "inline":
            return Stmt2Sender(url, user, password, database, shape=shape)
        return Stmt2ProcessSender(url, user, password, database, shape=shape, timeout_s=60.0)

    def open(
        self,
        endpoint: TDengineEndpoint,
        database: str,
        shape: Shape = DEFAULT_SHAPE,
        *,
        password: str | None = None,
    ) -> Sender:
        secret = endpoint.password if password is None else password
        return self.sender(endpoint.url, endpoint.user, secret, database, shape)

    def write(self, sender: Sender, events: Sequence[BalanceEvent], **options: Any) -> int:
        try:
            return sum(sender.execute(r) for r in self.builder(**options).build(events))
        finally:
            sender.close()

    def one_request(self, events: Sequence[BalanceEvent] | None = None) -> Any:
        (request,) = self.builder().build(events or trade_events(1, TS0, 3, 4))
        return request


@pytest.fixture(params=["inline", "process"])
def stmt2(request: pytest.FixtureRequest) -> Stmt2:
    kind: SenderKind = request.param
    return Stmt2(kind)


def stored(rest: RestTransport, database: str) -> list[tuple[Any, ...]]:
    result = rest.query(
        f"SELECT tbname, user_id, account_type, * FROM `{database}`.`balance_events` "
        "ORDER BY tbname, ts, event_id"
    )
    return [tuple(row) for row in result.rows]


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# ------------------------------------------------------------------ same rows


@pytest.mark.parametrize("shape", SHAPES)
def test_stmt2_stores_exactly_the_rows_the_sql_path_stores(
    stmt2: Stmt2,
    tdengine_endpoint: TDengineEndpoint,
    rest: RestTransport,
    ledger: str,
    other_ledger: str,
    shape: Shape,
) -> None:
    events = sample_events(trades=300, users=40)
    for statement in InsertBuilder(other_ledger).build(events):
        rest.execute(statement.sql)
    affected = stmt2.write(stmt2.open(tdengine_endpoint, ledger, shape), events)
    assert affected == len(events)
    by_sql, by_stmt2 = stored(rest, other_ledger), stored(rest, ledger)
    assert len(by_stmt2) == len(events)
    assert by_stmt2 == by_sql
    assert {row[0] for row in by_stmt2} == {f"u{e.user_id}_a{e.account_type}" for e in events}


@pytest.mark.parametrize("shape", SHAPES)
def test_writing_the_same_rows_again_overwrites_them_identically(
    stmt2: Stmt2,
    tdengine_endpoint: TDengineEndpoint,
    rest: RestTransport,
    ledger: str,
    shape: Shape,
) -> None:
    events = sample_events(trades=100, users=20)
    sender = stmt2.open(tdengine_endpoint, ledger, shape)
    assert stmt2.write(sender, events) == len(events)
    first = stored(rest, ledger)
    assert stmt2.write(sender, events) == len(events)
    assert stored(rest, ledger) == first


def test_duplicate_identities_in_one_request_are_stored_and_counted_once(
    stmt2: Stmt2, tdengine_endpoint: TDengineEndpoint, rest: RestTransport, ledger: str
) -> None:
    events = sample_events(trades=10)
    (request,) = stmt2.builder().build(events + events[:7])
    sender = stmt2.open(tdengine_endpoint, ledger)
    try:
        affected = sender.execute(request)
    finally:
        sender.close()
    assert request.rows == len(events) + 7
    assert affected == request.distinct_rows() == len(events)
    assert len(stored(rest, ledger)) == len(events)


def test_a_subtable_with_more_rows_than_one_view_holds_is_stored_whole(
    stmt2: Stmt2, tdengine_endpoint: TDengineEndpoint, rest: RestTransport, ledger: str
) -> None:
    base = trade_events(1, TS0, 5, 6)[0]
    events = [
        msgspec.structs.replace(base, ts=TS0 + n, event_id=4 * n, trade_id=n) for n in range(40_000)
    ]
    builder = stmt2.builder(max_rows=50_000)
    (request,) = builder.build(events)
    assert request.tables == 2  # 32,767 + 7,233 rows of u5_a1
    sender = stmt2.open(tdengine_endpoint, ledger)
    try:
        assert sender.execute(request) == 40_000
    finally:
        sender.close()
    count = rest.query(f"SELECT COUNT(*) FROM `{ledger}`.`u5_a1`").rows[0][0]
    assert count == 40_000


# ---------------------------------------------------------------- error classes


def send_once(sender: Sender, request: Any) -> StoreError:
    try:
        with pytest.raises(StoreError) as caught:
            sender.execute(request)
    finally:
        sender.close()
    return caught.value


def test_a_wrong_password_is_fatal(
    stmt2: Stmt2, tdengine_endpoint: TDengineEndpoint, ledger: str
) -> None:
    secret = "not-the-" + uuid.uuid4().hex[:8]
    error = send_once(stmt2.open(tdengine_endpoint, ledger, password=secret), stmt2.one_request())
    assert type(error) is FatalStoreError
    assert error.code == 0x0357
    assert secret not in str(error)


def test_a_missing_database_is_fatal(stmt2: Stmt2, tdengine_endpoint: TDengineEndpoint) -> None:
    missing = f"t_missing_{uuid.uuid4().hex[:12]}"
    error = send_once(stmt2.open(tdengine_endpoint, missing), stmt2.one_request())
    assert type(error) is FatalStoreError
    assert error.code == 0x0388


def test_a_missing_super_table_is_transient(
    stmt2: Stmt2, tdengine_endpoint: TDengineEndpoint, rest: RestTransport, tdengine_database: str
) -> None:
    rest.execute(create_database_sql(TDengineOptions(database=tdengine_database)))
    error = send_once(stmt2.open(tdengine_endpoint, tdengine_database), stmt2.one_request())
    assert type(error) is TransientStoreError
    assert error.code == 0x022B


def test_a_refused_connection_is_transient(
    stmt2: Stmt2, tdengine_endpoint: TDengineEndpoint
) -> None:
    sender = stmt2.sender(
        f"ws://127.0.0.1:{unused_port()}",
        tdengine_endpoint.user,
        tdengine_endpoint.password,
        "ledger",
    )
    error = send_once(sender, stmt2.one_request())
    assert type(error) is TransientStoreError


@pytest.mark.parametrize("shape", SHAPES)
def test_a_timestamp_outside_keep_is_permanent(
    stmt2: Stmt2, tdengine_endpoint: TDengineEndpoint, ledger: str, shape: Shape
) -> None:
    error = send_once(
        stmt2.open(tdengine_endpoint, ledger, shape),
        stmt2.one_request(trade_events(1, 1_000, 3, 4)),
    )
    assert type(error) is PermanentStoreError
    assert error.code == 0x060B


@pytest.mark.parametrize("shape", SHAPES)
def test_a_subtable_name_taken_by_another_super_table_is_permanent(
    stmt2: Stmt2,
    tdengine_endpoint: TDengineEndpoint,
    rest: RestTransport,
    ledger: str,
    shape: Shape,
) -> None:
    rest.execute(f"CREATE STABLE `{ledger}`.`other` (ts TIMESTAMP, v BIGINT) TAGS (t INT)")
    rest.execute(f"CREATE TABLE `{ledger}`.`u3_a1` USING `{ledger}`.`other` TAGS (1)")
    error = send_once(stmt2.open(tdengine_endpoint, ledger, shape), stmt2.one_request())
    assert type(error) is PermanentStoreError
    assert error.code == 0x061D


# ---------------------------------------------------------------- isolation


def test_the_sender_recovers_after_a_refusal_so_refused_rows_can_be_isolated(
    stmt2: Stmt2, tdengine_endpoint: TDengineEndpoint, rest: RestTransport, ledger: str
) -> None:
    """What the writer's bisection needs: a refused request names no group, its row keys
    do; the same sender then stores the other groups' rows."""
    groups = [trade_events(100 + n, TS0 + n, 1 + n, 50) for n in range(8)]
    groups[5] = trade_events(105, 1_000, 6, 50)  # 1970: outside KEEP
    builder = stmt2.builder()
    sender = stmt2.open(tdengine_endpoint, ledger)
    try:
        (everything,) = builder.build(e for g in groups for e in g)
        with pytest.raises(PermanentStoreError):
            sender.execute(everything)
        keys = set(everything.row_keys())
        suspects = [
            n
            for n, g in enumerate(groups)
            if any((e.user_id, e.account_type, e.ts, e.event_id) in keys for e in g)
        ]
        assert suspects == list(range(8))
        good = [e for n, g in enumerate(groups) if n != 5 for e in g]
        (rest_of_batch,) = builder.build(good)
        assert sender.execute(rest_of_batch) == len(good)
    finally:
        sender.close()
    stored_ids = {row[4] for row in stored(rest, ledger)}
    assert stored_ids == {e.event_id for e in good}


def test_the_sink_writes_through_stmt2_and_rejects_only_a_refused_message(
    stmt2: Stmt2, tdengine_options: TDengineOptions, rest: RestTransport
) -> None:
    """The worker's sink with ``write_api = "stmt2"``: schema check over REST, rows bound
    over WebSocket, a message the server refuses (a ts before the KEEP window) isolated.
    From child processes, two senders carry the batch's requests side by side."""
    from worker.engine.sink import MessageKey, MessageRows
    from worker.tdengine.sink import TDengineSink

    options = msgspec.structs.replace(
        tdengine_options,
        keep="3650d",
        write_api="stmt2",
        stmt2_process=stmt2.kind == "process",
        bind_max_rows=8,  # a request per two trades: several in flight at once
    )
    assert options.senders == (2 if stmt2.kind == "process" else 1)
    good = [
        MessageRows(MessageKey("trades", 0, t), trade_events(t, TS0 + t, 100 + t, 1))
        for t in range(1, 7)
    ]
    bad = MessageRows(MessageKey("trades", 0, 7), trade_events(7, 1_000_000, 107, 1))
    sink = TDengineSink.connect(options)
    try:
        result = sink.write([*good[:3], bad, *good[3:]])
        again = sink.write(good)  # identical rows overwrite themselves
    finally:
        sink.close()
    assert [key for key, _ in result.rejected] == [bad.key]
    assert isinstance(result.rejected[0][1], PermanentStoreError)
    assert result.rows_written == again.rows_written == 24
    table = f"`{options.database}`.`balance_events`"
    assert rest.query(f"SELECT COUNT(*) FROM {table}").rows == [[24]]
    assert rest.query(f"SELECT COUNT(*) FROM {table} WHERE trade_id = 7").rows == [[0]]


# ---------------------------------------------------------------- deadline


def test_a_server_that_never_answers_times_out_in_the_child_process(
    tdengine_endpoint: TDengineEndpoint,
) -> None:
    """taos-ws-py has no timeout: a listener that accepts and stays silent would hold an
    in-process connect forever. From a child process, the deadline kills it."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        sender = Stmt2ProcessSender(
            f"ws://127.0.0.1:{port}",
            tdengine_endpoint.user,
            tdengine_endpoint.password,
            "ledger",
            timeout_s=2.0,
        )
        try:
            with pytest.raises(TransientStoreError, match="timed out after 2 s") as caught:
                sender.open()
            assert sender.pid is None
            assert tdengine_endpoint.password not in str(caught.value)
        finally:
            sender.close()
