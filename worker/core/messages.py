"""The trade-settlement message: its Struct, its bounds, and its decoding.

Decoding returns a :class:`Trade` or a :class:`~worker.core.rejections.Rejection`, never
raises for bad input. A fast path decodes straight into the typed Struct (bounds are
part of the type, checked in C); anything it refuses is classified by the slow path,
which applies the contract's checks in their fixed order so the first failure wins:
invalid_json, invalid_type (not an object), missing_field, invalid_type (a field),
invalid_value, out_of_range, zero_quote_amount.
"""

from __future__ import annotations

import decimal
import json
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta

from worker.core.rejections import (
    INVALID_JSON,
    INVALID_TYPE,
    INVALID_VALUE,
    MISSING_FIELD,
    OUT_OF_RANGE,
    ZERO_QUOTE_AMOUNT,
    Rejection,
    show_int,
)

__all__ = (
    "ASSET_ID_MAX",
    "INT63_MAX",
    "TRADE_ID_MAX",
    "Trade",
    "decode_trade",
)

INT63_MAX: Final = 2**63 - 1
TRADE_ID_MAX: Final = 2**61 - 1
"""Largest trade id: ``trade_id * 4 + 3`` (the last event id) still fits a BIGINT."""
ASSET_ID_MAX: Final = 2**31 - 1
VIP_MAX: Final = 255
ACCOUNT_TYPE_MAX: Final = 127

TakerSide = Literal["buy", "sell"]


class Trade(msgspec.Struct, frozen=True, gc=False):
    """One trade settlement. Unknown fields are ignored (newer producers add fields)."""

    trade_id: Annotated[int, Meta(ge=1, le=TRADE_ID_MAX)]
    symbol_id: int
    ts: Annotated[int, Meta(ge=1)]
    """Trade time, microseconds since the Unix epoch."""
    price: Annotated[int, Meta(ge=1)]
    """Quote units per ``qty_unit`` base units."""
    qty: Annotated[int, Meta(ge=1, le=INT63_MAX)]
    qty_unit: Annotated[int, Meta(ge=1)]
    """Base units per one whole base coin."""
    base_asset_id: Annotated[int, Meta(ge=0, le=ASSET_ID_MAX)]
    quote_asset_id: Annotated[int, Meta(ge=0, le=ASSET_ID_MAX)]
    buyer_user_id: Annotated[int, Meta(ge=1, le=INT63_MAX)]
    seller_user_id: Annotated[int, Meta(ge=1, le=INT63_MAX)]
    taker_side: TakerSide
    buyer_vip: Annotated[int, Meta(ge=0, le=VIP_MAX)] = 0
    seller_vip: Annotated[int, Meta(ge=0, le=VIP_MAX)] = 0
    account_type: Annotated[int, Meta(ge=1, le=ACCOUNT_TYPE_MAX)] = 1

    @property
    def quote_amount(self) -> int:
        """``price * qty // qty_unit``, exact integer floor."""
        return self.price * self.qty // self.qty_unit


REQUIRED_FIELDS: Final = (
    "trade_id",
    "symbol_id",
    "ts",
    "price",
    "qty",
    "qty_unit",
    "base_asset_id",
    "quote_asset_id",
    "buyer_user_id",
    "seller_user_id",
    "taker_side",
)
OPTIONAL_INT_FIELDS: Final = ("buyer_vip", "seller_vip", "account_type")
INT_FIELDS: Final = (*(f for f in REQUIRED_FIELDS if f != "taker_side"), *OPTIONAL_INT_FIELDS)

# (field, lowest, highest or None) in the contract's table order; the slow path's
# out_of_range checks and its details. The Struct's Meta bounds above say the same.
_BOUNDS: Final[tuple[tuple[str, int, int | None], ...]] = (
    ("trade_id", 1, TRADE_ID_MAX),
    ("ts", 1, None),
    ("price", 1, None),
    ("qty", 1, INT63_MAX),
    ("qty_unit", 1, None),
    ("base_asset_id", 0, ASSET_ID_MAX),
    ("quote_asset_id", 0, ASSET_ID_MAX),
    ("buyer_user_id", 1, INT63_MAX),
    ("seller_user_id", 1, INT63_MAX),
    ("buyer_vip", 0, VIP_MAX),
    ("seller_vip", 0, VIP_MAX),
    ("account_type", 1, ACCOUNT_TYPE_MAX),
)

_DEFAULTS: Final = {"buyer_vip": 0, "seller_vip": 0, "account_type": 1}
_STRUCT_FIELDS: Final = (*REQUIRED_FIELDS, *OPTIONAL_INT_FIELDS)

_decoder: Final = msgspec.json.Decoder(Trade)

# int() refuses literals of more than 4300 digits (sys.get_int_max_str_digits); such a
# number is still a JSON integer, so convert it exactly through Decimal, which has no cap.
_LONG_DIGITS: Final = 4000


def _parse_int(text: str) -> int:
    if len(text) < _LONG_DIGITS:
        return int(text)
    return int(decimal.Decimal(text))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _strict_loads(raw: bytes) -> Any:
    """Parse RFC 8259 JSON from UTF-8 bytes: no NaN/Infinity, no BOM, no bad UTF-8."""
    return json.loads(raw.decode("utf-8"), parse_int=_parse_int, parse_constant=_reject_constant)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _show(value: object) -> str:
    """A short JSON rendering of a value for a detail text; never raises."""
    if isinstance(value, int) and not isinstance(value, bool):
        text = show_int(value)
    else:
        try:
            text = json.dumps(value, ensure_ascii=False)
        except (ValueError, RecursionError):  # huge integers or deep nesting inside
            text = f"<{_json_type(value)}>"
    return text if len(text) <= 40 else text[:37] + "..."


def _range_rejection(trade: Trade) -> Rejection | None:
    """The checks no Meta bound expresses: distinct assets, quote_amount bounds."""
    if trade.base_asset_id == trade.quote_asset_id:
        return Rejection(
            OUT_OF_RANGE,
            f"quote_asset_id: {show_int(trade.quote_asset_id)} equals base_asset_id",
        )
    quote_amount = trade.price * trade.qty // trade.qty_unit
    if quote_amount > INT63_MAX:
        return Rejection(
            OUT_OF_RANGE,
            f"quote_amount: price * qty // qty_unit = {show_int(quote_amount)} is above "
            f"{INT63_MAX}",
        )
    if quote_amount == 0:
        return Rejection(
            ZERO_QUOTE_AMOUNT,
            f"quote_amount: price {show_int(trade.price)} * qty {show_int(trade.qty)} // "
            f"qty_unit {show_int(trade.qty_unit)} is 0",
        )
    return None


def decode_trade(raw: bytes) -> Trade | Rejection:
    """Decode one message value into a :class:`Trade`, or say why it cannot be one."""
    try:
        trade = _decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
        return _classify(raw)
    # msgspec skips unknown fields without checking their UTF-8; the contract does not.
    if not raw.isascii():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Rejection(INVALID_JSON, f"not valid UTF-8 at byte {exc.start}")
    if trade.base_asset_id != trade.quote_asset_id and (
        0 < trade.price * trade.qty // trade.qty_unit <= INT63_MAX
    ):
        return trade
    return _range_rejection(trade) or trade


def _classify(raw: bytes) -> Trade | Rejection:
    """The slow path: the contract's checks in order, the first failure wins."""
    try:
        obj = _strict_loads(raw)
    except UnicodeDecodeError as exc:
        return Rejection(INVALID_JSON, f"not valid UTF-8 at byte {exc.start}")
    except (ValueError, RecursionError) as exc:
        return Rejection(INVALID_JSON, f"not valid JSON: {_first_line(exc)}")
    if not isinstance(obj, dict):
        return Rejection(INVALID_TYPE, f"message is a JSON {_json_type(obj)}, not an object")
    for field in REQUIRED_FIELDS:
        if field not in obj:
            return Rejection(MISSING_FIELD, f"{field}: required field is missing")
    for field in INT_FIELDS:
        if field in obj:
            value = obj[field]
            if type(value) is not int:
                return Rejection(
                    INVALID_TYPE,
                    f"{field}: expected an integer, got {_json_type(value)} {_show(value)}",
                )
    side = obj["taker_side"]
    if side != "buy" and side != "sell":
        return Rejection(INVALID_VALUE, f'taker_side: {_show(side)} is not "buy" or "sell"')
    for field, lowest, highest in _BOUNDS:
        value = obj[field] if field in obj else _DEFAULTS[field]
        if value < lowest:
            return Rejection(OUT_OF_RANGE, f"{field}: {_show(value)} is below {lowest}")
        if highest is not None and value > highest:
            return Rejection(OUT_OF_RANGE, f"{field}: {_show(value)} is above {highest}")
    # The checks above are the Struct's; __init__ validates nothing, which is what we want
    # for integers too large for msgspec (symbol_id has no bound).
    trade = Trade(**{k: obj[k] for k in _STRUCT_FIELDS if k in obj})
    rejection = _range_rejection(trade)
    return trade if rejection is None else rejection


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:120]
