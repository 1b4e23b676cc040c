"""Command-line values of ``replay`` and ``audit``: offset specs and points in time.

Pure parsing, no I/O. Every parser raises :class:`SpecError` (a ``ValueError``) with a
message fit for the command line.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final

__all__ = (
    "OffsetSpec",
    "SpecError",
    "format_timestamp_ms",
    "parse_offset_spec",
    "parse_timestamp_ms",
)

OffsetSpec = int | dict[int, int]
"""One offset for every partition, or ``{partition: offset}`` for the listed ones only."""

_INT: Final = re.compile(r"[0-9]{1,19}")
_INT64_MAX: Final = (1 << 63) - 1
_MS_PER_S: Final = 1000


class SpecError(ValueError):
    """A command-line value that cannot be used; the message says why."""


def _non_negative(text: str, what: str) -> int:
    if _INT.fullmatch(text) is None or int(text) > _INT64_MAX:
        raise SpecError(f"{what} {text!r} is not a non-negative integer")
    return int(text)


def parse_offset_spec(text: str) -> OffsetSpec:
    """``N`` (every partition) or ``P:N,P:N`` (only those partitions), e.g. ``0:120,3:7``."""
    text = text.strip()
    if not text:
        raise SpecError("empty offset spec: give N or P:N,P:N")
    if ":" not in text:
        return _non_negative(text, "offset")
    offsets: dict[int, int] = {}
    for item in text.split(","):
        partition_text, sep, offset_text = item.strip().partition(":")
        if not sep:
            raise SpecError(f"{item.strip()!r} is not P:N (mixing N and P:N is not allowed)")
        partition = _non_negative(partition_text.strip(), "partition")
        if partition in offsets:
            raise SpecError(f"partition {partition} is given twice")
        offsets[partition] = _non_negative(offset_text.strip(), "offset")
    return offsets


def parse_timestamp_ms(text: str) -> int:
    """Epoch milliseconds (digits only) or ISO 8601 with a zone, e.g. ``2025-06-15T00:00:00Z``.

    A time without a zone is refused rather than guessed.
    """
    text = text.strip()
    if _INT.fullmatch(text) is not None:
        value = int(text)
        if value > _INT64_MAX:
            raise SpecError(f"timestamp {text!r} is out of range")
        return value
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise SpecError(
            f"{text!r} is neither epoch milliseconds nor ISO 8601 "
            "(e.g. 2025-06-15T00:00:00Z or 1749945600000)"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise SpecError(f"{text!r} has no time zone: add Z or an offset such as +02:00")
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    ms = (delta.days * 86_400 + delta.seconds) * _MS_PER_S + delta.microseconds // 1000
    if ms < 0:
        raise SpecError(f"{text!r} is before 1970")
    return ms


def format_timestamp_ms(ms: int) -> str:
    """ISO 8601 in UTC with milliseconds, for messages and reports."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
