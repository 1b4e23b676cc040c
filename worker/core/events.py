"""BalanceEvent: one ledger row, and the turning of a trade into its four rows."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Final, overload

import msgspec

from worker.core.fees import RATE_PRECISION
from worker.core.messages import Trade
from worker.errors import ConservationError

__all__ = (
    "EVENTS_PER_TRADE",
    "EVENT_TYPE_FEE_RECEIVED",
    "EVENT_TYPE_TRADE_SETTLED",
    "PLATFORM_USER_ID",
    "BalanceEvent",
    "TradeRows",
    "balance_events",
    "check_conservation",
    "trade_rows",
)

EVENTS_PER_TRADE: Final = 4
EVENT_TYPE_TRADE_SETTLED: Final = 1
EVENT_TYPE_FEE_RECEIVED: Final = 2
PLATFORM_USER_ID: Final = 0
"""User 0 is the platform's fee revenue account."""


class BalanceEvent(msgspec.Struct, frozen=True, gc=False):
    """One ledger row. Field order is the output order of ``balance-sink derive``.

    ``event_id = trade_id * 4 + k`` for k in 0..3; (user_id, account_type) name the
    TDengine subtable, and (subtable, ts, event_id) is the row's identity.
    """

    ts: int
    event_id: int
    event_type: int
    trade_id: int
    user_id: int
    account_type: int
    debit_asset: int | None
    debit_amt: int | None
    credit_asset: int
    credit_amt: int
    fee: int
    fee_asset: int
    is_maker: bool
    from_user: int | None


def balance_events(
    trade: Trade, buyer_rate: int, seller_rate: int
) -> tuple[BalanceEvent, BalanceEvent, BalanceEvent, BalanceEvent]:
    """The four rows of a trade, in order k = 0..3, given each side's charged rate.

    The fee is taken from what each side receives: the buyer's on ``qty`` (base), the
    seller's on ``quote_amount`` (quote). Raises :class:`ConservationError` if an asset
    is not conserved, which would be a bug (rates above 100 %), never bad input.
    :func:`check_conservation` states the same invariant over any list of events.
    """
    return trade_rows(trade, buyer_rate, seller_rate).events()


if TYPE_CHECKING:
    _EventSequence = Sequence[BalanceEvent]
else:

    class _EventSequence:
        """A Struct cannot take ``Sequence`` as a base (its metaclass is ABCMeta), so
        TradeRows is registered as one below; type checkers see the base."""

        __slots__ = ()


class TradeRows(msgspec.Struct, _EventSequence, frozen=True, gc=False):
    """A trade's four rows as the dozen values they are made of: a sequence of the four
    :class:`BalanceEvent` s (k = 0..3), each built when it is read.

    The worker's engine carries these instead of the events, and a writer that knows
    this type turns a whole batch of them into columns at once
    (:mod:`worker.core.event_columns`) without building an event. Made by
    :func:`trade_rows`, which checks conservation.
    """

    ts: int
    trade_id: int
    account_type: int
    buyer: int
    seller: int
    base: int
    quote: int
    qty: int
    quote_amount: int
    buyer_fee: int
    seller_fee: int
    buyer_is_maker: bool

    def events(self) -> tuple[BalanceEvent, BalanceEvent, BalanceEvent, BalanceEvent]:
        """The four events, k = 0..3 (the table in the README's contract)."""
        ts, trade_id, account_type = self.ts, self.trade_id, self.account_type
        base, quote, qty, quote_amount = self.base, self.quote, self.qty, self.quote_amount
        buyer_fee, seller_fee = self.buyer_fee, self.seller_fee
        buyer_is_maker = self.buyer_is_maker
        seller_is_maker = not buyer_is_maker
        first = trade_id * EVENTS_PER_TRADE
        return (
            BalanceEvent(
                ts, first, EVENT_TYPE_TRADE_SETTLED, trade_id, self.buyer, account_type,
                quote, quote_amount, base, qty - buyer_fee, buyer_fee, base, buyer_is_maker,
                None,
            ),
            BalanceEvent(
                ts, first + 1, EVENT_TYPE_TRADE_SETTLED, trade_id, self.seller, account_type,
                base, qty, quote, quote_amount - seller_fee, seller_fee, quote,
                seller_is_maker, None,
            ),
            BalanceEvent(
                ts, first + 2, EVENT_TYPE_FEE_RECEIVED, trade_id, PLATFORM_USER_ID,
                account_type, None, None, base, buyer_fee, 0, base, buyer_is_maker,
                self.buyer,
            ),
            BalanceEvent(
                ts, first + 3, EVENT_TYPE_FEE_RECEIVED, trade_id, PLATFORM_USER_ID,
                account_type, None, None, quote, seller_fee, 0, quote, seller_is_maker,
                self.seller,
            ),
        )  # fmt: skip

    def __len__(self) -> int:
        return EVENTS_PER_TRADE

    def __iter__(self) -> Iterator[BalanceEvent]:
        return iter(self.events())

    @overload
    def __getitem__(self, index: int) -> BalanceEvent: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[BalanceEvent, ...]: ...
    def __getitem__(self, index: int | slice) -> BalanceEvent | tuple[BalanceEvent, ...]:
        return self.events()[index]


Sequence.register(TradeRows)


def trade_rows(trade: Trade, buyer_rate: int, seller_rate: int) -> TradeRows:
    """The rows of a trade (see :func:`balance_events`) as a :class:`TradeRows`.

    Raises :class:`ConservationError` as :func:`balance_events` does.
    """
    qty = trade.qty
    quote_amount = trade.price * qty // trade.qty_unit
    # fee_for(), inlined: this runs for every trade.
    buyer_fee = qty * buyer_rate // RATE_PRECISION
    if buyer_fee == 0 and buyer_rate > 0:
        buyer_fee = 1
    seller_fee = quote_amount * seller_rate // RATE_PRECISION
    if seller_fee == 0 and seller_rate > 0:
        seller_fee = 1
    # Conservation, per asset: base credits (what the buyer gets + buyer_fee) equal the
    # seller's debit (qty); quote credits (what the seller gets + seller_fee) equal the
    # buyer's debit (quote_amount), as long as neither fee exceeds what it is taken from.
    if buyer_fee > qty or seller_fee > quote_amount:
        raise ConservationError(f"trade {trade.trade_id}: fees exceed the amounts received")
    return TradeRows(
        trade.ts, trade.trade_id, trade.account_type, trade.buyer_user_id,
        trade.seller_user_id, trade.base_asset_id, trade.quote_asset_id, qty, quote_amount,
        buyer_fee, seller_fee, trade.taker_side == "sell",
    )  # fmt: skip


def check_conservation(events: Sequence[BalanceEvent]) -> None:
    """Per asset, credits equal debits, and no amount is negative."""
    balance: dict[int, int] = {}
    for e in events:
        if e.credit_amt < 0 or (e.debit_amt is not None and e.debit_amt < 0):
            raise ConservationError(f"event {e.event_id}: negative amount")
        balance[e.credit_asset] = balance.get(e.credit_asset, 0) + e.credit_amt
        if e.debit_asset is not None and e.debit_amt is not None:
            balance[e.debit_asset] = balance.get(e.debit_asset, 0) - e.debit_amt
    for asset, net in balance.items():
        if net:
            raise ConservationError(
                f"trade {events[0].trade_id}: asset {asset} is not conserved "
                f"(credits - debits = {net})"
            )
