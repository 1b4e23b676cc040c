"""Error classification and the transports (REST, WebSocket), against fakes of their
HTTP session and driver."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import pytest
import requests

from worker.tdengine.errors import (
    CODE_CLASSES,
    FatalStoreError,
    PermanentStoreError,
    StoreError,
    TransientStoreError,
    classify,
    error_kind,
    make_store_error,
)
from worker.tdengine.options import TDengineOptions
from worker.tdengine.transport import (
    RestTransport,
    WebSocketTransport,
    open_transport,
)

Kind = Literal["transient", "permanent", "fatal"]

# ------------------------------------------------------------ classification

FACT_SHEET_ROWS: list[tuple[int, int, Kind]] = [
    # (code, HTTP status, kind): one case per row of the fact sheet's §2 table and the
    # confirmed-error table. Default taosAdapter mode: errors come with HTTP 200.
    (0x2603, 200, "transient"),  # table missing: we always INSERT ... USING; metadata race
    (0x2662, 200, "transient"),  # fail to get table info (internal)
    (0x0388, 200, "fatal"),  # database not exist
    (0x2616, 200, "fatal"),  # database not specified: our statements always name it
    (0x0217, 200, "fatal"),
    (0x0380, 200, "fatal"),
    (0x2600, 200, "fatal"),  # grammar: our fixed statement shape is not understood
    (0x0216, 200, "permanent"),  # literal overflow / bad value
    (0x2602, 200, "fatal"),  # invalid column name: schema drift
    (0x263F, 200, "fatal"),  # illegal number of columns: schema drift
    (0x2610, 200, "permanent"),  # value too long (docs)
    (0x2653, 200, "permanent"),  # value too long (real server)
    (0x060B, 200, "permanent"),  # timestamp out of range
    (0x0219, 200, "fatal"),  # SQL too long: server limit below max_statement_bytes
    (0x0224, 200, "permanent"),  # value out of range
    (0x263C, 200, "fatal"),  # duplicated column names (DDL)
    (0x061D, 200, "permanent"),  # subtable exists under another stable
    (0x267B, 200, "permanent"),  # composite key NULL
    (0x2678, 200, "fatal"),  # composite key not second column (DDL)
    (0x2679, 200, "fatal"),  # composite key type (DDL)
    (0x0200, 200, "fatal"),  # invalid operation (key column left out, no db)
    (0x0360, 200, "fatal"),  # STable already exists without IF NOT EXISTS
    (0x0357, 200, "fatal"),  # authentication failure
    (0x0351, 200, "fatal"),  # invalid user
    (0x0350, 200, "fatal"),
    (0x0303, 200, "fatal"),  # no privilege
    (0x0512, 200, "fatal"),  # no writing privilege
    (0x0102, 200, "transient"),  # out of memory
    (0x0126, 200, "transient"),
    (0x0531, 200, "transient"),  # query busy
    (0x000B, 200, "transient"),  # unable to establish connection
    (0x0018, 200, "transient"),
    (0x0019, 200, "transient"),
    (0x0020, 200, "transient"),
    (0x0903, 200, "transient"),
    (0x090C, 200, "transient"),
    (0x0914, 200, "transient"),
    (0x0916, 200, "transient"),
    (0x0917, 200, "transient"),
    (0x0125, 200, "transient"),
    (0x0130, 200, "transient"),
    (0x0131, 200, "transient"),
    (0x03D3, 200, "transient"),
    (0x0386, 200, "transient"),
    (0x0396, 200, "transient"),
    # taosAdapter: header problems are 401, limiter and memory 503, params 400.
    (0x1105, 401, "fatal"),
    (0x1124, 401, "fatal"),
    (0x1122, 401, "fatal"),
    (0xFFFF, 503, "transient"),
    (0xFFFF, 400, "fatal"),
    (0x1106, 400, "fatal"),
    (0x1107, 400, "fatal"),
    (0xFFFF, 403, "fatal"),
    # httpCodeServerError=true: the real code rides on 400/401/500/502.
    (0x0216, 400, "permanent"),
    (0x060B, 400, "permanent"),
    (0x2600, 400, "fatal"),
    (0x0357, 401, "fatal"),
    (0x000B, 502, "transient"),
    (0x0388, 500, "fatal"),
    (0x0219, 500, "fatal"),
    (0x2603, 500, "transient"),
]


@pytest.mark.parametrize(("code", "status", "kind"), FACT_SHEET_ROWS)
def test_classification_of_each_fact_sheet_code(code: int, status: int, kind: Kind) -> None:
    assert error_kind(code, status) == kind
    error = make_store_error("x", code, status)
    assert error.kind == kind and isinstance(error, classify(code, status))
    assert error.code == code and error.http_status == status


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        (None, None, "transient"),  # refused, reset, timed out: no answer at all
        (None, 503, "transient"),  # bare JSON string "memory exceeds threshold"
        (None, 500, "transient"),
        (None, 502, "transient"),
        (None, 504, "transient"),
        (None, 429, "transient"),
        (None, 408, "transient"),
        (None, 401, "fatal"),
        (None, 403, "fatal"),
        (None, 404, "fatal"),
        (None, 413, "fatal"),
        (0x1234, 200, "transient"),  # unknown code: stall visibly rather than divert rows
        (0x80002603, 200, "transient"),  # native form is masked
        (0x8000060B, 200, "permanent"),
    ],
)
def test_classification_without_a_known_code(
    code: int | None, status: int | None, kind: Kind
) -> None:
    assert error_kind(code, status) == kind


def test_every_listed_code_has_a_test_row() -> None:
    tested = {code for code, _, _ in FACT_SHEET_ROWS}
    assert set(CODE_CLASSES) - tested <= {0x0352, 0x0353, 0x0354, 0x0355, 0x0356, 0x0362, 0x0218}


def test_store_errors_carry_code_desc_and_status_and_pickle() -> None:
    import pickle

    error = make_store_error("Timestamp data out of range", 0x8000060B, 200)
    assert str(error) == "Timestamp data out of range (code=0x060B, http=200)"
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is PermanentStoreError
    assert (copy.desc, copy.code, copy.http_status) == (error.desc, 0x060B, 200)


# ------------------------------------------------------------- REST transport


@dataclass
class FakeResponse:
    status_code: int
    content: bytes


@dataclass
class FakeSession:
    """Stands in for requests.Session: returns or raises what the test queues."""

    outcomes: list[FakeResponse | Exception] = field(default_factory=list)
    posts: list[tuple[str, bytes, dict[str, str], object]] = field(default_factory=list)
    closed: bool = False

    def post(self, url: str, *, data: bytes, headers: dict[str, str], timeout: object) -> Any:
        self.posts.append((url, data, headers, timeout))
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def close(self) -> None:
        self.closed = True


def rest(*outcomes: FakeResponse | Exception) -> tuple[RestTransport, FakeSession]:
    session = FakeSession(list(outcomes))
    transport = RestTransport(
        "http://td:6041/", "root", "s3cret", timeout_s=2.5, session=cast(requests.Session, session)
    )
    return transport, session


def test_rest_execute_posts_sql_with_basic_auth_and_returns_affected_rows() -> None:
    transport, session = rest(
        FakeResponse(
            200, b'{"code":0,"column_meta":[["affected_rows","INT",4]],"data":[[7]],"rows":1}'
        )
    )
    assert transport.execute("INSERT INTO x") == 7
    url, data, headers, timeout = session.posts[0]
    assert url == "http://td:6041/rest/sql"
    assert data == b"INSERT INTO x"
    assert headers["Authorization"] == "Basic cm9vdDpzM2NyZXQ="
    assert timeout == (2.5, 2.5)
    assert "s3cret" not in repr(transport)


def test_rest_affected_rows_with_row_meta_and_ddl() -> None:
    transport, _ = rest(
        FakeResponse(
            200,
            b'{"code":0,"column_meta":[["affected_rows","INT",4]],"data":[{"affected_rows":3}],"rows":1}',
        ),
        FakeResponse(
            200, b'{"code":0,"column_meta":[["affected_rows","INT",4]],"data":[[0]],"rows":1}'
        ),
    )
    assert transport.execute("INSERT") == 3
    assert transport.execute("CREATE DATABASE x") == 0


def test_rest_query_returns_columns_types_and_rows() -> None:
    transport, _ = rest(
        FakeResponse(
            200,
            b'{"code":0,"column_meta":[["count(*)","BIGINT",8],["ts","TIMESTAMP",8]],'
            b'"data":[[12,"2026-01-01T00:00:00.000000Z"]],"rows":1}',
        )
    )
    result = transport.query("SELECT COUNT(*), ts FROM t")
    assert result.columns == ("count(*)", "ts")
    assert result.types == ("BIGINT", "TIMESTAMP")
    assert result.rows == [[12, "2026-01-01T00:00:00.000000Z"]]


@pytest.mark.parametrize(
    ("response", "kind", "code"),
    [
        (
            FakeResponse(200, b'{"code":1547,"desc":"Timestamp data out of range","timing":1}'),
            "permanent",
            0x060B,
        ),
        (
            FakeResponse(200, b'{"code":855,"desc":"Authentication failure","timing":1}'),
            "fatal",
            0x0357,
        ),
        (FakeResponse(401, b'{"code":855,"desc":"Authentication failure"}'), "fatal", 0x0357),
        (FakeResponse(401, b'{"code":4388,"desc":"invalid basic Authorization"}'), "fatal", 0x1124),
        (FakeResponse(503, b'"memory exceeds threshold"'), "transient", None),
        (FakeResponse(503, b'{"code":65535,"desc":"request limit"}'), "transient", 0xFFFF),
        (FakeResponse(502, b"<html>bad gateway</html>"), "transient", None),
        (FakeResponse(500, b'{"code":9731,"desc":"Table does not exist"}'), "transient", 0x2603),
        (
            FakeResponse(
                400, b'{"code":534,"desc":"syntax error near \'200)\' (tinyint data overflow)"}'
            ),
            "permanent",
            0x0216,
        ),
        (FakeResponse(404, b"404 page not found"), "fatal", None),
        (FakeResponse(200, b"not json"), "transient", None),
    ],
)
def test_rest_errors_are_classified(response: FakeResponse, kind: Kind, code: int | None) -> None:
    transport, _ = rest(response)
    with pytest.raises(StoreError) as info:
        transport.execute("INSERT INTO x")
    assert info.value.kind == kind
    assert info.value.code == code
    assert info.value.http_status == response.status_code


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (requests.exceptions.ConnectionError("Connection refused by s3cret host"), "transient"),
        (requests.exceptions.ReadTimeout("read timed out"), "transient"),
        (requests.exceptions.ConnectTimeout("connect timed out"), "transient"),
        (requests.exceptions.ChunkedEncodingError("reset"), "transient"),
        (requests.exceptions.SSLError("certificate verify failed"), "fatal"),
    ],
)
def test_rest_connection_failures_are_classified_and_scrubbed(exc: Exception, kind: Kind) -> None:
    transport, _ = rest(exc)
    with pytest.raises(StoreError) as info:
        transport.execute("INSERT INTO x")
    assert info.value.kind == kind and info.value.code is None
    assert "s3cret" not in str(info.value)


def test_rest_close_closes_the_session() -> None:
    transport, session = rest()
    transport.close()
    assert session.closed


def test_open_transport_picks_the_scheme() -> None:
    assert isinstance(open_transport(TDengineOptions(url="http://h:6041")), RestTransport)
    assert isinstance(open_transport(TDengineOptions(url="https://h:6041")), RestTransport)
    assert isinstance(open_transport(TDengineOptions(url="ws://h:6041")), WebSocketTransport)
    assert isinstance(open_transport(TDengineOptions(url="wss://h")), WebSocketTransport)


# -------------------------------------------------------- WebSocket transport


class FakeWsError(Exception):
    pass


@dataclass
class FakeField:
    name: str
    type: str


class FakeResult:
    def __init__(self, fields: list[FakeField], rows: list[tuple[object, ...]]) -> None:
        self.fields = fields
        self._rows = rows

    def __iter__(self) -> Iterator[tuple[object, ...]]:
        return iter(self._rows)


@dataclass
class FakeWsConnection:
    fail: Exception | None = None
    closed: bool = False

    def execute(self, sql: str) -> int:
        if self.fail is not None:
            raise self.fail
        return 4

    def query(self, sql: str) -> FakeResult:
        if self.fail is not None:
            raise self.fail
        return FakeResult([FakeField("server_version()", "VARCHAR")], [("3.3.6.3",)])

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeTaosws:
    connection: FakeWsConnection = field(default_factory=FakeWsConnection)
    dsns: list[str] = field(default_factory=list)
    refuse: Exception | None = None

    def connect(self, dsn: str) -> FakeWsConnection:
        self.dsns.append(dsn)
        if self.refuse is not None:
            raise self.refuse
        return self.connection


def ws(module: FakeTaosws) -> WebSocketTransport:
    transport = WebSocketTransport("wss://td.example:6443", "root", "p@ss:word", timeout_s=3)
    transport._module = module
    return transport


def test_ws_execute_and_query() -> None:
    module = FakeTaosws()
    transport = ws(module)
    assert transport.execute("INSERT INTO x") == 4
    result = transport.query("SELECT SERVER_VERSION()")
    assert result.columns == ("server_version()",) and result.rows == [("3.3.6.3",)]
    assert module.dsns == ["wss://root:p%40ss%3Aword@td.example:6443"]
    assert "p@ss" not in repr(transport)


def test_ws_errors_read_the_code_from_the_message_and_reconnect() -> None:
    module = FakeTaosws(
        connection=FakeWsConnection(fail=FakeWsError("[0x060B] Timestamp data out of range"))
    )
    transport = ws(module)
    with pytest.raises(PermanentStoreError) as info:
        transport.execute("INSERT INTO x")
    assert info.value.code == 0x060B
    assert module.connection.closed
    module.connection = FakeWsConnection()
    assert transport.execute("INSERT INTO x") == 4
    assert len(module.dsns) == 2


def test_ws_connect_failures_are_transient_or_fatal_and_scrubbed() -> None:
    refused = FakeTaosws(refuse=FakeWsError("connection refused to wss://root:p@ss:word@td"))
    with pytest.raises(TransientStoreError) as info:
        ws(refused).execute("x")
    assert "p@ss:word" not in str(info.value)
    denied = FakeTaosws(refuse=FakeWsError("[0x0357] Authentication failure"))
    with pytest.raises(FatalStoreError):
        ws(denied).query("x")
