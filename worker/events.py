"""BalanceEvent: one ledger row, and the turning of a trade into its four rows."""

from __future__ import annotations

from typing import Final

import msgspec

__all__ = (
    "EVENTS_PER_TRADE",
    "EVENT_TYPE_FEE_RECEIVED",
    "EVENT_TYPE_TRADE_SETTLED",
    "PLATFORM_USER_ID",
    "BalanceEvent",
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
