"""Offset specs and points in time, as ``replay`` and ``audit`` read them."""

from __future__ import annotations

import pytest

from worker.commands.specs import (
    SpecError,
    format_timestamp_ms,
    parse_offset_spec,
    parse_timestamp_ms,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        (" 42 ", 42),
        ("9223372036854775807", 2**63 - 1),
        ("0:10", {0: 10}),
        ("0:10,3:7", {0: 10, 3: 7}),
        (" 1 : 5 , 2:0 ", {1: 5, 2: 0}),
    ],
)
def test_offset_specs(text: str, expected: object) -> None:
    assert parse_offset_spec(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty offset spec"),
        ("-1", "not a non-negative integer"),
        ("1.5", "not a non-negative integer"),
        ("9223372036854775808", "not a non-negative integer"),
        ("0:10,5", "mixing N and P:N"),
        ("0:10,0:11", "partition 0 is given twice"),
        ("a:1", "partition 'a'"),
        ("1:", "offset ''"),
        ("1:x", "offset 'x'"),
    ],
)
def test_bad_offset_specs_say_why(text: str, problem: str) -> None:
    with pytest.raises(SpecError, match=problem):
        parse_offset_spec(text)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1749945600000", 1_749_945_600_000),
        ("2025-06-15T00:00:00Z", 1_749_945_600_000),
        ("2025-06-15T02:00:00+02:00", 1_749_945_600_000),
        ("2025-06-15T00:00:00.123456Z", 1_749_945_600_123),
        ("2025-06-15 00:00:01Z", 1_749_945_601_000),
        ("1970-01-01T00:00:00Z", 0),
    ],
)
def test_timestamps_are_epoch_ms_or_zoned_iso_8601(text: str, ms: int) -> None:
    assert parse_timestamp_ms(text) == ms


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("2025-06-15T00:00:00", "no time zone"),
        ("2025-06-15", "no time zone"),
        ("yesterday", "neither epoch milliseconds nor ISO 8601"),
        ("-5", "neither"),
        ("1969-12-31T23:59:59Z", "before 1970"),
        ("99999999999999999999", "neither"),
    ],
)
def test_bad_timestamps_say_why(text: str, problem: str) -> None:
    with pytest.raises(SpecError, match=problem):
        parse_timestamp_ms(text)


def test_format_timestamp_round_trips() -> None:
    assert format_timestamp_ms(1_749_945_600_123) == "2025-06-15T00:00:00.123Z"
    assert parse_timestamp_ms(format_timestamp_ms(1_749_945_600_123)) == 1_749_945_600_123
