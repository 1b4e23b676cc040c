"""Decoding trades: every rejection reason, and the order in which checks run."""

from __future__ import annotations

import pytest

from worker.core.messages import INT63_MAX, TRADE_ID_MAX, Trade, decode_trade
from worker.core.rejections import Rejection

from .samples import line, trade


def reason(raw: bytes) -> str | None:
    result = decode_trade(raw)
    return result.reason if isinstance(result, Rejection) else None


def test_valid_trade_decodes_with_defaults() -> None:
    result = decode_trade(line())
    assert isinstance(result, Trade)
    assert (result.buyer_vip, result.seller_vip, result.account_type) == (0, 0, 1)
    assert result.quote_amount == 1_625_000_000_000


def test_unknown_fields_are_ignored() -> None:
    assert isinstance(decode_trade(line(venue="eu", extra={"nested": [1, 2.5]})), Trade)


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b'{"trade_id": 1', b"{'a': 1}", b'{"a": NaN}', b'{"a": Infinity}',
     b"\xef\xbb\xbf{}", b'{"a":1} trailing', b'{"a": 01}'],
)  # fmt: skip
def test_invalid_json(raw: bytes) -> None:
    assert reason(raw) == "invalid_json"


def test_invalid_utf8_in_an_ignored_field_is_invalid_json() -> None:
    raw = line(note="x").replace(b'"x"', b'"\xc3\x28"')
    assert reason(raw) == "invalid_json"


def test_lone_surrogate_escape_in_an_ignored_field_is_still_json() -> None:
    raw = line(note="x").replace(b'"x"', b'"\\ud800"')
    assert isinstance(decode_trade(raw), Trade)


@pytest.mark.parametrize("raw", [b"[1, 2]", b"42", b'"text"', b"null", b"true", b"1.5"])
def test_non_object_is_invalid_type(raw: bytes) -> None:
    assert reason(raw) == "invalid_type"


@pytest.mark.parametrize(
    "field",
    ["trade_id", "symbol_id", "ts", "price", "qty", "qty_unit", "base_asset_id",
     "quote_asset_id", "buyer_user_id", "seller_user_id", "taker_side"],
)  # fmt: skip
def test_each_required_field_missing(field: str) -> None:
    result = decode_trade(line(**{field: ...}))
    assert isinstance(result, Rejection)
    assert result.reason == "missing_field"
    assert field in result.detail


@pytest.mark.parametrize("field", ["buyer_vip", "seller_vip", "account_type"])
def test_optional_fields_may_be_absent(field: str) -> None:
    assert isinstance(decode_trade(line(**{field: ...})), Trade)


@pytest.mark.parametrize("value", [True, False, 1.0, 1.5, "100", None, [1], {"v": 1}, 1e3])
@pytest.mark.parametrize("field", ["trade_id", "symbol_id", "qty", "buyer_vip", "account_type"])
def test_non_integer_is_invalid_type(field: str, value: object) -> None:
    result = decode_trade(line(**{field: value}))
    assert isinstance(result, Rejection)
    assert result.reason == "invalid_type"
    assert result.detail.startswith(f"{field}: ")


@pytest.mark.parametrize("side", ["BUY", "Buy", " buy", "bid", "", None, 1, True, ["buy"]])
def test_bad_taker_side_is_invalid_value(side: object) -> None:
    assert reason(line(taker_side=side)) == "invalid_value"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("trade_id", 0), ("trade_id", TRADE_ID_MAX + 1), ("trade_id", -1),
        ("ts", 0), ("ts", -5), ("price", 0), ("qty", 0), ("qty", -5), ("qty", INT63_MAX + 1),
        ("qty_unit", 0), ("base_asset_id", -1), ("base_asset_id", 2**31),
        ("quote_asset_id", 2**31), ("buyer_user_id", 0), ("seller_user_id", 2**63),
        ("buyer_vip", 256), ("seller_vip", -1), ("account_type", 0), ("account_type", 128),
    ],
)  # fmt: skip
def test_out_of_range(field: str, value: int) -> None:
    result = decode_trade(line(**{field: value}))
    assert isinstance(result, Rejection)
    assert result.reason == "out_of_range"
    assert result.detail.startswith(f"{field}: ")


def test_integer_of_5000_digits_is_an_integer_out_of_range() -> None:
    raw = line(qty=7).replace(b'"qty": 7', b'"qty": 1' + b"0" * 5000)
    assert reason(raw) == "out_of_range"


def test_out_of_range_detail_names_field_and_value() -> None:
    result = decode_trade(line(qty=-5))
    assert result == Rejection("out_of_range", "qty: -5 is below 1")


@pytest.mark.parametrize(
    ("field", "value"),
    [("trade_id", 1), ("trade_id", TRADE_ID_MAX), ("qty", INT63_MAX), ("base_asset_id", 0),
     ("quote_asset_id", 2**31 - 1), ("buyer_user_id", INT63_MAX), ("buyer_vip", 255),
     ("account_type", 127), ("ts", 10**40), ("symbol_id", -7), ("symbol_id", 10**30)],
)  # fmt: skip
def test_boundaries_accepted(field: str, value: int) -> None:
    overrides: dict[str, object] = {field: value}
    if field == "qty":
        overrides["price"] = 1
        overrides["qty_unit"] = 1
    assert isinstance(decode_trade(line(**overrides)), Trade)


def test_equal_assets_are_out_of_range() -> None:
    assert reason(line(base_asset_id=7, quote_asset_id=7)) == "out_of_range"


def test_quote_amount_exactly_int63_max_is_accepted() -> None:
    result = decode_trade(line(price=INT63_MAX, qty=1, qty_unit=1))
    assert isinstance(result, Trade)
    assert result.quote_amount == INT63_MAX


def test_quote_amount_above_int63_max_is_out_of_range() -> None:
    assert reason(line(price=INT63_MAX, qty=2, qty_unit=1)) == "out_of_range"
    # floor keeps it in range: (2^63-1) * 3 // 3
    assert isinstance(decode_trade(line(price=INT63_MAX, qty=3, qty_unit=3)), Trade)


def test_zero_quote_amount() -> None:
    assert reason(line(price=1, qty=99, qty_unit=100)) == "zero_quote_amount"
    assert isinstance(decode_trade(line(price=1, qty=100, qty_unit=100)), Trade)


def test_buyer_may_equal_seller() -> None:
    assert isinstance(decode_trade(line(buyer_user_id=5, seller_user_id=5)), Trade)


# Order: the first failing check wins, whatever the field order in the JSON text.
@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"qty": "1", "trade_id": ...}, "missing_field"),
        ({"taker_side": "x", "price": 1.5}, "invalid_type"),
        ({"taker_side": "x", "qty": -1}, "invalid_value"),
        ({"qty": -1, "buyer_vip": None}, "invalid_type"),
        ({"account_type": 0, "price": 1, "qty": 1, "qty_unit": 10}, "out_of_range"),
        ({"base_asset_id": 3, "quote_asset_id": 3, "price": 1, "qty": 1, "qty_unit": 10},
         "out_of_range"),
        ({"taker_side": 5, "ts": ...}, "missing_field"),
        ({"seller_vip": "1", "taker_side": "x"}, "invalid_type"),
    ],
)  # fmt: skip
def test_first_failure_wins(overrides: dict[str, object], expected: str) -> None:
    assert reason(line(**overrides)) == expected


def test_order_does_not_depend_on_json_key_order() -> None:
    fields = trade(qty=-1)
    fields["price"] = "bad"
    forward = dict(fields)
    backward = dict(reversed(list(fields.items())))
    import json

    assert reason(json.dumps(forward).encode()) == "invalid_type"
    assert reason(json.dumps(backward).encode()) == "invalid_type"


def test_duplicate_keys_last_wins() -> None:
    raw = line().replace(b'"qty": 25000000', b'"qty": -1, "qty": 25000000')
    assert isinstance(decode_trade(raw), Trade)


# Regressions found by the differential test against an independent implementation.
def test_invalid_utf8_inside_a_decoded_string_is_invalid_json() -> None:
    assert reason(line(taker_side="x").replace(b'"x"', b'"\xff"')) == "invalid_json"


@pytest.mark.parametrize(
    ("field", "text", "expected"),
    [
        ("symbol_id", b"1" + b"0" * 5000, "unknown_symbol"),
        ("buyer_vip", b"[1" + b"0" * 5000 + b"]", "invalid_type"),
        ("taker_side", b'{"a": 1' + b"0" * 5000 + b"}", "invalid_value"),
        ("qty_unit", b"1" + b"0" * 5000, "zero_quote_amount"),
    ],
)
def test_integers_beyond_4300_digits_never_crash_a_detail(
    field: str, text: bytes, expected: str
) -> None:
    from worker.core.deriver import Deriver

    from .samples import schedule

    raw = line(**{field: 7}).replace(f'"{field}": 7'.encode(), f'"{field}": '.encode() + text)
    result = Deriver(schedule()).derive(raw)
    assert isinstance(result, Rejection)
    assert result.reason == expected
    assert len(result.detail) < 300


def test_deep_nesting_in_an_ignored_field_is_invalid_json() -> None:
    raw = line(note=0).replace(b'"note": 0', b'"note": ' + b"[" * 5000 + b"]" * 5000)
    assert reason(raw) == "invalid_json"
