"""Logging: JSON lines with context, human lines, secret masking, one handler, levels."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from worker.errors import ConfigError
from worker.ops.logs import configure_logging, log_context

log = logging.getLogger("worker.engine.loop")


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def configured(**kwargs: Any) -> io.StringIO:
    stream = io.StringIO()
    configure_logging(stream=stream, **kwargs)
    return stream


def strict_json(line: str) -> dict[str, Any]:
    def reject(constant: str) -> None:
        raise AssertionError(f"not valid JSON: {constant}")

    entry: dict[str, Any] = json.loads(line, parse_constant=reject)
    return entry


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [strict_json(line) for line in stream.getvalue().splitlines()]


def our_handlers() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if type(h).__module__ == "worker.ops.logs"]


def test_json_line_has_the_record_keys_and_context_at_top_level() -> None:
    stream = configured()
    before = datetime.now(UTC)
    log.info(
        "flushed %d rows",
        400,
        extra=log_context(topic="trades", partition=3, offset=1234, rows=400, seconds=0.012),
    )
    after = datetime.now(UTC)
    [entry] = json_lines(stream)
    assert entry == {
        "ts": entry["ts"],
        "level": "INFO",
        "logger": "worker.engine.loop",
        "msg": "flushed 400 rows",
        "topic": "trades",
        "partition": 3,
        "offset": 1234,
        "rows": 400,
        "seconds": 0.012,
    }
    assert list(entry)[:4] == ["ts", "level", "logger", "msg"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["ts"])
    ts = datetime.fromisoformat(entry["ts"])
    assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= ts <= after


def test_json_without_context_has_only_the_record_keys() -> None:
    stream = configured()
    log.warning("no assignment yet")
    [entry] = json_lines(stream)
    assert set(entry) == {"ts", "level", "logger", "msg"}
    assert entry["level"] == "WARNING"


def test_json_context_cannot_overwrite_record_keys() -> None:
    stream = configured()
    log.info("real message", extra=log_context(msg="fake", level="DEBUG", ts=0, kind="x"))
    [entry] = json_lines(stream)
    assert entry["msg"] == "real message" and entry["level"] == "INFO"
    assert (entry["ctx_msg"], entry["ctx_level"], entry["ctx_ts"]) == ("fake", "DEBUG", 0)
    assert entry["kind"] == "x"


def test_json_exception_goes_under_exc_with_the_traceback() -> None:
    stream = configured()
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("write failed", extra=log_context(rows=4))
    [entry] = json_lines(stream)
    assert entry["msg"] == "write failed" and entry["rows"] == 4
    assert entry["exc"].startswith("Traceback (most recent call last):")
    assert entry["exc"].endswith("ValueError: boom")


def test_json_stays_valid_for_awkward_text_and_non_finite_numbers() -> None:
    stream = configured()
    log.info('quote " newline \n tab \t snowman \u2603', extra=log_context(nan=float("nan")))
    log.info("slow", extra=log_context(seconds=float("inf"), rows=4))
    first, second = json_lines(stream)
    assert first["msg"] == 'quote " newline \n tab \t snowman \u2603'
    # NaN and infinity are not JSON: such a line falls back to strings for every value.
    assert first["nan"] == "nan"
    assert (second["seconds"], second["rows"]) == ("inf", "4")


def test_json_stringifies_values_it_cannot_encode() -> None:
    stream = configured()
    log.info("ok", extra=log_context(amount=Decimal("1.50"), path=("a", 1)))
    [entry] = json_lines(stream)
    assert entry["amount"] == "1.50" and entry["path"] == ["a", 1]


def test_human_line_format() -> None:
    stream = configured(fmt="human")
    log.info("flushed", extra=log_context(rows=400, seconds=0.012))
    line = stream.getvalue()
    ts = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert re.fullmatch(
        ts + r" INFO worker\.engine\.loop flushed rows=400 seconds=0\.012\n", line
    ), line


def test_human_quotes_values_with_spaces_and_appends_the_traceback() -> None:
    stream = configured(fmt="human")
    try:
        raise KeyError("symbol")
    except KeyError:
        log.error("rejected", exc_info=True, extra=log_context(reason="out of range", empty=""))
    first, *rest = stream.getvalue().splitlines()
    assert first.endswith(' ERROR worker.engine.loop rejected reason="out of range" empty=""')
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1] == "KeyError: 'symbol'"


SECRET = "s3cr3t-Pa55"


@pytest.mark.parametrize("fmt", ["json", "human"])
def test_secret_is_masked_in_message_args_context_and_exception(fmt: str) -> None:
    stream = configured(fmt=fmt, secrets=[SECRET])
    log.info(f"password is {SECRET}")
    log.info("dsn %s", f"taos://root:{SECRET}@tdengine:6041")
    log.info("ctx", extra=log_context(password=SECRET, nested={"list": [f"x{SECRET}x"]}))
    try:
        raise ConnectionError(f"auth failed for root/{SECRET}")
    except ConnectionError:
        log.exception("connect failed")
    out = stream.getvalue()
    assert SECRET not in out
    assert out.count("***") == 5
    assert "taos://root:***@tdengine:6041" in out
    assert "ConnectionError: auth failed for root/***" in out


def test_secret_is_masked_in_repr_and_url_encoded_forms() -> None:
    secret = "p@ss/w\\rd"
    stream = configured(secrets=[secret])
    log.info("url %s", "http://root:p%40ss%2Fw%5Crd@host")
    try:
        raise ValueError({"password": secret})  # str() of a dict shows the repr
    except ValueError:
        log.exception("bad config")
    out = stream.getvalue()
    assert "p%40ss" not in out and "w\\\\rd" not in out and "ss/w" not in out
    entries = json_lines(stream)
    assert entries[0]["msg"] == "url http://root:***@host"
    assert entries[1]["exc"].endswith("ValueError: {'password': '***'}")


def test_the_longer_of_two_overlapping_secrets_is_masked_whole() -> None:
    stream = configured(fmt="human", secrets=["abc", "abcdef"])
    log.info("x abcdef y abc z")
    assert " x *** y *** z" in stream.getvalue()


def test_a_short_secret_is_masked_where_it_stands_alone_only() -> None:
    stream = configured(fmt="human", secrets=["x"])
    log.info("max_rows=4 dsn=ws://root:x@host password x.")
    assert stream.getvalue().endswith(" max_rows=4 dsn=ws://root:***@host password ***.\n")


def test_empty_secrets_are_ignored() -> None:
    stream = configured(fmt="human", secrets=["", "hunter2"])
    log.info("nothing to hide")
    assert stream.getvalue().endswith(" INFO worker.engine.loop nothing to hide\n")


def test_masking_does_not_change_the_callers_context() -> None:
    configured(secrets=[SECRET])
    fields = {"password": SECRET, "list": [SECRET]}
    log.info("x", extra={"ctx": fields})
    assert fields == {"password": SECRET, "list": [SECRET]}


def test_a_bad_format_call_neither_raises_nor_leaks() -> None:
    stream = configured(secrets=[SECRET])
    root = logging.getLogger()
    root.handlers[:] = our_handlers()  # pytest's capture handler would raise on this record
    log.info("two %s %s", SECRET)  # one argument short
    [entry] = json_lines(stream)
    assert SECRET not in entry["msg"] and "unformattable" in entry["msg"]


def test_configuring_twice_keeps_one_handler_and_uses_the_new_stream() -> None:
    first = configured(secrets=[SECRET])
    second = configured(fmt="human")
    assert len(our_handlers()) == 1
    log.info("once %s", SECRET)
    assert first.getvalue() == ""
    assert second.getvalue().count("once") == 1
    assert SECRET not in second.getvalue()  # the earlier secret stays registered


def test_level_filters_records_and_accepts_any_case() -> None:
    stream = configured(level="warning")
    log.info("hidden")
    log.warning("shown")
    assert [e["msg"] for e in json_lines(stream)] == ["shown"]
    assert logging.getLogger().level == logging.WARNING


def test_unknown_level_or_format_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="log level: 'LOUD' is not one of"):
        configure_logging(level="LOUD", stream=io.StringIO())
    with pytest.raises(ConfigError, match="log format: 'xml'"):
        configure_logging(fmt="xml", stream=io.StringIO())  # type: ignore[arg-type]
    assert our_handlers() == []


def test_log_context_wraps_fields_for_extra() -> None:
    assert log_context(topic="trades", partition=3) == {"ctx": {"topic": "trades", "partition": 3}}
