"""Start-up against TDengine: the bounded wait for the server, in fake time."""

from __future__ import annotations

import logging
import pickle
import random

import msgspec
import pytest

from tests.unit.test_tdengine_writer import (
    FAST,
    FakeTransport,
    described_rows,
    make_writer,
)
from worker.tdengine import writer as writer_module
from worker.tdengine.errors import (
    FatalStoreError,
    SchemaMismatchError,
    ServerUnavailableError,
    TransientStoreError,
    UnsupportedServerError,
    make_store_error,
)
from worker.tdengine.options import TDengineOptions
from worker.tdengine.transport import Transport
from worker.tdengine.writer import init_database

URL = "http://td.example:6041"
STARTUP = msgspec.structs.replace(
    FAST, url=URL, password="pw-never-shown", retry_max_elapsed_s=1.0, startup_timeout_s=30.0
)


def test_startup_waits_for_the_server_beyond_the_statement_budget() -> None:
    """Refused for 20 s (20x the statement budget), then up: start-up succeeds."""
    transport = FakeTransport(errors=[TransientStoreError("connection refused")] * 10_000)
    writer, observer, sleep = make_writer(transport, STARTUP)
    original = transport._fail_first

    def refused_for_20_s() -> None:
        if sleep.now < 20.0:
            original()
        else:
            transport.errors.clear()

    transport._fail_first = refused_for_20_s  # type: ignore[method-assign]
    random.seed(3)
    report = writer.ensure_schema()
    assert report.stable_created
    assert 20.0 <= sleep.now <= 30.0
    assert len(observer.retries) > 1
    assert transport.queried[0] == "SELECT SERVER_VERSION()"


def test_startup_gives_up_after_the_timeout_naming_the_url_and_the_last_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = FakeTransport(
        always=TransientStoreError("TDengine connection failed: ConnectionError: refused")
    )
    writer, observer, sleep = make_writer(transport, STARTUP)
    random.seed(4)
    with caplog.at_level(logging.INFO), pytest.raises(ServerUnavailableError) as info:
        writer.ensure_schema()
    # One warning for the whole wait and one line when giving up, not one per attempt.
    assert len(observer.retries) > 10
    assert [r.levelname for r in caplog.records] == ["WARNING", "ERROR"]
    error = info.value
    assert isinstance(error, FatalStoreError)  # the caller stops: exit 1
    assert sleep.now == pytest.approx(30.0)  # bounded by startup_timeout_s, all of it used
    assert URL in str(error) and "within 30 s" in str(error)
    assert "ConnectionError: refused" in str(error)
    assert "pw-never-shown" not in str(error)
    assert transport.executed == []  # no DDL was attempted
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) and copy.url == URL


def test_a_refused_password_is_fatal_at_once_without_waiting() -> None:
    transport = FakeTransport(always=make_store_error("Authentication failure", 0x0357, 200))
    writer, observer, sleep = make_writer(transport, STARTUP)
    with pytest.raises(FatalStoreError) as info:
        writer.ensure_schema()
    assert not isinstance(info.value, ServerUnavailableError)
    assert sleep.waits == [] and observer.retries == []
    assert len(transport.queried) == 1


def test_a_zero_startup_timeout_tries_once() -> None:
    transport = FakeTransport(always=TransientStoreError("connection refused"))
    options = msgspec.structs.replace(STARTUP, startup_timeout_s=0.0)
    writer, _, sleep = make_writer(transport, options)
    with pytest.raises(ServerUnavailableError, match="within 0 s"):
        writer.ensure_schema()
    assert len(transport.queried) == 1 and sleep.waits == []


def test_after_the_first_answer_statements_use_the_statement_budget() -> None:
    """Only the first contact waits for startup_timeout_s; CREATE DATABASE does not."""
    transport = FakeTransport()
    writer, _, sleep = make_writer(transport, STARTUP)
    original = transport.execute

    def execute(sql: str) -> int:
        if sql.startswith("CREATE DATABASE"):
            transport.executed.append(sql)
            raise TransientStoreError("Sync leader is unreachable", code=0x090C)
        return original(sql)

    transport.execute = execute  # type: ignore[method-assign]
    with pytest.raises(TransientStoreError) as info:
        writer.ensure_schema()
    assert not isinstance(info.value, ServerUnavailableError)
    assert sleep.now == pytest.approx(STARTUP.retry_max_elapsed_s)


def test_the_default_startup_wait_is_bounded_and_at_most_a_minute() -> None:
    assert 0 < TDengineOptions().startup_timeout_s <= 60


# ---------------------------------------------------------- schema (fakes)


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
