"""What a ledger row may hold, as msgspec types: both write paths check events with them.

:class:`Tags` and :class:`Values` are a row's tags and columns in schema order, each
field bounded by its TDengine type; :class:`EventRow` is both. Converting events to
them checks every value in C (``bool`` is not an ``int`` here, nor an ``int`` a
``bool``). :func:`trade_event_columns` checks a batch of the engine's TradeRows on
their own values instead, and gives the events as columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Final

import msgspec

from worker.core.event_columns import (
    COMPUTED,
    COPIED,
    TradeEvents,
    event_columns,
    trade_columns,
)
from worker.core.events import TradeRows

__all__ = ("INT64_MAX", "EventRow", "Tags", "Values", "field_bounds", "trade_event_columns")

_INT64_MIN: Final = -(1 << 63)
INT64_MAX: Final = (1 << 63) - 1
_INT32_MIN: Final = -(1 << 31)
_INT32_MAX: Final = (1 << 31) - 1

_BigInt = Annotated[int, msgspec.Meta(ge=_INT64_MIN, le=INT64_MAX)]
_Int = Annotated[int, msgspec.Meta(ge=_INT32_MIN, le=_INT32_MAX)]
_TinyInt = Annotated[int, msgspec.Meta(ge=-128, le=127)]


class Tags(msgspec.Struct, array_like=True, gc=False):
    """The tags of an event, validated.

    Subtable names are built from the tags, so they are restricted further than their
    columns' types: a user id is never negative, and an account type is in 0..127.
    """

    user_id: Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
    account_type: Annotated[int, msgspec.Meta(ge=0, le=127)]


class Values(msgspec.Struct, array_like=True, gc=False):
    """The columns of an event in schema order, validated.

    Its JSON form is exactly a VALUES tuple once brackets become parentheses and
    ``null`` becomes ``NULL``.
    """

    ts: _BigInt
    event_id: _BigInt
    event_type: _TinyInt
    trade_id: _BigInt
    debit_asset: _Int | None
    debit_amt: _BigInt | None
    credit_asset: _Int
    credit_amt: _BigInt
    fee: _BigInt
    fee_asset: _Int
    is_maker: bool
    from_user: _BigInt | None


EventRow: Final = msgspec.defstruct(
    "EventRow",
    [(f.name, f.type) for part in (Tags, Values) for f in msgspec.structs.fields(part)],
    array_like=True,
    gc=False,
    module=__name__,
)
"""A validated event in rendering order: the tags, then the columns (the fields and
checks of :class:`Tags` and :class:`Values`, so the three cannot drift apart).

msgspec checks types and ranges in C when events are converted to this type;
``bool`` is not accepted for ``int`` fields, nor ``int`` for ``is_maker``.
"""


# -- a batch of TradeRows, checked on the trades' own values -----------------------------

_ROW_TYPE: Final = msgspec.inspect.type_info(EventRow)
assert isinstance(_ROW_TYPE, msgspec.inspect.StructType)
_FIELD_TYPES: Final = {f.name: f.type for f in _ROW_TYPE.fields}

# Bounds on trade values that keep the computed event values in range: an event id
# ``trade_id * 4 + k`` (k = 0..3) is a BIGINT when trade_id is in these bounds, and
# ``amount - fee`` is one when both are BIGINTs >= 0 (TradeRows from trade_rows() always
# are). A value outside them only leaves the fast path: the events' check then decides.
assert COMPUTED == ("event_id", "credit_amt"), "the bounds below cover these two"
_KEEP_COMPUTED_IN_RANGE: Final[dict[str, tuple[int, int]]] = {
    "trade_id": (_INT64_MIN // 4, (INT64_MAX - 3) // 4),
    **dict.fromkeys(("qty", "quote_amount", "buyer_fee", "seller_fee"), (0, INT64_MAX)),
}


def field_bounds(name: str) -> tuple[tuple[int, int] | None, bool]:
    """The inclusive bounds of an :class:`EventRow` field's value (``None`` for a bool)
    and whether the field may be null."""
    kind = _FIELD_TYPES[name]
    nullable = isinstance(kind, msgspec.inspect.UnionType)  # int | None
    if isinstance(kind, msgspec.inspect.UnionType):
        (kind,) = (t for t in kind.types if not isinstance(t, msgspec.inspect.NoneType))
    if isinstance(kind, msgspec.inspect.BoolType):
        return None, nullable
    assert isinstance(kind, msgspec.inspect.IntType), kind
    assert kind.ge is not None and kind.le is not None, kind
    return (kind.ge, kind.le), nullable


def _trade_value_type(name: str) -> Any:
    """The type a trade value must have to be accepted in every event field it is
    copied to (and to keep the computed values in range)."""
    reached = [field_bounds(field)[0] for field in COPIED[name]]
    if all(bounds is None for bounds in reached):
        return bool
    low, high = _KEEP_COMPUTED_IN_RANGE.get(name, (_INT64_MIN, INT64_MAX))
    for bounds in reached:
        assert bounds is not None, name
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return Annotated[int, msgspec.Meta(ge=low, le=high)]


_CheckedTrade: Final = msgspec.defstruct(
    "_CheckedTrade",
    [(name, _trade_value_type(name)) for name in TradeRows.__struct_fields__],
    gc=False,
    module=__name__,
)
"""TradeRows' values, each bounded by every event field it reaches."""
_CHECKED_TRADES: Final = list[_CheckedTrade]  # type: ignore[valid-type]


def trade_event_columns(events: Sequence[object]) -> dict[str, list[Any]] | None:
    """``events`` as one list per BalanceEvent field (in that order, a value per event),
    checked, when they are a :class:`~worker.core.event_columns.TradeEvents` and every
    trade value is of its type and in range where it is copied to (so the computed ones
    are too); else ``None``: convert the events to :class:`EventRow` instead, which
    says what is wrong. The contract's constants (event types, user 0, fee 0, null)
    are always accepted; ``tests/unit/test_tdengine_row_checks.py`` checks that this
    accepts and refuses what the conversion does."""
    if events.__class__ is not TradeEvents or not events:
        return None
    try:
        # One C pass per trade, which also lays the values out together in memory.
        checked = msgspec.convert(
            events.trades,
            _CHECKED_TRADES,
            from_attributes=True,
        )
    except msgspec.ValidationError:
        return None
    return event_columns(trade_columns(checked))
