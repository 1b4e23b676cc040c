"""Why a message cannot become ledger rows: one reason, one short detail."""

from __future__ import annotations

from typing import Final, Literal

import msgspec

__all__ = (
    "INVALID_JSON",
    "INVALID_TYPE",
    "INVALID_VALUE",
    "MISSING_FIELD",
    "NO_FEE_SCHEDULE",
    "OUT_OF_RANGE",
    "REASONS",
    "UNKNOWN_SYMBOL",
    "UNKNOWN_VIP_LEVEL",
    "ZERO_QUOTE_AMOUNT",
    "Reason",
    "Rejection",
    "show_int",
)

Reason = Literal[
    "invalid_json",
    "invalid_type",
    "missing_field",
    "invalid_value",
    "out_of_range",
    "zero_quote_amount",
    "no_fee_schedule",
    "unknown_symbol",
    "unknown_vip_level",
]

INVALID_JSON: Final = "invalid_json"
INVALID_TYPE: Final = "invalid_type"
MISSING_FIELD: Final = "missing_field"
INVALID_VALUE: Final = "invalid_value"
OUT_OF_RANGE: Final = "out_of_range"
ZERO_QUOTE_AMOUNT: Final = "zero_quote_amount"
NO_FEE_SCHEDULE: Final = "no_fee_schedule"
UNKNOWN_SYMBOL: Final = "unknown_symbol"
UNKNOWN_VIP_LEVEL: Final = "unknown_vip_level"

REASONS: Final[tuple[Reason, ...]] = (
    INVALID_JSON,
    INVALID_TYPE,
    MISSING_FIELD,
    INVALID_VALUE,
    OUT_OF_RANGE,
    ZERO_QUOTE_AMOUNT,
    NO_FEE_SCHEDULE,
    UNKNOWN_SYMBOL,
    UNKNOWN_VIP_LEVEL,
)
"""Every reason a message can be rejected for (the worker also uses ``sink_rejected``)."""


class Rejection(msgspec.Struct, frozen=True, gc=False):
    """A message that cannot be turned into rows, with exactly one reason."""

    reason: Reason
    detail: str


def show_int(value: int) -> str:
    """An integer for a detail text; beyond Python's 4300-digit str() limit, a summary."""
    try:
        return str(value)
    except ValueError:
        digits = int(value.bit_length() * 0.30103) + 1
        return f"{'-' if value < 0 else ''}<integer of {digits} digits>"
