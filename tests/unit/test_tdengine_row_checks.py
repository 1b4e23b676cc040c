"""Both write paths take the engine's TradeRows as columns (row_checks): checked on the
trades' own values, accepting only what converting their events to EventRow accepts."""

from __future__ import annotations

from itertools import chain
from operator import attrgetter

import msgspec
import pytest
from hypothesis import given, settings, strategies as st

from tests.unit.test_event_columns import rates, trades
from tests.unit.test_tdengine_stmt2_rows import BAD_TRADE_VALUES, INT64, batch
from worker.core.event_columns import TradeEvents
from worker.core.events import BalanceEvent, TradeRows, trade_rows
from worker.core.messages import Trade
from worker.tdengine.errors import RowValueError
from worker.tdengine.row_checks import EventRow, trade_event_columns
from worker.tdengine.sql import InsertBuilder

ROWS = list[EventRow]  # type: ignore[valid-type]


def converts(rows: list[TradeRows]) -> bool:
    try:
        msgspec.convert(list(chain.from_iterable(rows)), ROWS, from_attributes=True)
    except msgspec.ValidationError:
        return False
    return True


@settings(max_examples=60)
@given(st.lists(st.tuples(trades, rates, rates), min_size=1, max_size=30))
def test_trades_from_trade_rows_are_accepted_as_their_events(
    drawn: list[tuple[Trade, int, int]],
) -> None:
    rows = [trade_rows(*one) for one in drawn]
    columns = trade_event_columns(TradeEvents(rows))
    assert columns is not None
    events = list(chain.from_iterable(rows))
    assert tuple(columns) == BalanceEvent.__struct_fields__
    for name, column in columns.items():
        assert list(column) == list(map(attrgetter(name), events)), name


@pytest.mark.parametrize(
    ("field", "value"), [(f, v) for f, values in BAD_TRADE_VALUES.items() for v in values]
)
def test_a_value_the_events_refuse_is_refused(field: str, value: object) -> None:
    rows = batch(5)
    rows[2] = msgspec.structs.replace(rows[2], **{field: value})
    assert not converts(rows)
    assert trade_event_columns(TradeEvents(rows)) is None


@pytest.mark.parametrize(
    "change",
    [
        {"buyer_fee": -1},  # a negative fee: in range, but not kept in range by the bounds
        {"trade_id": INT64[1] // 4},  # the last event id is exactly the largest BIGINT
        {"account_type": 0},
    ],
)
def test_values_at_the_edges_are_accepted_by_one_check_or_the_other(change: dict[str, int]) -> None:
    """The trades' check may leave values it cannot vouch for to the events' check
    (None), never accept what that check refuses."""
    rows = batch(4)
    rows[1] = msgspec.structs.replace(rows[1], **change)
    assert converts(rows)
    columns = trade_event_columns(TradeEvents(rows))
    if columns is not None:
        assert columns["event_id"] == [e.event_id for e in chain.from_iterable(rows)]


def test_only_trade_events_take_this_path() -> None:
    rows = batch(3)
    assert trade_event_columns(list(chain.from_iterable(rows))) is None
    assert trade_event_columns(TradeEvents([])) is None


@pytest.mark.parametrize("size", [1, 2, 60, 700])
@pytest.mark.parametrize("limit", [4096, 1_048_000])
def test_trade_rows_give_the_statements_their_events_give(size: int, limit: int) -> None:
    """The engine's TradeRows take the column path; the statements and the row
    identities are byte for byte those of the events."""
    rows = batch(size, users=40)
    builder = InsertBuilder("ledger", max_statement_bytes=limit)
    fast = builder.build(TradeEvents(rows))
    slow = InsertBuilder("ledger", max_statement_bytes=limit).build([e for r in rows for e in r])
    assert [s.sql for s in fast] == [s.sql for s in slow]
    assert [s.row_keys() for s in fast] == [s.row_keys() for s in slow]


def test_a_refused_trade_value_gets_the_events_own_message() -> None:
    rows = batch(5)
    rows[3] = msgspec.structs.replace(rows[3], base=2**31)
    with pytest.raises(RowValueError) as slow:
        InsertBuilder("ledger").build([e for r in rows for e in r])
    with pytest.raises(RowValueError) as fast:
        InsertBuilder("ledger").build(TradeEvents(rows))
    assert str(fast.value) == str(slow.value)
    assert "$[12].credit_asset" in str(fast.value)
