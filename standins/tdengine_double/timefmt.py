"""Timestamp literals and rendering, in the stand-in's server time zone (UTC)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Final

from standins.tdengine_double.catalog import PRECISION_UNITS

__all__ = ("format_timestamp", "parse_datetime", "today_ticks")

_DT_RE: Final = re.compile(
    r"""^\s*(\d{4})-(\d{1,2})-(\d{1,2})
    (?:[ T](\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,9}))?)?
    \s*(z|[+-]\d{2}:?\d{2})?\s*$""",
    re.X | re.I,
)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def parse_datetime(text: str, precision: str) -> int | None:
    """``'YYYY-MM-DD[ HH:MM:SS[.f]][Z|±hh:mm]'`` as ticks of ``precision``; None if invalid.

    Without a zone the text is read in UTC, the stand-in's time zone.
    """
    m = _DT_RE.match(text)
    if m is None:
        return None
    year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
    hour = int(m.group(4) or 0)
    minute = int(m.group(5) or 0)
    second = int(m.group(6) or 0)
    frac = m.group(7) or ""
    try:
        dt = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None
    zone = m.group(8)
    if zone and zone.lower() != "z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        dt -= sign * offset
    unit = PRECISION_UNITS[precision]
    delta = dt - _EPOCH
    seconds = delta.days * 86_400 + delta.seconds
    digits_per_unit = len(str(unit)) - 1
    frac_ticks = int((frac + "0" * 9)[:digits_per_unit]) if frac else 0
    return seconds * unit + frac_ticks


def today_ticks(now_ticks: int, precision: str) -> int:
    """Midnight (UTC) of the day that contains ``now_ticks``."""
    day = 86_400 * PRECISION_UNITS[precision]
    return now_ticks - now_ticks % day


def format_timestamp(ticks: int, precision: str, zone: tzinfo = UTC) -> str:
    """Render like taosAdapter: RFC 3339 with 3/6/9 fraction digits, ``Z`` for UTC."""
    unit = PRECISION_UNITS[precision]
    seconds, frac = divmod(ticks, unit)
    dt = (_EPOCH + timedelta(seconds=seconds)).astimezone(zone)
    width = len(str(unit)) - 1
    offset = dt.utcoffset() or timedelta(0)
    if offset == timedelta(0):
        suffix = "Z"
    else:
        total = int(offset.total_seconds())
        sign = "+" if total >= 0 else "-"
        total = abs(total)
        suffix = f"{sign}{total // 3600:02d}:{total % 3600 // 60:02d}"
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{frac:0{width}d}{suffix}"
