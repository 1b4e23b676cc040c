"""columns_of over the engine's TradeRows: the same columns, and the same refusals, as
over the events themselves."""

from __future__ import annotations

import random
from itertools import chain
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings, strategies as st

from tests.unit.test_event_columns import rates, trades
from worker.core.event_columns import COPIED, TradeEvents
from worker.core.events import TradeRows, trade_rows
from worker.core.messages import Trade
from worker.tdengine.errors import RowValueError
from worker.tdengine.row_checks import trade_event_columns
from worker.tdengine.stmt2_rows import ColumnBatch, columns_of

INT64 = (-(1 << 63), (1 << 63) - 1)


def same(fast: ColumnBatch, slow: ColumnBatch) -> None:
    assert list(fast.subtables) == list(slow.subtables)
    assert [list(c) for c in fast.data] == [list(c) for c in slow.data]
    assert fast.starts == slow.starts
    assert fast.row_keys(0, len(fast)) == slow.row_keys(0, len(slow))


def batch(size: int, *, users: int = 5, seed: int = 1) -> list[TradeRows]:
    """Trades among a few users (so subtables repeat), some sharing ts, ids shuffled."""
    rng = random.Random(seed)
    ids = rng.sample(range(1, 10 * size + 2), size)
    out = []
    for n, trade_id in enumerate(ids):
        trade = Trade(
            trade_id=trade_id, symbol_id=1, ts=1_700_000_000_000_000 + rng.randrange(3),
            price=rng.randrange(1, 10**9), qty=rng.randrange(1, 10**9), qty_unit=1,
            base_asset_id=1 + n % 2, quote_asset_id=3, buyer_user_id=rng.randrange(1, users),
            seller_user_id=rng.randrange(1, users), taker_side=rng.choice(["buy", "sell"]),
            account_type=1 + n % 3,
        )  # fmt: skip
        out.append(trade_rows(trade, rng.randrange(0, 5000), rng.randrange(0, 5000)))
    return out


@pytest.mark.parametrize("size", [0, 1, 2, 50, 400])
def test_trade_events_give_the_columns_the_events_give(size: int) -> None:
    rows = batch(size)
    same(columns_of(TradeEvents(rows)), columns_of(list(chain.from_iterable(rows))))


@settings(max_examples=60)
@given(st.lists(st.tuples(trades, rates, rates), min_size=1, max_size=30))
def test_any_valid_trades_take_the_column_path(drawn: list[tuple[Trade, int, int]]) -> None:
    rows = [trade_rows(*one) for one in drawn]
    assert trade_event_columns(TradeEvents(rows)) is not None
    same(columns_of(TradeEvents(rows)), columns_of(list(chain.from_iterable(rows))))


def refusal(rows: list[TradeRows]) -> str:
    with pytest.raises(RowValueError) as caught:
        columns_of(list(chain.from_iterable(rows)))
    return str(caught.value)


# Values each trade field may not hold, as the events' own check refuses them. Fields
# that enter arithmetic (ids, amounts, fees) take ints only: a TradeRows holding None
# there is a bug that fails when its events are built.
BAD_TRADE_VALUES: dict[str, list[Any]] = {
    "ts": [None, 1.5, True, "1", INT64[1] + 1],
    "trade_id": [INT64[1] // 4 + 1, INT64[0] // 4 - 1],
    "account_type": [None, -1, 128, True],
    "buyer": [None, -1, INT64[1] + 1, 2.0],
    "seller": [None, -1, False],
    "base": [None, -(2**31) - 1, 2**31, 1.0],
    "quote": [2**31, "3"],
    "qty": [INT64[1] + 1, 7.0],
    "quote_amount": [INT64[0] - 1, 2.5],
    "buyer_fee": [INT64[1] + 1, 1.5],
    "seller_fee": [-(2**63) - 1, 0.5],
    "buyer_is_maker": [None, 1, "yes"],
}


@pytest.mark.parametrize(
    ("field", "value"), [(f, v) for f, values in BAD_TRADE_VALUES.items() for v in values]
)
def test_a_refused_trade_value_is_refused_with_the_events_own_message(
    field: str, value: object
) -> None:
    assert set(BAD_TRADE_VALUES) == set(COPIED)
    rows = batch(6)
    rows[4] = msgspec.structs.replace(rows[4], **{field: value})
    expected = refusal(rows)
    with pytest.raises(RowValueError) as caught:
        columns_of(TradeEvents(rows))
    assert str(caught.value) == expected


def test_computed_values_out_of_range_are_refused_as_the_events_refuse_them() -> None:
    # qty - buyer_fee above BIGINT although both are in range; the last event id too.
    for change in ({"qty": INT64[1], "buyer_fee": -1}, {"trade_id": INT64[1] // 4 + 1}):
        rows = batch(3)
        rows[1] = msgspec.structs.replace(rows[1], **change)
        assert trade_event_columns(TradeEvents(rows)) is None
        expected = refusal(rows)
        with pytest.raises(RowValueError) as caught:
            columns_of(TradeEvents(rows))
        assert str(caught.value) == expected
