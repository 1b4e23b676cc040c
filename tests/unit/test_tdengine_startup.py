"""Start-up against TDengine: the bounded wait for the server, in fake time."""

from __future__ import annotations

import logging
import pickle
import random

import msgspec
import pytest

from tests.unit.test_tdengine_writer import FAST, FakeTransport, make_writer
from worker.tdengine.errors import (
    FatalStoreError,
    ServerUnavailableError,
    TransientStoreError,
    make_store_error,
)
from worker.tdengine.options import TDengineOptions

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
