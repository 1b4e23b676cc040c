"""Shared sample trades and schedules for the core's unit tests."""

from __future__ import annotations

import json
from typing import Any, Final

from worker.core.fee_schedule import FeeSchedule, parse_fee_schedule

SCHEDULE_TOML: Final = """
[[versions]]
effective_from = 2025-01-01T00:00:00Z
vip_discount_percent = { "0" = 100, "1" = 90, "5" = 50 }
[[versions.symbols]]
symbol_id = 1
maker_fee = 1000
taker_fee = 2000
[[versions.symbols]]
symbol_id = 2
maker_fee = 0
taker_fee = 1000000

[[versions]]
effective_from = 2025-06-15T00:00:00Z
vip_discount_percent = { "0" = 100, "1" = 80 }
[[versions.symbols]]
symbol_id = 1
maker_fee = 500
taker_fee = 1500
"""

V1_US: Final = 1_735_689_600_000_000
"""2025-01-01T00:00:00Z in microseconds."""
V2_US: Final = 1_749_945_600_000_000
"""2025-06-15T00:00:00Z in microseconds."""


def schedule() -> FeeSchedule:
    return parse_fee_schedule(SCHEDULE_TOML)


def trade(**overrides: Any) -> dict[str, Any]:
    """A valid trade as a dict; overrides replace or (with value ...) remove fields."""
    base: dict[str, Any] = {
        "trade_id": 42,
        "symbol_id": 1,
        "ts": V1_US + 1,
        "price": 6_500_000_000_000,
        "qty": 25_000_000,
        "qty_unit": 100_000_000,
        "base_asset_id": 1,
        "quote_asset_id": 2,
        "buyer_user_id": 1001,
        "seller_user_id": 1002,
        "taker_side": "buy",
    }
    for key, value in overrides.items():
        if value is ...:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def line(**overrides: Any) -> bytes:
    return json.dumps(trade(**overrides)).encode()
