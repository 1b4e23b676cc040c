"""The writer (retries, isolation, fatal errors, affected rows), error classification and
the transports, against small in-memory doubles (not the REST double)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
import pytest

from tests.unit.test_tdengine_sql import event, parse_statement, trade_events
from worker.tdengine.errors import (
    FatalStoreError,
    PermanentStoreError,
    RowValueError,
    StoreError,
    TransientStoreError,
    make_store_error,
)
from worker.tdengine.options import TDengineOptions
from worker.tdengine.transport import (
    QueryResult,
)
from worker.tdengine.writer import RowGroup, TDengineWriter

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
