"""The production writer against TDengine over REST: the in-repo double, or a real server
when ``TDENGINE_URL`` is set (fault-injection tests then skip, saying why)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import msgspec
import pytest

from standins.tdengine_double import FaultInjector
from tests.fixtures.tdengine import TDengineEndpoint
from tests.unit.test_tdengine_sql import trade_events
from worker.tdengine.errors import FatalStoreError, PermanentStoreError, StoreError
from worker.tdengine.options import TDengineOptions
from worker.tdengine.transport import open_transport
from worker.tdengine.writer import RowGroup, TDengineWriter

pytestmark = pytest.mark.tdengine

TS0 = 1_700_000_000_000_000  # 2023-11-14 in microseconds: inside the default KEEP window


@dataclass
class Recorder:
    retries: list[StoreError] = field(default_factory=list)
    mismatches: list[tuple[int, int]] = field(default_factory=list)
    statements: list[tuple[int, int]] = field(default_factory=list)

    def on_statement(self, rows: int, nbytes: int, seconds: float) -> None:
        self.statements.append((rows, nbytes))

    def on_retry(self, error: StoreError) -> None:
        self.retries.append(error)

    def on_error(self, kind: str, code: int | None) -> None:
        pass

    def on_affected_mismatch(self, expected: int, actual: int) -> None:
        self.mismatches.append((expected, actual))


def fast_retries(options: TDengineOptions) -> TDengineOptions:
    return msgspec.structs.replace(
        options,
        request_timeout_s=5.0,
        retry_initial_backoff_s=0.02,
        retry_max_backoff_s=0.2,
        retry_max_elapsed_s=10.0,
    )


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def writer(tdengine_options: TDengineOptions, recorder: Recorder) -> Iterator[TDengineWriter]:
    options = fast_retries(tdengine_options)
    transport = open_transport(options)
    writer = TDengineWriter(transport, options, recorder)
    writer.ensure_schema()
    yield writer
    transport.close()


def trade_groups(count: int, *, buyer_of: int = 0) -> list[RowGroup]:
    """One group per trade message; buyers 1..50, seller 60 (platform rows in u0_a1)."""
    return [
        RowGroup(
            key=("trades", 0, offset),
            events=trade_events(10_000 + offset, TS0 + offset, 1 + offset % 50, 60),
        )
        for offset in range(count)
    ]


def count_rows(writer: TDengineWriter, database: str, table: str = "balance_events") -> int:
    result = writer.query(f"SELECT COUNT(*) FROM `{database}`.`{table}`")
    return int(result.rows[0][0]) if result.rows else 0


# ------------------------------------------------------------------- schema


def test_schema_is_created_then_checked(
    tdengine_options: TDengineOptions, writer: TDengineWriter
) -> None:
    report = writer.ensure_schema()  # second time: the table exists and must match
    assert not report.stable_created
    assert report.key_keyword in ("PRIMARY KEY", "COMPOSITE KEY")
    assert report.database == tdengine_options.database


# -------------------------------------------------------------- idempotency


def test_writing_the_same_batch_twice_leaves_the_row_count_unchanged(
    tdengine_options: TDengineOptions, writer: TDengineWriter, recorder: Recorder
) -> None:
    groups = trade_groups(100)
    first = writer.write(groups)
    assert first.rows_written == 400 and first.rejected == []
    assert count_rows(writer, tdengine_options.database) == 400
    second = writer.write(groups)
    assert second.rows_written == 400 and second.rejected == []
    assert count_rows(writer, tdengine_options.database) == 400
    assert recorder.mismatches == []


def test_buyer_equal_to_seller_keeps_both_trade_settled_rows(
    tdengine_options: TDengineOptions, writer: TDengineWriter
) -> None:
    events = trade_events(77, TS0, buyer=5, seller=5)
    result = writer.write([RowGroup(key=("trades", 0, 1), events=events)])
    assert result.rows_written == 4
    db = tdengine_options.database
    rows = writer.query(f"SELECT event_id, event_type FROM `{db}`.`u5_a1` ORDER BY event_id")
    assert [tuple(r) for r in rows.rows] == [(308, 1), (309, 1)]
    assert count_rows(writer, db, "u0_a1") == 2


def test_a_batch_over_one_mebibyte_is_split_and_fully_stored(
    tdengine_options: TDengineOptions, writer: TDengineWriter, recorder: Recorder
) -> None:
    groups = trade_groups(6_000)
    result = writer.write(groups)
    assert result.rejected == []
    assert result.rows_written == 24_000
    assert result.statements >= 2
    assert sum(nbytes for _, nbytes in recorder.statements) > 1_048_576
    assert all(nbytes <= tdengine_options.max_statement_bytes for _, nbytes in recorder.statements)
    assert count_rows(writer, tdengine_options.database) == 24_000
    assert recorder.mismatches == []


# ----------------------------------------------------------- faults (double)


def test_http_503_is_retried_until_success(
    tdengine_options: TDengineOptions,
    writer: TDengineWriter,
    recorder: Recorder,
    tdengine_faults: FaultInjector,
) -> None:
    tdengine_faults.fail_next(3, status=503)
    result = writer.write(trade_groups(10))
    assert result.rows_written == 40 and result.rejected == []
    assert len(recorder.retries) == 3
    assert all(e.http_status == 503 for e in recorder.retries)
    assert count_rows(writer, tdengine_options.database) == 40


def test_refused_connections_are_retried_until_the_server_is_back(
    tdengine_options: TDengineOptions,
    writer: TDengineWriter,
    recorder: Recorder,
    tdengine_faults: FaultInjector,
) -> None:
    tdengine_faults.refuse_connections(True)
    reopen = threading.Timer(0.5, tdengine_faults.refuse_connections, args=(False,))
    reopen.start()
    try:
        started = time.monotonic()
        result = writer.write(trade_groups(10))
        assert time.monotonic() - started >= 0.4
    finally:
        reopen.cancel()
        tdengine_faults.refuse_connections(False)
    assert result.rows_written == 40
    assert recorder.retries
    assert count_rows(writer, tdengine_options.database) == 40


def test_a_permanent_error_on_one_subtable_rejects_only_its_message(
    tdengine_options: TDengineOptions,
    writer: TDengineWriter,
    tdengine_faults: FaultInjector,
) -> None:
    groups = trade_groups(30)
    bad = RowGroup(key=("trades", 3, 4242), events=trade_events(4242, TS0 + 999, 777, 60))
    batch = [*groups[:12], bad, *groups[12:]]
    tdengine_faults.error_for_subtable("u777_a1", 0x060B, "Timestamp data out of range")
    result = writer.write(batch)
    assert [key for key, _ in result.rejected] == [("trades", 3, 4242)]
    error = result.rejected[0][1]
    assert isinstance(error, PermanentStoreError)
    assert error.code == 0x060B
    assert "Timestamp data out of range" in error.desc
    assert result.rows_written == 120
    # The double fails a statement whole, so none of the bad message's rows are stored.
    assert count_rows(writer, tdengine_options.database) == 120


def test_retries_give_up_within_the_bound_while_the_server_is_down(
    tdengine_options: TDengineOptions, tdengine_faults: FaultInjector
) -> None:
    options = msgspec.structs.replace(
        fast_retries(tdengine_options), retry_max_elapsed_s=0.5, retry_max_backoff_s=0.1
    )
    transport = open_transport(options)
    writer = TDengineWriter(transport, options)
    writer.ensure_schema()
    tdengine_faults.refuse_connections(True)
    started = time.monotonic()
    with pytest.raises(StoreError) as info:
        writer.write(trade_groups(2))
    assert info.value.kind == "transient"
    assert time.monotonic() - started < 0.5 + options.request_timeout_s
    transport.close()


# --------------------------------------------------------------------- fatal


def test_wrong_password_is_fatal(
    tdengine_endpoint: TDengineEndpoint, tdengine_options: TDengineOptions, recorder: Recorder
) -> None:
    options = msgspec.structs.replace(
        fast_retries(tdengine_options), password=tdengine_endpoint.password + "-wrong"
    )
    transport = open_transport(options)
    writer = TDengineWriter(transport, options, recorder)
    try:
        with pytest.raises(FatalStoreError) as info:
            writer.ensure_schema()
        assert info.value.code == 0x0357 or info.value.http_status == 401
        with pytest.raises(FatalStoreError):
            writer.write(trade_groups(1))
        assert recorder.retries == []
        assert options.password not in str(info.value)
    finally:
        transport.close()
