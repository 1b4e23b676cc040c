"""TradeRows and TradeEvents: the engine's form of a trade's rows, read one by one or as
columns, always the same values as the four BalanceEvents."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from operator import attrgetter

import pytest
from hypothesis import given, settings, strategies as st

from worker.core.deriver import Deriver
from worker.core.event_columns import (
    COMPUTED,
    COPIED,
    TradeEvents,
    event_columns,
    events_of,
    trade_columns,
)
from worker.core.events import BalanceEvent, TradeRows, balance_events, trade_rows
from worker.core.fees import RATE_PRECISION
from worker.core.messages import INT63_MAX, Trade
from worker.core.rejections import Rejection
from worker.errors import ConservationError

from .samples import V1_US, line, schedule
from .test_events import trades as any_trades

# What decode_trade lets through: a quote amount in 1..INT63_MAX.
trades = any_trades.filter(lambda trade: 1 <= trade.quote_amount <= INT63_MAX)
rates = st.integers(0, RATE_PRECISION)


def rows_of(**overrides: object) -> TradeRows:
    result = Deriver(schedule()).derive_rows(line(**overrides))
    assert isinstance(result, TradeRows), result
    return result


@settings(max_examples=300)
@given(trades, rates, rates)
def test_trade_rows_are_the_four_balance_events(trade: Trade, buyer: int, seller: int) -> None:
    rows = trade_rows(trade, buyer, seller)
    events = balance_events(trade, buyer, seller)
    assert rows.events() == events
    assert list(rows) == list(events)
    assert len(rows) == 4
    assert [rows[k] for k in range(-4, 4)] == [*events, *events]
    assert rows[1:3] == events[1:3]
    with pytest.raises(IndexError):
        rows[4]


def test_trade_rows_are_a_sequence_of_events() -> None:
    assert isinstance(rows_of(), Sequence)


def test_derive_rows_is_derive_with_the_events_unbuilt() -> None:
    deriver = Deriver(schedule())
    for overrides in ({}, {"taker_side": "sell", "buyer_vip": 1}, {"qty": 1, "price": 10**8}):
        rows = deriver.derive_rows(line(**overrides))
        assert isinstance(rows, TradeRows)
        assert rows.events() == deriver.derive(line(**overrides))
    rejected = deriver.derive_rows(line(symbol_id=99))
    assert isinstance(rejected, Rejection)
    assert rejected == deriver.derive(line(symbol_id=99))


def test_fees_above_what_they_are_taken_from_break_conservation() -> None:
    trade = Trade(
        trade_id=1, symbol_id=1, ts=V1_US, price=1, qty=10, qty_unit=1, base_asset_id=1,
        quote_asset_id=2, buyer_user_id=1, seller_user_id=2, taker_side="buy",
    )  # fmt: skip
    with pytest.raises(ConservationError, match="trade 1: fees exceed"):
        trade_rows(trade, 2 * RATE_PRECISION, 0)
    with pytest.raises(ConservationError, match="trade 1: fees exceed"):
        balance_events(trade, 0, 2 * RATE_PRECISION)


@settings(max_examples=60)
@given(st.lists(st.tuples(trades, rates, rates), max_size=40))
def test_columns_hold_what_reading_the_events_gives(
    drawn: list[tuple[Trade, int, int]],
) -> None:
    rows = [trade_rows(*one) for one in drawn]
    events = list(chain.from_iterable(rows))
    columns = event_columns(trade_columns(rows))
    assert tuple(columns) == BalanceEvent.__struct_fields__
    for name, column in columns.items():
        assert list(column) == list(map(attrgetter(name), events)), name


@settings(max_examples=60)
@given(st.lists(st.tuples(trades, rates, rates), max_size=12))
def test_trade_events_read_as_the_events_in_order(drawn: list[tuple[Trade, int, int]]) -> None:
    rows = [trade_rows(*one) for one in drawn]
    events = list(chain.from_iterable(r.events() for r in rows))
    view = TradeEvents(rows)
    assert len(view) == len(events)
    assert list(view) == events
    assert [view[i] for i in range(-len(events), len(events))] == events + events
    assert view[1:7] == events[1:7]
    assert view[::-3] == events[::-3]
    with pytest.raises(IndexError):
        view[len(events)]


def test_events_of_keeps_trade_rows_unbuilt_and_lists_anything_else() -> None:
    rows = [rows_of(trade_id=1), rows_of(trade_id=2)]
    view = events_of(iter(rows))
    assert isinstance(view, TradeEvents)
    assert list(view) == [*rows[0].events(), *rows[1].events()]
    mixed = events_of([rows[0], rows[1].events()])
    assert type(mixed) is list
    assert mixed == list(view)
    assert list(events_of([])) == []


@settings(max_examples=100)
@given(trades, rates, rates)
def test_each_event_value_is_copied_computed_or_a_constant(
    trade: Trade, buyer: int, seller: int
) -> None:
    """What a writer relies on to check a batch on the trades' columns: a value in an
    event field either is a trade value that COPIED lists for that field, or the field
    is COMPUTED, or it is one of the contract's constants."""
    rows = trade_rows(trade, buyer, seller)
    constants = {"event_type": {1, 2}, "user_id": {0}, "fee": {0}}
    nullable = {"debit_asset", "debit_amt", "from_user"}
    for event in rows:
        for name in BalanceEvent.__struct_fields__:
            value = getattr(event, name)
            if name in COMPUTED or value in constants.get(name, ()):
                continue
            if name in nullable and value is None:
                continue
            if name == "is_maker":  # not buyer_is_maker for the seller's rows: a bool
                assert type(value) is bool
                continue
            sources = [field for field, into in COPIED.items() if name in into]
            assert any(getattr(rows, field) == value for field in sources), (name, value)
