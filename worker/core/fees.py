"""Exact integer fee arithmetic (rates in millionths)."""

from __future__ import annotations

from typing import Final

__all__ = ("RATE_PRECISION", "discounted_rate", "fee_for")

RATE_PRECISION: Final = 1_000_000
"""Rates are in millionths: 1000 = 0.10 %, 1,000,000 = 100 %."""


def discounted_rate(base_rate: int, discount_percent: int) -> int:
    """The rate charged: ``base_rate * discount_percent // 100``."""
    return base_rate * discount_percent // 100


def fee_for(amount: int, rate: int) -> int:
    """``amount * rate // 1,000,000``, but at least 1 when amount and rate are positive."""
    fee = amount * rate // RATE_PRECISION
    if fee == 0 and amount > 0 and rate > 0:
        return 1
    return fee
