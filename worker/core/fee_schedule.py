"""Versioned fee schedules: loading, validation, and the version in force at a time.

A schedule is a TOML file of ``[[versions]]``. A trade uses the version with the latest
``effective_from`` at or before its ``ts`` (both compared in microseconds). Versions are
kept, never overwritten, so replays of old trades use the rates in force back then.
"""

from __future__ import annotations

import bisect
import datetime as dt
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import msgspec

from worker.core.fees import RATE_PRECISION
from worker.errors import FeeScheduleError

__all__ = (
    "FeeSchedule",
    "ScheduleVersion",
    "SymbolFees",
    "load_fee_schedule",
    "parse_fee_schedule",
)

VIP_LEVEL_MAX: Final = 255
PERCENT_MAX: Final = 100
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ONE_US: Final = dt.timedelta(microseconds=1)


class SymbolFees(msgspec.Struct, frozen=True, gc=False):
    """Base maker and taker rates of one symbol, in millionths (1000 = 0.10 %)."""

    symbol_id: int
    maker_fee: int
    taker_fee: int


class ScheduleVersion(msgspec.Struct, frozen=True):
    """One version of the schedule, in force from ``effective_from_us`` on."""

    effective_from_us: int
    effective_from: dt.datetime
    vip_discount_percent: Mapping[int, int]
    """VIP level -> percent of the base rate charged."""
    symbols: Mapping[int, SymbolFees]


class FeeSchedule:
    """All versions of a schedule, ordered by ``effective_from``."""

    __slots__ = ("_starts", "versions")

    def __init__(self, versions: list[ScheduleVersion]) -> None:
        if not versions:
            raise FeeScheduleError("versions", "at least one version is required")
        self.versions: tuple[ScheduleVersion, ...] = tuple(
            sorted(versions, key=lambda v: v.effective_from_us)
        )
        self._starts = [v.effective_from_us for v in self.versions]

    def version_at(self, ts_us: int) -> ScheduleVersion | None:
        """The version in force at ``ts_us``, or None when none had started yet."""
        i = bisect.bisect_right(self._starts, ts_us)
        return self.versions[i - 1] if i else None

    def __repr__(self) -> str:
        starts = ", ".join(v.effective_from.isoformat() for v in self.versions)
        return f"FeeSchedule(versions=[{starts}])"


def load_fee_schedule(path: str | Path) -> FeeSchedule:
    """Read and validate a schedule file; raises :class:`FeeScheduleError` naming the
    file and the field."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise FeeScheduleError(str(path), f"cannot read fee schedule: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise FeeScheduleError(str(path), f"not UTF-8 at byte {exc.start}") from exc
    try:
        return parse_fee_schedule(text, source=str(path))
    except FeeScheduleError as exc:  # name the file: a config may point at several
        raise FeeScheduleError(exc.field, exc.problem, file=str(path)) from None


def parse_fee_schedule(text: str, *, source: str = "<fee schedule>") -> FeeSchedule:
    """Parse and validate schedule TOML text."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FeeScheduleError(source, f"not valid TOML: {exc}") from exc
    raw_versions = doc.get("versions")
    if raw_versions is None:
        raise FeeScheduleError("versions", "at least one [[versions]] table is required")
    if not isinstance(raw_versions, list) or not all(isinstance(v, dict) for v in raw_versions):
        raise FeeScheduleError("versions", "must be an array of tables ([[versions]])")
    if not raw_versions:
        raise FeeScheduleError("versions", "at least one version is required")
    versions = [_parse_version(v, f"versions[{i}]") for i, v in enumerate(raw_versions)]
    seen: dict[int, int] = {}
    for i, version in enumerate(versions):
        if version.effective_from_us in seen:
            raise FeeScheduleError(
                f"versions[{i}].effective_from",
                f"{version.effective_from.isoformat()} is also the effective_from of "
                f"versions[{seen[version.effective_from_us]}]",
            )
        seen[version.effective_from_us] = i
    return FeeSchedule(versions)


def _parse_version(raw: dict[str, Any], where: str) -> ScheduleVersion:
    effective_from = _to_utc(_require(raw, "effective_from", where), f"{where}.effective_from")
    effective_from_us = (effective_from - _EPOCH) // _ONE_US
    discounts = _parse_discounts(
        _require(raw, "vip_discount_percent", where), f"{where}.vip_discount_percent"
    )
    raw_symbols = _require(raw, "symbols", where)
    if not isinstance(raw_symbols, list) or not all(isinstance(s, dict) for s in raw_symbols):
        raise FeeScheduleError(
            f"{where}.symbols", "must be an array of tables ([[versions.symbols]])"
        )
    symbols: dict[int, SymbolFees] = {}
    for j, raw_symbol in enumerate(raw_symbols):
        at = f"{where}.symbols[{j}]"
        symbol_id = _integer(_require(raw_symbol, "symbol_id", at), f"{at}.symbol_id")
        maker = _rate(_require(raw_symbol, "maker_fee", at), f"{at}.maker_fee")
        taker = _rate(_require(raw_symbol, "taker_fee", at), f"{at}.taker_fee")
        if symbol_id in symbols:
            raise FeeScheduleError(
                f"{at}.symbol_id", f"{symbol_id} appears more than once in {where}"
            )
        symbols[symbol_id] = SymbolFees(symbol_id, maker, taker)
    return ScheduleVersion(effective_from_us, effective_from, discounts, symbols)


def _parse_discounts(raw: object, where: str) -> dict[int, int]:
    if not isinstance(raw, dict):
        raise FeeScheduleError(where, 'must be a table of VIP level -> percent, e.g. { "0" = 100 }')
    discounts: dict[int, int] = {}
    for key, value in raw.items():
        at = f'{where}."{key}"'
        if not (key.isascii() and key.isdigit() and str(int(key)) == key):
            raise FeeScheduleError(at, f"VIP level {key!r} is not an integer 0 … {VIP_LEVEL_MAX}")
        level = int(key)
        if level > VIP_LEVEL_MAX:
            raise FeeScheduleError(at, f"VIP level {level} is above {VIP_LEVEL_MAX}")
        percent = _integer(value, at)
        if not 0 <= percent <= PERCENT_MAX:
            raise FeeScheduleError(
                at, f"discount percent {percent} is not within 0 … {PERCENT_MAX}"
            )
        discounts[level] = percent
    return discounts


def _require(table: dict[str, Any], key: str, where: str) -> Any:
    if key not in table:
        raise FeeScheduleError(f"{where}.{key}", "required field is missing")
    return table[key]


def _integer(value: object, where: str) -> int:
    if type(value) is not int:
        raise FeeScheduleError(where, f"expected an integer, got {type(value).__name__} {value!r}")
    return value


def _rate(value: object, where: str) -> int:
    rate = _integer(value, where)
    if not 0 <= rate <= RATE_PRECISION:
        raise FeeScheduleError(where, f"rate {rate} is not within 0 … {RATE_PRECISION:,}")
    return rate


def _to_utc(value: object, where: str) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        kind = "a date without a time" if isinstance(value, dt.date) else type(value).__name__
        raise FeeScheduleError(
            where, f"expected a TOML datetime such as 2025-06-15T00:00:00Z, got {kind}"
        )
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)
