"""The writer (retries, isolation, fatal errors, affected rows), error classification and
the transports, against small in-memory doubles (not the REST double)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import msgspec
import pytest
import requests

from tests.unit.test_tdengine_sql import event, parse_statement, trade_events
from worker.tdengine import writer as writer_module
from worker.tdengine.errors import (
    CODE_CLASSES,
    FatalStoreError,
    PermanentStoreError,
    RowValueError,
    SchemaMismatchError,
    StoreError,
    TransientStoreError,
    UnsupportedServerError,
    classify,
    error_kind,
    make_store_error,
)
from worker.tdengine.options import TDengineOptions
from worker.tdengine.transport import (
    QueryResult,
    RestTransport,
    Transport,
    WebSocketTransport,
    open_transport,
)
from worker.tdengine.writer import RowGroup, TDengineWriter, init_database

Row = tuple[object, ...]
INS_DATABASES = "SELECT name, `precision` FROM information_schema.ins_databases WHERE name = "
Kind = Literal["transient", "permanent", "fatal"]


# ------------------------------------------------------------------ doubles


@dataclass
class FakeTransport:
    """An in-memory TDengine: parses our INSERTs, keeps rows by identity, scripts failures."""

    version: str = "3.3.6.3"
    precision: str = "us"
    databases: set[str] = field(default_factory=set)
    stables: dict[str, list[list[object]]] = field(default_factory=dict)
    rows: dict[tuple[object, ...], Row] = field(default_factory=dict)
    errors: list[StoreError] = field(default_factory=list)
    """Raised one per call, before anything else, until empty."""
    always: StoreError | None = None
    reject_row: Callable[[Row], StoreError | None] = lambda row: None
    """A statement with any row for which this returns an error fails whole."""
    affected_delta: int = 0
    executed: list[str] = field(default_factory=list)
    queried: list[str] = field(default_factory=list)
    closed: bool = False

    def _fail_first(self) -> None:
        if self.always is not None:
            raise self.always
        if self.errors:
            raise self.errors.pop(0)

    def execute(self, sql: str) -> int:
        self.executed.append(sql)
        self._fail_first()
        if sql.startswith("CREATE DATABASE IF NOT EXISTS `"):
            self.databases.add(sql.split("`")[1])
            return 0
        if sql.startswith("CREATE STABLE IF NOT EXISTS `"):
            keyword = "COMPOSITE KEY" if "COMPOSITE KEY" in sql else "PRIMARY KEY"
            self.stables[sql.split("`")[1]] = described_rows(keyword)
            return 0
        assert sql.startswith("INSERT INTO `"), sql[:60]
        parsed = parse_statement(sql)
        for row in parsed:
            error = self.reject_row(row)
            if error is not None:
                raise error
        distinct = {row[:4] for row in parsed}
        for row in parsed:
            self.rows[row[:4]] = row
        return len(distinct) + self.affected_delta

    def query(self, sql: str) -> QueryResult:
        self.queried.append(sql)
        self._fail_first()
        if sql == "SELECT SERVER_VERSION()":
            return QueryResult(("server_version()",), ("VARCHAR",), [[self.version]])
        if sql.startswith(INS_DATABASES):
            name = sql.removeprefix(INS_DATABASES).strip("'")
            rows: list[Sequence[Any]] = [[name, self.precision]] if name in self.databases else []
            return QueryResult(("name", "precision"), ("VARCHAR", "VARCHAR"), rows)
        if sql.startswith("DESCRIBE `"):
            database = sql.split("`")[1]
            if database not in self.databases:
                raise make_store_error("Database not exist", 0x0388, 200)
            if database not in self.stables:
                raise make_store_error("Table does not exist", 0x2603, 200)
            return QueryResult(
                ("field", "type", "length", "note"),
                ("VARCHAR", "VARCHAR", "INT", "VARCHAR"),
                list(self.stables[database]),
            )
        raise AssertionError(f"unexpected query {sql}")

    def close(self) -> None:
        self.closed = True


def described_rows(keyword: str) -> list[list[object]]:
    columns = [
        ("ts", "TIMESTAMP"),
        ("event_id", "BIGINT"),
        ("event_type", "TINYINT"),
        ("trade_id", "BIGINT"),
        ("debit_asset", "INT"),
        ("debit_amt", "BIGINT"),
        ("credit_asset", "INT"),
        ("credit_amt", "BIGINT"),
        ("fee", "BIGINT"),
        ("fee_asset", "INT"),
        ("is_maker", "BOOL"),
        ("from_user", "BIGINT"),
    ]
    rows: list[list[object]] = [
        [name, kind, 8, keyword if name == "event_id" else ""] for name, kind in columns
    ]
    rows += [["user_id", "BIGINT", 8, "TAG"], ["account_type", "TINYINT", 1, "TAG"]]
    return rows


@dataclass
class RecordingObserver:
    statements: list[tuple[int, int, float]] = field(default_factory=list)
    retries: list[StoreError] = field(default_factory=list)
    errors: list[tuple[Kind, int | None]] = field(default_factory=list)
    mismatches: list[tuple[int, int]] = field(default_factory=list)

    def on_statement(self, rows: int, nbytes: int, seconds: float) -> None:
        self.statements.append((rows, nbytes, seconds))

    def on_retry(self, error: StoreError) -> None:
        self.retries.append(error)

    def on_error(self, kind: Kind, code: int | None) -> None:
        self.errors.append((kind, code))

    def on_affected_mismatch(self, expected: int, actual: int) -> None:
        self.mismatches.append((expected, actual))


class FakeSleep:
    """Sleeps in fake time: each wait advances ``now``, the writer's clock."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.now = 0.0

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


FAST = TDengineOptions(
    database="ledger",
    retry_initial_backoff_s=0.01,
    retry_max_backoff_s=0.05,
    retry_max_elapsed_s=5.0,
)


def make_writer(
    transport: FakeTransport,
    options: TDengineOptions = FAST,
) -> tuple[TDengineWriter, RecordingObserver, FakeSleep]:
    observer = RecordingObserver()
    sleep = FakeSleep()
    writer = TDengineWriter(transport, options, observer, sleep=sleep, clock=sleep.clock)
    return writer, observer, sleep


def trade_groups(count: int, *, first_trade: int = 1) -> list[RowGroup]:
    """One group (Kafka message) per trade, keyed like the worker: (topic, partition, offset)."""
    return [
        RowGroup(
            key=("trades", 0, offset),
            events=trade_events(
                first_trade + offset, 1_700_000_000_000_000 + offset, 10 + offset % 7, 20
            ),
        )
        for offset in range(count)
    ]


def stored_keys(transport: FakeTransport) -> set[tuple[object, ...]]:
    return set(transport.rows)


def keys_of(groups: Sequence[RowGroup]) -> set[tuple[object, ...]]:
    return {(e.user_id, e.account_type, e.ts, e.event_id) for g in groups for e in g.events}


# --------------------------------------------------------------- happy path


def test_batch_is_written_in_one_statement_and_counted() -> None:
    transport = FakeTransport()
    writer, observer, _ = make_writer(transport)
    groups = trade_groups(25)
    result = writer.write(groups)
    assert result.rows_written == 100
    assert result.statements == 1
    assert result.rejected == []
    assert stored_keys(transport) == keys_of(groups)
    assert [s[:2] for s in observer.statements] == [(100, len(transport.executed[0]))]
    assert observer.errors == []
    assert observer.mismatches == []


def test_writing_the_same_batch_twice_leaves_the_same_rows() -> None:
    transport = FakeTransport()
    writer, observer, _ = make_writer(transport)
    groups = trade_groups(10)
    writer.write(groups)
    before = dict(transport.rows)
    result = writer.write(groups)
    assert result.rows_written == 40
    assert transport.rows == before
    assert observer.mismatches == []


def test_buyer_equal_to_seller_writes_both_rows() -> None:
    transport = FakeTransport()
    writer, _, _ = make_writer(transport)
    group = RowGroup(key=("t", 0, 1), events=trade_events(5, 1_000, buyer=3, seller=3))
    assert writer.write([group]).rows_written == 4
    assert {k for k in transport.rows if k[0] == 3} == {(3, 1, 1_000, 20), (3, 1, 1_000, 21)}


def test_large_batch_is_split_into_statements_within_the_limit() -> None:
    transport = FakeTransport()
    options = msgspec.structs.replace(FAST, max_statement_bytes=8_192)
    writer, observer, _ = make_writer(transport, options)
    groups = trade_groups(200)
    result = writer.write(groups)
    assert result.statements == len(transport.executed) > 5
    assert all(len(sql) <= 8_192 for sql in transport.executed)
    assert stored_keys(transport) == keys_of(groups)
    assert sum(s[0] for s in observer.statements) == 800


# --------------------------------------------------------------- transient


def test_transient_errors_are_retried_until_success() -> None:
    transport = FakeTransport(
        errors=[
            TransientStoreError("Service Unavailable", http_status=503),
            TransientStoreError("connection refused"),
            make_store_error("Sync leader is unreachable", 0x090C, 200),
        ]
    )
    writer, observer, sleep = make_writer(transport)
    groups = trade_groups(3)
    result = writer.write(groups)
    assert result.rows_written == 12 and result.rejected == []
    assert len(transport.executed) == 4
    assert len(observer.retries) == 3 == len(sleep.waits)
    assert all(0 <= w <= FAST.retry_max_backoff_s for w in sleep.waits)
    assert [kind for kind, _ in observer.errors] == ["transient"] * 3
    assert stored_keys(transport) == keys_of(groups)


def test_the_documented_budget_is_the_only_limit_on_retries() -> None:
    """Defaults: retries go on for the whole retry_max_elapsed_s (15 s), far past 8 attempts."""
    transport = FakeTransport(always=TransientStoreError("Service Unavailable", http_status=503))
    options = TDengineOptions(database="ledger")
    assert options.retry_max_elapsed_s == 15.0
    writer, observer, sleep = make_writer(transport, options)
    random.seed(1)
    with pytest.raises(TransientStoreError):
        writer.write(trade_groups(2))
    # The last attempt starts when the budget ends: the last wait is cut to fit it.
    assert sleep.now == pytest.approx(15.0)
    assert len(transport.executed) == len(sleep.waits) + 1 > 8
    assert len(observer.retries) == len(sleep.waits)
    assert all(w <= options.retry_max_backoff_s for w in sleep.waits)


@pytest.mark.parametrize("seed", range(5))
def test_retries_give_up_exactly_at_the_elapsed_bound(seed: int) -> None:
    transport = FakeTransport(always=TransientStoreError("connection refused"))
    options = msgspec.structs.replace(
        FAST,
        retry_initial_backoff_s=0.02,
        retry_max_backoff_s=0.5,
        retry_max_elapsed_s=3.0,
    )
    writer, observer, sleep = make_writer(transport, options)
    random.seed(seed)  # the backoff's jitter
    with pytest.raises(TransientStoreError):
        writer.write(trade_groups(1))
    assert sleep.now == pytest.approx(3.0)
    assert len(transport.executed) == len(sleep.waits) + 1 >= 6
    assert len(observer.retries) == len(sleep.waits)


def test_a_zero_budget_means_one_attempt() -> None:
    transport = FakeTransport(always=TransientStoreError("connection refused"))
    writer, observer, sleep = make_writer(
        transport, msgspec.structs.replace(FAST, retry_max_elapsed_s=0.0)
    )
    with pytest.raises(TransientStoreError):
        writer.write(trade_groups(1))
    assert len(transport.executed) == 1 and sleep.waits == [] and observer.retries == []


def test_retries_with_real_time_end_near_the_bound() -> None:
    transport = FakeTransport(always=TransientStoreError("connection refused"))
    options = msgspec.structs.replace(
        FAST,
        retry_initial_backoff_s=0.01,
        retry_max_backoff_s=0.05,
        retry_max_elapsed_s=0.3,
    )
    writer = TDengineWriter(transport, options)  # real sleep, real clock
    started = time.monotonic()
    with pytest.raises(TransientStoreError):
        writer.write(trade_groups(1))
    assert time.monotonic() - started < 5.0  # generous: only "it stops", on a busy machine
    assert len(transport.executed) >= 3


# --------------------------------------------------------------- permanent


def _timestamp_out_of_range(bad_ts: set[int]) -> Callable[[Row], StoreError | None]:
    def check(row: Row) -> StoreError | None:
        if row[2] in bad_ts:
            return make_store_error("Timestamp data out of range", 0x060B, 200)
        return None

    return check


def test_permanent_error_is_isolated_to_its_message_and_the_rest_is_written() -> None:
    groups = trade_groups(40)
    bad = groups[17]
    transport = FakeTransport(reject_row=_timestamp_out_of_range({bad.events[0].ts}))
    writer, observer, sleep = make_writer(transport)
    result = writer.write(groups)
    assert [key for key, _ in result.rejected] == [bad.key]
    error = result.rejected[0][1]
    assert isinstance(error, PermanentStoreError)
    assert (error.code, error.desc) == (0x060B, "Timestamp data out of range")
    good = [g for g in groups if g is not bad]
    assert stored_keys(transport) == keys_of(good)
    assert result.rows_written == 4 * 39
    assert sleep.waits == []  # permanent errors are never retried as such
    assert ("permanent", 0x060B) in observer.errors


def test_two_bad_messages_are_both_found_among_many() -> None:
    groups = trade_groups(64)
    bad = [groups[3], groups[50]]
    transport = FakeTransport(reject_row=_timestamp_out_of_range({g.events[0].ts for g in bad}))
    writer, _, _ = make_writer(transport)
    result = writer.write(groups)
    assert [key for key, _ in result.rejected] == [g.key for g in bad]
    assert stored_keys(transport) == keys_of([g for g in groups if g not in bad])
    # Bisection, not one request per message.
    assert len(transport.executed) < 40


def test_isolation_across_several_statements() -> None:
    groups = trade_groups(120)
    bad = groups[77]
    transport = FakeTransport(reject_row=_timestamp_out_of_range({bad.events[0].ts}))
    options = msgspec.structs.replace(FAST, max_statement_bytes=8_192)
    writer, _, _ = make_writer(transport, options)
    result = writer.write(groups)
    assert [key for key, _ in result.rejected] == [bad.key]
    assert stored_keys(transport) == keys_of([g for g in groups if g is not bad])


def test_a_value_out_of_column_range_rejects_its_message_without_sending_it() -> None:
    groups = trade_groups(5)
    broken = RowGroup(key=("trades", 0, 99), events=[event(account_type=128)])
    transport = FakeTransport()
    writer, _, _ = make_writer(transport)
    result = writer.write([*groups, broken])
    assert [key for key, _ in result.rejected] == [("trades", 0, 99)]
    assert isinstance(result.rejected[0][1], RowValueError)
    assert "account_type" in str(result.rejected[0][1])
    assert all("128" not in sql.split("VALUES")[0] for sql in transport.executed)
    assert stored_keys(transport) == keys_of(groups)
    assert result.rows_written == 20


def test_transient_error_during_isolation_is_retried() -> None:
    groups = trade_groups(8)
    bad = groups[2]
    calls = {"n": 0}

    def flaky(row: Row) -> StoreError | None:
        if row[2] == bad.events[0].ts:
            return make_store_error("Timestamp data out of range", 0x060B, 200)
        return None

    transport = FakeTransport(reject_row=flaky)
    original = transport.execute

    def execute(sql: str) -> int:
        calls["n"] += 1
        if calls["n"] == 2:  # the first bisection step meets a 503 once
            transport.executed.append(sql)
            raise TransientStoreError("Service Unavailable", http_status=503)
        return original(sql)

    transport.execute = execute  # type: ignore[method-assign]
    writer, observer, _ = make_writer(transport)
    result = writer.write(groups)
    assert [key for key, _ in result.rejected] == [bad.key]
    assert len(observer.retries) == 1


# ------------------------------------------------------------------- fatal


def test_authentication_failure_is_fatal_and_never_retried() -> None:
    transport = FakeTransport(always=make_store_error("Authentication failure", 0x0357, 200))
    writer, observer, sleep = make_writer(transport)
    with pytest.raises(FatalStoreError) as info:
        writer.write(trade_groups(3))
    assert info.value.code == 0x0357
    assert len(transport.executed) == 1
    assert sleep.waits == [] and observer.retries == []
    assert observer.errors == [("fatal", 0x0357)]


@pytest.mark.parametrize(
    ("code", "status"), [(0x0303, 200), (0x0512, 200), (0x0388, 200), (None, 401)]
)
def test_privilege_database_and_http_auth_failures_are_fatal(code: int | None, status: int) -> None:
    transport = FakeTransport(always=make_store_error("no", code, status))
    writer, _, sleep = make_writer(transport)
    with pytest.raises(FatalStoreError):
        writer.write(trade_groups(1))
    assert len(transport.executed) == 1 and sleep.waits == []


# ----------------------------------------------------------- affected rows


def test_affected_row_mismatch_is_reported_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    transport = FakeTransport(affected_delta=-1)
    writer, observer, _ = make_writer(transport)
    with caplog.at_level(logging.WARNING, logger="worker.tdengine.writer"):
        result = writer.write(trade_groups(5))
    assert result.rows_written == 20 and result.rejected == []
    assert observer.mismatches == [(20, 19)]
    assert "expected=20 actual=19" in caplog.text


def test_duplicate_rows_in_one_statement_are_not_a_mismatch() -> None:
    transport = FakeTransport()
    writer, observer, _ = make_writer(transport)
    groups = trade_groups(3)
    result = writer.write([*groups, groups[1]])  # a redelivered message in the same batch
    assert observer.mismatches == []
    assert result.rows_written == 16
    assert stored_keys(transport) == keys_of(groups)


# -------------------------------------------------------------------- schema


def test_ensure_schema_creates_database_and_super_table() -> None:
    transport = FakeTransport(version="3.3.2.0")
    writer, _, _ = make_writer(transport)
    report = writer.ensure_schema()
    assert transport.executed == [
        "CREATE DATABASE IF NOT EXISTS `ledger` PRECISION 'us'",
        transport.executed[1],
    ]
    assert transport.executed[1].startswith("CREATE STABLE IF NOT EXISTS `ledger`.`balance_events`")
    assert "event_id BIGINT PRIMARY KEY" in transport.executed[1]
    assert report.key_keyword == "PRIMARY KEY" and report.stable_created
    assert "created" in report.summary()


def test_ensure_schema_uses_composite_key_from_3_3_6_3_and_accepts_existing_table() -> None:
    transport = FakeTransport(version="3.3.6.3")
    writer, _, _ = make_writer(transport)
    assert writer.ensure_schema().key_keyword == "COMPOSITE KEY"
    assert "event_id BIGINT COMPOSITE KEY" in transport.executed[1]
    again = writer.ensure_schema()
    assert not again.stable_created
    assert sum(sql.startswith("CREATE STABLE") for sql in transport.executed) == 1


def test_ensure_schema_refuses_an_old_server_before_any_ddl() -> None:
    transport = FakeTransport(version="3.2.1.0")
    writer, _, _ = make_writer(transport)
    with pytest.raises(UnsupportedServerError, match=r"3\.3\.0\.0"):
        writer.ensure_schema()
    assert transport.executed == []


def test_ensure_schema_reports_a_mismatching_table() -> None:
    transport = FakeTransport(databases={"ledger"})
    rows = described_rows("PRIMARY KEY")
    rows[8][1] = "INT"  # fee
    transport.stables["ledger"] = rows
    writer, _, _ = make_writer(transport)
    with pytest.raises(SchemaMismatchError, match="column `fee` is INT, expected BIGINT"):
        writer.ensure_schema()


def test_ensure_schema_refuses_a_database_of_another_precision() -> None:
    transport = FakeTransport(precision="ms", databases={"ledger"})
    writer, _, _ = make_writer(transport)
    with pytest.raises(SchemaMismatchError, match="precision is 'ms', expected 'us'"):
        writer.ensure_schema()


def test_missing_database_is_fatal_when_creation_is_disabled() -> None:
    transport = FakeTransport()
    options = msgspec.structs.replace(FAST, create_database=False)
    writer, _, _ = make_writer(transport, options)
    with pytest.raises(FatalStoreError, match="does not exist and create_database is false"):
        writer.ensure_schema()
    assert transport.executed == []


def test_ensure_schema_retries_transient_errors() -> None:
    transport = FakeTransport(errors=[TransientStoreError("refused")] * 2)
    writer, observer, _ = make_writer(transport)
    writer.ensure_schema()
    assert len(observer.retries) == 2


def test_init_database_returns_a_report_and_closes_the_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    transport = FakeTransport()
    monkeypatch.setattr(writer_module, "open_transport", lambda options: transport)
    report = init_database(FAST)
    assert "TDengine server 3.3.6.3" in report
    assert "super table `ledger`.`balance_events`: created" in report
    assert transport.closed


def test_fake_transport_satisfies_the_protocol() -> None:
    assert isinstance(FakeTransport(), Transport)


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
