"""Many trades' rows as columns, made from the trades' values without building an event.

:class:`TradeEvents` is the events of many :class:`~worker.core.events.TradeRows` in
order: a sequence of :class:`~worker.core.events.BalanceEvent` like any other. A writer
that knows it asks for :func:`event_columns` instead: one list per BalanceEvent field,
made in whole-column steps from the dozen values of each trade. Those lists hold exactly
what reading the events one by one would give (``tests/unit/test_event_columns.py``
checks this on random trades).

:data:`COPIED` says which event fields hold each trade value as it is and
:data:`COMPUTED` which fields are computed from several, so that a writer can check a
whole batch's values on the trades' columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import chain, repeat
from operator import add, attrgetter, mul, not_, sub
from typing import Any, Final, overload

from worker.core.events import (
    EVENT_TYPE_FEE_RECEIVED,
    EVENT_TYPE_TRADE_SETTLED,
    EVENTS_PER_TRADE,
    PLATFORM_USER_ID,
    BalanceEvent,
    TradeRows,
)

__all__ = ("COMPUTED", "COPIED", "TradeEvents", "event_columns", "events_of", "trade_columns")

COPIED: Final[dict[str, tuple[str, ...]]] = {
    "ts": ("ts",),
    "trade_id": ("trade_id",),
    "account_type": ("account_type",),
    "buyer": ("user_id", "from_user"),
    "seller": ("user_id", "from_user"),
    "base": ("debit_asset", "credit_asset", "fee_asset"),
    "quote": ("debit_asset", "credit_asset", "fee_asset"),
    "qty": ("debit_amt",),
    "quote_amount": ("debit_amt",),
    "buyer_fee": ("credit_amt", "fee"),
    "seller_fee": ("credit_amt", "fee"),
    "buyer_is_maker": ("is_maker",),
}
"""Each :class:`TradeRows` field, and the event fields that hold its value unchanged."""

COMPUTED: Final = ("event_id", "credit_amt")
"""Event fields with values computed from several trade values (``trade_id * 4 + k``,
``qty - buyer_fee``, ``quote_amount - seller_fee``). Every other value is copied, one
of the constants of the contract (event types, user 0, fee 0, null), or ``is_maker`` of
the seller's rows, ``not buyer_is_maker``: a bool whatever ``buyer_is_maker`` is."""

assert set(COPIED) == set(TradeRows.__struct_fields__)
_GETTERS: Final = tuple(map(attrgetter, TradeRows.__struct_fields__))


class TradeEvents(Sequence[BalanceEvent]):
    """The events of ``trades`` in order (trade by trade, k = 0..3 within a trade)."""

    __slots__ = ("trades",)

    def __init__(self, trades: Sequence[TradeRows]) -> None:
        self.trades = trades

    def __len__(self) -> int:
        return EVENTS_PER_TRADE * len(self.trades)

    def __iter__(self) -> Iterator[BalanceEvent]:
        return chain.from_iterable(map(TradeRows.events, self.trades))

    @overload
    def __getitem__(self, index: int) -> BalanceEvent: ...
    @overload
    def __getitem__(self, index: slice) -> list[BalanceEvent]: ...
    def __getitem__(self, index: int | slice) -> BalanceEvent | list[BalanceEvent]:
        if isinstance(index, slice):
            return list(self)[index]
        trade, k = divmod(range(len(self))[index], EVENTS_PER_TRADE)
        return self.trades[trade].events()[k]


def events_of(groups: Iterable[Sequence[BalanceEvent]]) -> Sequence[BalanceEvent]:
    """The events of ``groups`` in order: a :class:`TradeEvents` when every group is a
    :class:`TradeRows` (nothing is built), else a list of the events."""
    groups = groups if isinstance(groups, list | tuple) else list(groups)
    if all(group.__class__ is TradeRows for group in groups):
        return TradeEvents(groups)  # type: ignore[arg-type]
    return list(chain.from_iterable(groups))


def trade_columns(trades: Sequence[TradeRows]) -> dict[str, list[Any]]:
    """One list per :class:`TradeRows` field (keyed by field), a value per trade."""
    return {
        name: list(map(get, trades))
        for name, get in zip(TradeRows.__struct_fields__, _GETTERS, strict=True)
    }


def event_columns(trades: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """The events of trades (as :func:`trade_columns` gives them) as one list per
    :class:`BalanceEvent` field, in that field order, a value per event in
    :class:`TradeEvents` order. Lists may be shared between fields with equal values."""
    count = len(trades["ts"])
    zeros, nulls = [0] * count, [None] * count
    ts, trade_id, account_type = trades["ts"], trades["trade_id"], trades["account_type"]
    buyer, seller, base, quote = trades["buyer"], trades["seller"], trades["base"], trades["quote"]
    qty, quote_amount = trades["qty"], trades["quote_amount"]
    buyer_fee, seller_fee = trades["buyer_fee"], trades["seller_fee"]
    buyer_is_maker = trades["buyer_is_maker"]
    seller_is_maker = list(map(not_, buyer_is_maker))
    first = list(map(mul, trade_id, repeat(EVENTS_PER_TRADE)))
    credit_asset = _rows(base, quote, base, quote)
    settled, received = EVENT_TYPE_TRADE_SETTLED, EVENT_TYPE_FEE_RECEIVED
    platform = [PLATFORM_USER_ID] * count
    return {
        "ts": _rows(ts, ts, ts, ts),
        "event_id": _rows(first, *(list(map(add, first, repeat(k))) for k in (1, 2, 3))),
        "event_type": [settled, settled, received, received] * count,
        "trade_id": _rows(trade_id, trade_id, trade_id, trade_id),
        "user_id": _rows(buyer, seller, platform, platform),
        "account_type": _rows(account_type, account_type, account_type, account_type),
        "debit_asset": _rows(quote, base, nulls, nulls),
        "debit_amt": _rows(quote_amount, qty, nulls, nulls),
        "credit_asset": credit_asset,
        "credit_amt": _rows(
            list(map(sub, qty, buyer_fee)),
            list(map(sub, quote_amount, seller_fee)),
            buyer_fee,
            seller_fee,
        ),
        "fee": _rows(buyer_fee, seller_fee, zeros, zeros),
        "fee_asset": credit_asset,
        "is_maker": _rows(buyer_is_maker, seller_is_maker, buyer_is_maker, seller_is_maker),
        "from_user": _rows(nulls, nulls, buyer, seller),
    }


def _rows(k0: list[Any], k1: list[Any], k2: list[Any], k3: list[Any]) -> list[Any]:
    """One column of the events: trade ``i``'s value for row k at ``4 * i + k``."""
    column: list[Any] = [None] * (EVENTS_PER_TRADE * len(k0))
    column[0::4], column[1::4], column[2::4], column[3::4] = k0, k1, k2, k3
    return column


assert tuple(event_columns(trade_columns([]))) == BalanceEvent.__struct_fields__
