"""Fee arithmetic: floor, minimum fee of 1, 100 % rates, VIP discounts."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from worker.core.fees import RATE_PRECISION, discounted_rate, fee_for


@pytest.mark.parametrize(
    ("amount", "rate", "fee"),
    [
        (1_000_000, 1000, 1000),
        (999, 1000, 1),  # 0.999 rounds to 0 -> minimum fee 1
        (1, 1, 1),
        (1, 0, 0),  # zero rate: no fee
        (0, 1000, 0),  # zero amount: no fee
        (1_500_000, 1000, 1500),
        (1_999_999, 1, 1),
        (2_000_000, 1, 2),
        (12345, RATE_PRECISION, 12345),  # 100 % takes everything
        (2**63 - 1, RATE_PRECISION, 2**63 - 1),
    ],
)
def test_fee_for(amount: int, rate: int, fee: int) -> None:
    assert fee_for(amount, rate) == fee


@pytest.mark.parametrize(
    ("base", "percent", "rate"),
    [(2000, 100, 2000), (2000, 90, 1800), (2000, 50, 1000), (2000, 0, 0), (999, 50, 499),
     (1, 99, 0), (RATE_PRECISION, 100, RATE_PRECISION)],
)  # fmt: skip
def test_discounted_rate_floors(base: int, percent: int, rate: int) -> None:
    assert discounted_rate(base, percent) == rate


@given(st.integers(0, 2**63 - 1), st.integers(0, RATE_PRECISION))
def test_fee_is_bounded_by_amount(amount: int, rate: int) -> None:
    fee = fee_for(amount, rate)
    assert 0 <= fee <= amount
    if amount > 0 and rate > 0:
        assert fee >= 1
    else:
        assert fee == 0
