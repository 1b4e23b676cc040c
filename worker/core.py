"""The pure core in one call: message bytes -> four BalanceEvents, or a Rejection.

No Kafka, no HTTP, no database: the worker, ``replay``, ``derive`` and the benchmarks
all call :class:`Deriver`.
"""

from __future__ import annotations

from typing import Final

from worker.events import BalanceEvent, derive_events
from worker.fee_schedule import FeeSchedule, ScheduleVersion
from worker.fees import discounted_rate
from worker.messages import Trade, decode_trade
from worker.rejections import NO_FEE_SCHEDULE, UNKNOWN_SYMBOL, UNKNOWN_VIP_LEVEL, Rejection

__all__ = ("Derivation", "Deriver")

Derivation = tuple[BalanceEvent, BalanceEvent, BalanceEvent, BalanceEvent]

_RateKey = tuple[int, int, int, bool]
_Rates = tuple[int, int] | Rejection
_CACHE_LIMIT: Final = 65_536
"""Rate combinations remembered per schedule version before the cache is cleared."""


class Deriver:
    """Derives ledger rows with one fee schedule; remembers rates per version."""

    __slots__ = ("_rates", "schedule")

    def __init__(self, schedule: FeeSchedule) -> None:
        self.schedule = schedule
        self._rates: dict[int, dict[_RateKey, _Rates]] = {}

    def derive(self, raw: bytes) -> Derivation | Rejection:
        """Decode, validate and derive one message value."""
        trade = decode_trade(raw)
        if isinstance(trade, Rejection):
            return trade
        return self.derive_trade(trade)

    def derive_trade(self, trade: Trade) -> Derivation | Rejection:
        """Derive the rows of an already decoded, range-checked trade."""
        version = self.schedule.version_at(trade.ts)
        if version is None:
            first = self.schedule.versions[0].effective_from.isoformat()
            return Rejection(
                NO_FEE_SCHEDULE, f"ts: {trade.ts} is before the first version ({first})"
            )
        key = (trade.symbol_id, trade.buyer_vip, trade.seller_vip, trade.taker_side == "buy")
        cache = self._rates.get(version.effective_from_us)
        if cache is None:
            cache = self._rates[version.effective_from_us] = {}
        rates = cache.get(key)
        if rates is None:
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            rates = cache[key] = _rates_for(version, *key)
        if isinstance(rates, Rejection):
            return rates
        return derive_events(trade, rates[0], rates[1])


def _rates_for(
    version: ScheduleVersion, symbol_id: int, buyer_vip: int, seller_vip: int, buyer_is_taker: bool
) -> _Rates:
    """(buyer rate, seller rate), or the rejection: unknown symbol before unknown VIP."""
    when = version.effective_from.isoformat()
    symbol = version.symbols.get(symbol_id)
    if symbol is None:
        return Rejection(
            UNKNOWN_SYMBOL, f"symbol_id: {symbol_id} is not in the fee schedule version of {when}"
        )
    discounts = version.vip_discount_percent
    for field, level in (("buyer_vip", buyer_vip), ("seller_vip", seller_vip)):
        if level not in discounts:
            return Rejection(
                UNKNOWN_VIP_LEVEL,
                f"{field}: level {level} has no discount in the fee schedule version of {when}",
            )
    buyer_base = symbol.taker_fee if buyer_is_taker else symbol.maker_fee
    seller_base = symbol.maker_fee if buyer_is_taker else symbol.taker_fee
    return (
        discounted_rate(buyer_base, discounts[buyer_vip]),
        discounted_rate(seller_base, discounts[seller_vip]),
    )
