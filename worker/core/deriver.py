"""The pure core in one call: message bytes -> four BalanceEvents, or a Rejection.

No Kafka, no HTTP, no database: the worker, ``replay``, ``derive`` and the benchmarks
all call :class:`Deriver`.
"""

from __future__ import annotations

from typing import Final

from worker.core.events import BalanceEvent, TradeRows, trade_rows
from worker.core.fee_schedule import FeeSchedule, ScheduleVersion
from worker.core.fees import discounted_rate
from worker.core.messages import Trade, decode_trade
from worker.core.rejections import (
    NO_FEE_SCHEDULE,
    UNKNOWN_SYMBOL,
    UNKNOWN_VIP_LEVEL,
    Rejection,
    show_int,
)

__all__ = ("Derivation", "Deriver")

Derivation = tuple[BalanceEvent, BalanceEvent, BalanceEvent, BalanceEvent]

_RateKey = tuple[int, int, int, str]
_Rates = tuple[int, int] | Rejection
_CACHE_LIMIT: Final = 65_536
"""Rate combinations remembered per schedule version before the cache is cleared."""
_NO_END: Final = float("inf")


class Deriver:
    """Derives ledger rows with one fee schedule; remembers rates per version."""

    __slots__ = ("_hi", "_lo", "_rates", "_tables", "_version", "schedule")

    def __init__(self, schedule: FeeSchedule) -> None:
        self.schedule = schedule
        self._tables: dict[int, dict[_RateKey, _Rates]] = {}
        # The version used last, and the [_lo, _hi) range of ts it covers: consecutive
        # trades almost always fall in the same version, so bisecting is rarely needed.
        self._lo = 1
        self._hi: float = 0
        self._rates: dict[_RateKey, _Rates] = {}

    def derive(self, raw: bytes) -> Derivation | Rejection:
        """Decode, validate and derive one message value."""
        trade = decode_trade(raw)
        if trade.__class__ is Rejection:
            return trade
        return self.derive_trade(trade)  # type: ignore[arg-type]

    def derive_rows(self, raw: bytes) -> TradeRows | Rejection:
        """:meth:`derive`, with the four events as a :class:`TradeRows` (the engine's
        form: the events are built only if something reads them one by one)."""
        trade = decode_trade(raw)
        if trade.__class__ is Rejection:
            return trade
        return self.trade_rows(trade)  # type: ignore[arg-type]

    def derive_trade(self, trade: Trade) -> Derivation | Rejection:
        """Derive the rows of an already decoded, range-checked trade."""
        rows = self.trade_rows(trade)
        return rows if rows.__class__ is Rejection else rows.events()  # type: ignore[union-attr]

    def trade_rows(self, trade: Trade) -> TradeRows | Rejection:
        """:meth:`derive_trade`, as a :class:`TradeRows`."""
        ts = trade.ts
        if self._lo <= ts < self._hi:
            table = self._rates
        else:
            found = self._select_version(ts)
            if found is None:
                first = self.schedule.versions[0].effective_from.isoformat()
                return Rejection(
                    NO_FEE_SCHEDULE, f"ts: {show_int(ts)} is before the first version ({first})"
                )
            table = found
        key = (trade.symbol_id, trade.buyer_vip, trade.seller_vip, trade.taker_side)
        rates = table.get(key)
        if rates is None:
            if len(table) >= _CACHE_LIMIT:
                table.clear()
            rates = table[key] = _rates_for(self._version, *key)
        if rates.__class__ is Rejection:
            return rates
        buyer_rate, seller_rate = rates  # type: ignore[misc]
        return trade_rows(trade, buyer_rate, seller_rate)

    def _select_version(self, ts: int) -> dict[_RateKey, _Rates] | None:
        version = self.schedule.version_at(ts)
        if version is None:
            return None
        versions = self.schedule.versions
        index = versions.index(version)
        self._lo = version.effective_from_us
        self._hi = versions[index + 1].effective_from_us if index + 1 < len(versions) else _NO_END
        self._version = version
        self._rates = self._tables.setdefault(version.effective_from_us, {})
        return self._rates


def _rates_for(
    version: ScheduleVersion, symbol_id: int, buyer_vip: int, seller_vip: int, taker_side: str
) -> _Rates:
    """(buyer rate, seller rate), or the rejection: unknown symbol before unknown VIP."""
    when = version.effective_from.isoformat()
    symbol = version.symbols.get(symbol_id)
    if symbol is None:
        return Rejection(
            UNKNOWN_SYMBOL,
            f"symbol_id: {show_int(symbol_id)} is not in the fee schedule version of {when}",
        )
    discounts = version.vip_discount_percent
    for field, level in (("buyer_vip", buyer_vip), ("seller_vip", seller_vip)):
        if level not in discounts:
            return Rejection(
                UNKNOWN_VIP_LEVEL,
                f"{field}: level {level} has no discount in the fee schedule version of {when}",
            )
    buyer_is_taker = taker_side == "buy"
    buyer_base = symbol.taker_fee if buyer_is_taker else symbol.maker_fee
    seller_base = symbol.maker_fee if buyer_is_taker else symbol.taker_fee
    return (
        discounted_rate(buyer_base, discounts[buyer_vip]),
        discounted_rate(seller_base, discounts[seller_vip]),
    )
