"""BalanceEvent: one ledger row, and the turning of a trade into its four rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

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
    "balance_events",
    "check_conservation",
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
    ts = trade.ts
    trade_id = trade.trade_id
    account_type = trade.account_type
    base = trade.base_asset_id
    quote = trade.quote_asset_id
    qty = trade.qty
    quote_amount = trade.price * qty // trade.qty_unit
    buyer = trade.buyer_user_id
    seller = trade.seller_user_id
    buyer_is_maker = trade.taker_side == "sell"
    seller_is_maker = not buyer_is_maker
    # fee_for(), inlined: this runs for every trade.
    buyer_fee = qty * buyer_rate // RATE_PRECISION
    if buyer_fee == 0 and buyer_rate > 0:
        buyer_fee = 1
    seller_fee = quote_amount * seller_rate // RATE_PRECISION
    if seller_fee == 0 and seller_rate > 0:
        seller_fee = 1
    buyer_gets = qty - buyer_fee
    seller_gets = quote_amount - seller_fee
    # Conservation, per asset: base credits (buyer_gets + buyer_fee) equal the seller's
    # debit (qty); quote credits (seller_gets + seller_fee) equal the buyer's debit.
    if (
        buyer_gets < 0
        or seller_gets < 0
        or buyer_gets + buyer_fee != qty
        or seller_gets + seller_fee != quote_amount
    ):
        raise ConservationError(f"trade {trade_id}: fees exceed the amounts received")
    first = trade_id * EVENTS_PER_TRADE
    return (
        BalanceEvent(
            ts, first, EVENT_TYPE_TRADE_SETTLED, trade_id, buyer, account_type,
            quote, quote_amount, base, buyer_gets, buyer_fee, base, buyer_is_maker, None,
        ),
        BalanceEvent(
            ts, first + 1, EVENT_TYPE_TRADE_SETTLED, trade_id, seller, account_type,
            base, qty, quote, seller_gets, seller_fee, quote, seller_is_maker, None,
        ),
        BalanceEvent(
            ts, first + 2, EVENT_TYPE_FEE_RECEIVED, trade_id, PLATFORM_USER_ID, account_type,
            None, None, base, buyer_fee, 0, base, buyer_is_maker, buyer,
        ),
        BalanceEvent(
            ts, first + 3, EVENT_TYPE_FEE_RECEIVED, trade_id, PLATFORM_USER_ID, account_type,
            None, None, quote, seller_fee, 0, quote, seller_is_maker, seller,
        ),
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
