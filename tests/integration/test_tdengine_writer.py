"""The production writer against TDengine over REST: the in-repo double, or a real server
when ``TDENGINE_URL`` is set. Faults come from a fault proxy in front of either, so the
fault tests run against both."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import msgspec
import pytest

from standins.fault_proxy import FaultProxy
from tests.fixtures.tdengine import TDengineEndpoint
from tests.unit.test_tdengine_sql import trade_events
from worker.tdengine.errors import (
    FatalStoreError,
    PermanentStoreError,
    ServerUnavailableError,
    StoreError,
)
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


@pytest.fixture
def proxied(
    tdengine_options: TDengineOptions, recorder: Recorder, tdengine_faults: FaultProxy
) -> Iterator[TDengineWriter]:
    """A writer whose every request goes through the fault proxy (schema ready)."""
    options = msgspec.structs.replace(fast_retries(tdengine_options), url=tdengine_faults.url)
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


# ------------------------------------------------------ faults (fault proxy)


def test_http_503_is_retried_until_success(
    tdengine_options: TDengineOptions,
    proxied: TDengineWriter,
    recorder: Recorder,
    tdengine_faults: FaultProxy,
) -> None:
    tdengine_faults.fail_next(3, status=503)
    result = proxied.write(trade_groups(10))
    assert result.rows_written == 40 and result.rejected == []
    assert len(recorder.retries) == 3
    assert all(e.http_status == 503 for e in recorder.retries)
    assert count_rows(proxied, tdengine_options.database) == 40


def test_refused_connections_are_retried_until_the_server_is_back(
    tdengine_options: TDengineOptions,
    proxied: TDengineWriter,
    recorder: Recorder,
    tdengine_faults: FaultProxy,
) -> None:
    tdengine_faults.refuse_connections(True)
    reopen = threading.Timer(0.5, tdengine_faults.refuse_connections, args=(False,))
    reopen.start()
    try:
        started = time.monotonic()
        result = proxied.write(trade_groups(10))
        assert time.monotonic() - started >= 0.4
    finally:
        reopen.cancel()
        tdengine_faults.refuse_connections(False)
    assert result.rows_written == 40
    assert recorder.retries
    assert count_rows(proxied, tdengine_options.database) == 40


def test_a_hung_server_times_out_and_is_retried_until_it_answers(
    tdengine_options: TDengineOptions, recorder: Recorder, tdengine_faults: FaultProxy
) -> None:
    options = msgspec.structs.replace(
        fast_retries(tdengine_options), url=tdengine_faults.url, request_timeout_s=0.3
    )
    transport = open_transport(options)
    writer = TDengineWriter(transport, options, recorder)
    try:
        writer.ensure_schema()
        tdengine_faults.hang(True)
        release = threading.Timer(1.0, tdengine_faults.hang, args=(False,))
        release.start()
        try:
            result = writer.write(trade_groups(10))
        finally:
            release.cancel()
            tdengine_faults.hang(False)
        assert result.rows_written == 40 and result.rejected == []
        assert any("timed out" in e.desc for e in recorder.retries)
        assert count_rows(writer, tdengine_options.database) == 40
    finally:
        transport.close()


def test_an_answer_cut_mid_way_is_retried_and_the_rows_are_not_duplicated(
    tdengine_options: TDengineOptions,
    proxied: TDengineWriter,
    recorder: Recorder,
    tdengine_faults: FaultProxy,
) -> None:
    """The server stored the rows but the answer was lost: the retry overwrites them."""
    tdengine_faults.close_mid_answer(1)
    result = proxied.write(trade_groups(10))
    assert result.rows_written == 40 and result.rejected == []
    assert tdengine_faults.counts["cut"] == 1
    assert len(recorder.retries) == 1
    assert count_rows(proxied, tdengine_options.database) == 40
    assert recorder.mismatches == []


def test_a_permanent_error_on_one_subtable_rejects_only_its_message(
    tdengine_options: TDengineOptions,
    proxied: TDengineWriter,
    tdengine_faults: FaultProxy,
) -> None:
    groups = trade_groups(30)
    bad = RowGroup(key=("trades", 3, 4242), events=trade_events(4242, TS0 + 999, 777, 60))
    batch = [*groups[:12], bad, *groups[12:]]
    tdengine_faults.error_for_subtable("u777_a1", 0x060B, "Timestamp data out of range")
    result = proxied.write(batch)
    assert [key for key, _ in result.rejected] == [("trades", 3, 4242)]
    error = result.rejected[0][1]
    assert isinstance(error, PermanentStoreError)
    assert error.code == 0x060B
    assert "Timestamp data out of range" in error.desc
    assert result.rows_written == 120
    # The proxy answers every statement naming u777_a1 with the error and forwards none
    # of them, so none of the bad message's rows (in u777_a1, u60_a1, u0_a1) are stored.
    assert count_rows(proxied, tdengine_options.database) == 120


def test_retries_give_up_within_the_bound_while_the_server_is_down(
    tdengine_options: TDengineOptions, tdengine_faults: FaultProxy
) -> None:
    options = msgspec.structs.replace(
        fast_retries(tdengine_options),
        url=tdengine_faults.url,
        retry_max_elapsed_s=0.5,
        retry_max_backoff_s=0.1,
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


# ---------------------------------------------------------------- start-up


def test_startup_waits_for_a_server_that_refuses_then_accepts(
    tdengine_options: TDengineOptions, tdengine_faults: FaultProxy, recorder: Recorder
) -> None:
    options = msgspec.structs.replace(
        fast_retries(tdengine_options),
        url=tdengine_faults.url,
        retry_max_elapsed_s=0.2,  # far below the outage: only the start-up wait covers it
        startup_timeout_s=60.0,
    )
    tdengine_faults.refuse_connections(True)
    accept = threading.Timer(1.5, tdengine_faults.refuse_connections, args=(False,))
    accept.start()
    transport = open_transport(options)
    try:
        report = TDengineWriter(transport, options, recorder).ensure_schema()
    finally:
        accept.cancel()
        tdengine_faults.refuse_connections(False)
        transport.close()
    assert report.stable_created
    assert recorder.retries and all(e.kind == "transient" for e in recorder.retries)


def test_startup_gives_up_on_an_unreachable_port_naming_the_url(
    tdengine_options: TDengineOptions,
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    options = msgspec.structs.replace(
        fast_retries(tdengine_options), url=url, startup_timeout_s=1.0
    )
    transport = open_transport(options)
    try:
        with pytest.raises(ServerUnavailableError) as info:
            TDengineWriter(transport, options).ensure_schema()
    finally:
        transport.close()
    message = str(info.value)
    assert url in message and "within 1 s" in message
    assert "Connection" in message  # the last error: refused
    assert options.password not in message


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
        message = str(info.value)
        assert options.password not in message
        assert f"refused user {options.user!r}" in message and options.url in message
    finally:
        transport.close()
