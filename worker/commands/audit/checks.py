"""The ledger's invariants, checked per trade from TDengine's group aggregates.

TDengine's SUM over BIGINT wraps around silently on overflow, so every summed column
comes with its MIN and MAX: :func:`sum_may_wrap` tells when a group's SUM could have
left the BIGINT range; the reader then re-sums that group exactly from its rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, TypeVar

import msgspec

from worker.commands.audit.errors import AuditError
from worker.commands.audit.report import CHECKS, AssetTotal, Failure
from worker.core.events import EVENTS_PER_TRADE

__all__ = (
    "CHECKS",
    "FEE_COLUMNS",
    "GROUP_COLUMNS",
    "FeeGroup",
    "Group",
    "LedgerChecker",
    "decode_rows",
    "int_value",
    "sum_may_wrap",
)


class Group(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """Aggregates of one (trade, credit asset) group: one row of the grouped query.

    Decoded with msgspec in C: every value must be an integer (``bool`` is refused), or
    NULL where a group may have no debit. ``credits``, ``debits`` and ``fees`` are
    exact: the reader replaces them whenever :func:`sum_may_wrap` says TDengine's
    64-bit SUM could have wrapped (the ``*_min``/``*_max`` bounds decide).
    """

    trade_id: int
    asset: int
    rows: int
    min_event: int
    max_event: int
    credits: int
    debit_rows: int
    min_debit_asset: int | None
    max_debit_asset: int | None
    debits: int | None
    fees: int
    min_fee_asset: int
    max_fee_asset: int
    min_credit: int
    max_credit: int
    min_debit: int | None
    max_debit: int | None
    min_fee: int
    max_fee: int

    def sums_may_wrap(self) -> bool:
        """Whether any of the group's three SUMs could have wrapped."""
        n = self.rows
        return (
            sum_may_wrap(n, self.min_credit, self.max_credit)
            or sum_may_wrap(n, self.min_fee, self.max_fee)
            or sum_may_wrap(n, self.min_debit, self.max_debit)
        )


class FeeGroup(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """Aggregates of the FeeReceived rows of one (trade, credit asset) group."""

    trade_id: int
    asset: int
    rows: int
    credits: int
    fees: int
    min_credit: int
    max_credit: int
    min_fee: int
    max_fee: int

    def sums_may_wrap(self) -> bool:
        """Whether either SUM could have wrapped."""
        n = self.rows
        return sum_may_wrap(n, self.min_credit, self.max_credit) or sum_may_wrap(
            n, self.min_fee, self.max_fee
        )


GROUP_COLUMNS: Final = (
    "trade_id, credit_asset, COUNT(*), MIN(event_id), MAX(event_id), SUM(credit_amt), "
    "COUNT(debit_amt), MIN(debit_asset), MAX(debit_asset), SUM(debit_amt), SUM(fee), "
    "MIN(fee_asset), MAX(fee_asset), MIN(credit_amt), MAX(credit_amt), MIN(debit_amt), "
    "MAX(debit_amt), MIN(fee), MAX(fee)"
)
FEE_COLUMNS: Final = (
    "trade_id, credit_asset, COUNT(*), SUM(credit_amt), SUM(fee), MIN(credit_amt), "
    "MAX(credit_amt), MIN(fee), MAX(fee)"
)
_NO_FEE: Final = FeeGroup(0, 0, 0, 0, 0, 0, 0, 0, 0)
_INT64_MAX: Final = (1 << 63) - 1
_INT64_MIN: Final = -(1 << 63)


def sum_may_wrap(count: int, low: int | None, high: int | None) -> bool:
    """Whether a SUM of ``count`` values in ``[low, high]`` could leave the BIGINT range.

    TDengine sums BIGINT in a 64-bit accumulator that wraps silently (two rows of
    2**63-1 sum to -2). ``None`` bounds (no non-NULL value) cannot wrap.
    """
    if low is None or high is None:
        return False
    return count * high > _INT64_MAX or count * low < _INT64_MIN


def int_value(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise AuditError(f"TDengine returned {value!r} for {what}, not an integer")
    return value


_T = TypeVar("_T")


def decode_rows(rows: list[Sequence[Any]], kind: type[_T], what: str) -> list[_T]:
    """Result rows as ``kind`` (array-like structs), every value type-checked."""
    try:
        return msgspec.convert(rows, list[kind])  # type: ignore[valid-type]
    except msgspec.ValidationError as exc:
        raise AuditError(f"unexpected {what} result from TDengine: {exc}") from None


class LedgerChecker:
    """Checks trades from their group aggregates and keeps the failures and totals.

    Feed it one window at a time with :meth:`check_window`; memory holds one window's
    groups plus at most ``max_failures`` listed failures (all are counted).
    """

    def __init__(self, *, max_failures: int = 1000) -> None:
        self.max_failures = max_failures
        self.failures: list[Failure] = []
        self.failure_counts: dict[str, int] = dict.fromkeys(CHECKS, 0)
        self.trades = 0
        self.rows = 0
        self._fee_rows: dict[int, int] = {}
        self._fee_revenue: dict[int, int] = {}

    @property
    def failed(self) -> bool:
        return any(self.failure_counts.values())

    def fail(self, check: str, trade_id: int, message: str, asset: int | None = None) -> None:
        """Record one failure (listed while fewer than ``max_failures`` are)."""
        self.failure_counts[check] += 1
        if len(self.failures) < self.max_failures:
            self.failures.append(Failure(check, trade_id, message, asset))

    def totals(self) -> list[AssetTotal]:
        """Fee revenue per asset, by asset id."""
        return [
            AssetTotal(asset, self._fee_rows[asset], self._fee_revenue[asset])
            for asset in sorted(self._fee_rows)
        ]

    def check_window(self, groups: Sequence[Group], fee_groups: Sequence[FeeGroup]) -> list[int]:
        """Check every trade of one window; returns the trade ids seen, ascending."""
        by_trade: dict[int, list[Group]] = {}
        for group in groups:
            found = by_trade.get(group.trade_id)
            if found is None:
                by_trade[group.trade_id] = [group]
            else:
                found.append(group)
        fees: dict[tuple[int, int], FeeGroup] = {}
        fee_rows, fee_revenue = self._fee_rows, self._fee_revenue
        for fee in fee_groups:
            fees[(fee.trade_id, fee.asset)] = fee
            fee_rows[fee.asset] = fee_rows.get(fee.asset, 0) + fee.rows
            fee_revenue[fee.asset] = fee_revenue.get(fee.asset, 0) + fee.credits
        trade_ids = sorted(by_trade)
        rows = 0
        for trade_id in trade_ids:
            trade_groups = by_trade[trade_id]
            if len(trade_groups) == 2:
                a, b = trade_groups
                if a.min_event > b.min_event:
                    a, b = b, a
                rows += a.rows + b.rows
                if self._correct(trade_id, a, b, fees):
                    continue
            else:
                rows += sum(g.rows for g in trade_groups)
            # Something is wrong: find out what, with messages.
            if self._complete(trade_id, trade_groups):
                self._conserved(trade_id, trade_groups)
                self._fees_consistent(trade_id, trade_groups, fees)
        self.trades += len(trade_ids)
        self.rows += rows
        return trade_ids

    @staticmethod
    def _correct(
        trade_id: int, base: Group, quote: Group, fees: dict[tuple[int, int], FeeGroup]
    ) -> bool:
        """Every invariant of a trade at once, for the common case (no messages built)."""
        first = trade_id * EVENTS_PER_TRADE
        if not (
            base.rows == 2 and quote.rows == 2
            and base.min_event == first and base.max_event == first + 2
            and quote.min_event == first + 1 and quote.max_event == first + 3
            and base.debit_rows == 1 and quote.debit_rows == 1
            and base.min_debit_asset == base.max_debit_asset == quote.asset
            and quote.min_debit_asset == quote.max_debit_asset == base.asset
            and base.credits == quote.debits and quote.credits == base.debits
            and base.min_fee_asset == base.max_fee_asset == base.asset
            and quote.min_fee_asset == quote.max_fee_asset == quote.asset
        ):  # fmt: skip
            return False
        base_fee = fees.get((trade_id, base.asset), _NO_FEE)
        quote_fee = fees.get((trade_id, quote.asset), _NO_FEE)
        return (
            base_fee.rows == 1 and quote_fee.rows == 1 and base_fee.fees == 0
            and quote_fee.fees == 0 and base_fee.credits == base.fees
            and quote_fee.credits == quote.fees
        )  # fmt: skip

    def _complete(self, trade_id: int, groups: list[Group]) -> bool:
        first = trade_id * EVENTS_PER_TRADE
        shapes = sorted((g.rows, g.min_event, g.max_event) for g in groups)
        if shapes == [(2, first, first + 2), (2, first + 1, first + 3)]:
            return True
        rows = sum(g.rows for g in groups)
        detail = "; ".join(
            f"credit asset {g.asset}: {g.rows} row(s), event ids {g.min_event}..{g.max_event}"
            for g in sorted(groups, key=lambda g: g.min_event)
        )
        what = (
            f"{rows} of {EVENTS_PER_TRADE} rows" if rows < EVENTS_PER_TRADE
            else f"{rows} rows, expected {EVENTS_PER_TRADE}" if rows > EVENTS_PER_TRADE
            else f"{rows} rows with the wrong event ids"
        )  # fmt: skip
        self.fail(
            "completeness", trade_id,
            f"trade {trade_id}: {what} (expected event ids {first}..{first + 3}: "
            f"{first} and {first + 2} crediting the base asset, {first + 1} and {first + 3} "
            f"the quote asset); found {detail}",
        )  # fmt: skip
        return False

    def _conserved(self, trade_id: int, groups: list[Group]) -> None:
        credits: dict[int, int] = {}
        debits: dict[int, int] = {}
        for g in groups:
            credits[g.asset] = credits.get(g.asset, 0) + g.credits
            if g.debit_rows != 1 or g.min_debit_asset != g.max_debit_asset:
                self.fail(
                    "conservation", trade_id,
                    f"trade {trade_id}: the rows crediting asset {g.asset} carry "
                    f"{g.debit_rows} debit(s) in assets {g.min_debit_asset}..{g.max_debit_asset}"
                    "; expected exactly one debit (the other side's settlement)", g.asset,
                )  # fmt: skip
                return
            assert g.min_debit_asset is not None
            debits[g.min_debit_asset] = debits.get(g.min_debit_asset, 0) + (g.debits or 0)
        for asset in sorted(credits.keys() | debits.keys()):
            credit, debit = credits.get(asset, 0), debits.get(asset, 0)
            if credit != debit:
                self.fail(
                    "conservation", trade_id,
                    f"trade {trade_id}: asset {asset} is not conserved: credits {credit} != "
                    f"debits {debit} (difference {credit - debit})", asset,
                )  # fmt: skip

    def _fees_consistent(
        self, trade_id: int, groups: list[Group], fees: dict[tuple[int, int], FeeGroup]
    ) -> None:
        first = trade_id * EVENTS_PER_TRADE
        for g in sorted(groups, key=lambda g: g.min_event):
            k = g.min_event - first  # 0: base side (k=0 with k=2), 1: quote side (k=1, k=3)
            settled, received = first + k, first + k + 2
            fee = fees.get((trade_id, g.asset), _NO_FEE)
            if fee.rows != 1:
                self.fail(
                    "fee_consistency", trade_id,
                    f"trade {trade_id}: {fee.rows} FeeReceived row(s) credit asset {g.asset}; "
                    f"expected one (event {received})", g.asset,
                )  # fmt: skip
                continue
            if g.min_fee_asset != g.asset or g.max_fee_asset != g.asset:
                self.fail(
                    "fee_consistency", trade_id,
                    f"trade {trade_id}: fees of the rows crediting asset {g.asset} are in asset "
                    f"{g.min_fee_asset}..{g.max_fee_asset}; a fee is taken from what a side "
                    "receives", g.asset,
                )  # fmt: skip
                continue
            if fee.fees:
                self.fail(
                    "fee_consistency", trade_id,
                    f"trade {trade_id}: FeeReceived row {received} carries a fee of {fee.fees}; "
                    "expected 0", g.asset,
                )  # fmt: skip
                continue
            charged = g.fees - fee.fees
            if fee.credits != charged:
                self.fail(
                    "fee_consistency", trade_id,
                    f"trade {trade_id}: FeeReceived row {received} credits {fee.credits} of asset "
                    f"{g.asset} but TradeSettled row {settled} charged a fee of {charged}",
                    g.asset,
                )  # fmt: skip
