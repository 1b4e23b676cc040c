"""Trade -> four BalanceEvents: the table of the contract, row by row."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from worker.core.deriver import Deriver
from worker.core.events import BalanceEvent, balance_events, check_conservation
from worker.core.fees import RATE_PRECISION
from worker.core.messages import ASSET_ID_MAX, INT63_MAX, TRADE_ID_MAX, Trade
from worker.core.rejections import Rejection
from worker.errors import ConservationError

from .samples import V1_US, V2_US, line, schedule


def derive(**overrides: object) -> tuple[BalanceEvent, ...] | Rejection:
    return Deriver(schedule()).derive(line(**overrides))


def events_of(**overrides: object) -> tuple[BalanceEvent, ...]:
    result = derive(**overrides)
    assert not isinstance(result, Rejection), result
    return result


def test_buyer_taker_rows_match_the_contract_table() -> None:
    # v1, symbol 1: maker 1000, taker 2000; buyer VIP 1 = 90 %, seller VIP 0 = 100 %.
    b, s, fb, fs = events_of(buyer_vip=1)
    qa = 6_500_000_000_000 * 25_000_000 // 100_000_000
    buyer_fee = 25_000_000 * 1800 // RATE_PRECISION
    seller_fee = qa * 1000 // RATE_PRECISION
    ts = V1_US + 1
    assert b == BalanceEvent(ts, 168, 1, 42, 1001, 1, 2, qa, 1, 25_000_000 - buyer_fee,
                             buyer_fee, 1, False, None)  # fmt: skip
    assert s == BalanceEvent(ts, 169, 1, 42, 1002, 1, 1, 25_000_000, 2, qa - seller_fee,
                             seller_fee, 2, True, None)  # fmt: skip
    assert fb == BalanceEvent(ts, 170, 2, 42, 0, 1, None, None, 1, buyer_fee, 0, 1, False, 1001)
    assert fs == BalanceEvent(ts, 171, 2, 42, 0, 1, None, None, 2, seller_fee, 0, 2, True, 1002)


def test_seller_taker_swaps_maker_flags_and_rates() -> None:
    b, s, fb, fs = events_of(taker_side="sell")
    assert (b.is_maker, s.is_maker, fb.is_maker, fs.is_maker) == (True, False, True, False)
    assert b.fee == 25_000_000 * 1000 // RATE_PRECISION
    quote_amount = 6_500_000_000_000 * 25_000_000 // 100_000_000
    assert s.fee == quote_amount * 2000 // RATE_PRECISION


def test_account_type_ts_trade_id_on_every_row() -> None:
    rows = events_of(account_type=3, trade_id=7)
    assert {(e.account_type, e.ts, e.trade_id) for e in rows} == {(3, V1_US + 1, 7)}
    assert [e.event_id for e in rows] == [28, 29, 30, 31]


def test_min_fee_rule_and_zero_fee_rows_still_written() -> None:
    # qty 1 at a 0.2 % rate -> 0.002 -> minimum fee 1; symbol 2 maker fee 0 -> fee 0.
    b, _, fb, _ = events_of(qty=1, price=10**8)
    assert (b.fee, b.credit_amt, fb.credit_amt) == (1, 0, 1)
    _, s, _, fs = events_of(symbol_id=2, taker_side="buy")  # seller is maker at rate 0
    assert (s.fee, fs.credit_amt, fs.fee) == (0, 0, 0)


def test_rate_of_100_percent_takes_everything_received() -> None:
    b, _, fb, _ = events_of(symbol_id=2, taker_side="buy")  # buyer taker at 1,000,000
    assert (b.credit_amt, b.fee, fb.credit_amt) == (0, 25_000_000, 25_000_000)


def test_vip_default_is_zero_and_missing_level_rejected() -> None:
    assert events_of()[0].fee == 25_000_000 * 2000 // RATE_PRECISION
    result = derive(buyer_vip=2)
    assert isinstance(result, Rejection)
    assert result.reason == "unknown_vip_level"
    assert "buyer_vip" in result.detail
    result = derive(seller_vip=5, ts=V2_US)  # level 5 exists in v1 only
    assert isinstance(result, Rejection)
    assert result.reason == "unknown_vip_level"


def test_version_selection_at_exactly_effective_from() -> None:
    before = events_of(ts=V2_US - 1)  # v1: taker 2000
    at = events_of(ts=V2_US)  # v2: taker 1500
    assert before[0].fee == 25_000_000 * 2000 // RATE_PRECISION
    assert at[0].fee == 25_000_000 * 1500 // RATE_PRECISION


def test_schedule_rejections_in_order() -> None:
    for overrides, expected in [
        ({"ts": V1_US - 1, "symbol_id": 99, "buyer_vip": 9}, "no_fee_schedule"),
        ({"symbol_id": 99, "buyer_vip": 9}, "unknown_symbol"),
        ({"symbol_id": 2, "ts": V2_US}, "unknown_symbol"),  # symbol 2 dropped in v2
        ({"buyer_vip": 9}, "unknown_vip_level"),
        ({"ts": 1, "price": 1, "qty": 1, "qty_unit": 2}, "zero_quote_amount"),
    ]:
        result = derive(**overrides)
        assert isinstance(result, Rejection) and result.reason == expected, overrides


def test_buyer_equal_to_seller_keeps_both_rows() -> None:
    b, s, _, _ = events_of(buyer_user_id=9, seller_user_id=9)
    assert (b.user_id, s.user_id) == (9, 9)
    assert b.event_id != s.event_id


def test_largest_trade_id_gives_bigint_event_ids() -> None:
    rows = events_of(trade_id=TRADE_ID_MAX)
    assert rows[3].event_id == INT63_MAX


def test_quote_amount_exactly_int63_max() -> None:
    b, s, _, _ = events_of(price=INT63_MAX, qty=1, qty_unit=1)
    assert b.debit_amt == INT63_MAX
    assert s.credit_amt + s.fee == INT63_MAX


def test_conservation_check_catches_an_imbalance() -> None:
    rows = list(events_of())
    rows[3] = BalanceEvent(**{**{f: getattr(rows[3], f) for f in rows[3].__struct_fields__},
                              "credit_amt": rows[3].credit_amt + 1})  # fmt: skip
    with pytest.raises(ConservationError, match="not conserved"):
        check_conservation(rows)


vip = st.integers(0, 255)
trades = st.builds(
    Trade,
    trade_id=st.integers(1, TRADE_ID_MAX),
    symbol_id=st.just(1),
    ts=st.integers(1, 2**62),
    price=st.integers(1, 2**40),
    qty=st.integers(1, INT63_MAX),
    qty_unit=st.integers(1, 10**18),
    base_asset_id=st.integers(0, ASSET_ID_MAX),
    quote_asset_id=st.integers(0, ASSET_ID_MAX),
    buyer_user_id=st.integers(1, INT63_MAX),
    seller_user_id=st.integers(1, INT63_MAX),
    taker_side=st.sampled_from(["buy", "sell"]),
    buyer_vip=vip,
    seller_vip=vip,
    account_type=st.integers(1, 127),
)


@settings(max_examples=500)
@given(trades, st.integers(0, RATE_PRECISION), st.integers(0, RATE_PRECISION))
def test_every_trade_conserves_assets_and_stays_in_bounds(
    trade: Trade, buyer_rate: int, seller_rate: int
) -> None:
    qa = trade.quote_amount
    if trade.base_asset_id == trade.quote_asset_id or not 0 < qa <= INT63_MAX:
        return
    rows = balance_events(trade, buyer_rate, seller_rate)
    net: dict[int, int] = {}
    for e in rows:
        net[e.credit_asset] = net.get(e.credit_asset, 0) + e.credit_amt
        if e.debit_asset is not None and e.debit_amt is not None:
            net[e.debit_asset] = net.get(e.debit_asset, 0) - e.debit_amt
    assert set(net.values()) == {0}
    for e in rows:
        assert 0 <= e.credit_amt <= INT63_MAX
        assert 0 <= e.fee <= INT63_MAX
        assert 0 <= e.event_id <= INT63_MAX
        assert e.event_id // 4 == trade.trade_id
    assert [e.user_id for e in rows] == [trade.buyer_user_id, trade.seller_user_id, 0, 0]
    assert rows[2].credit_amt == rows[0].fee and rows[3].credit_amt == rows[1].fee
