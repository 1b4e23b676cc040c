"""Reads the ledger from TDengine in bounded windows; SQL from validated integers only.

Sums are exact: a group whose SUM could have wrapped in TDengine's 64-bit accumulator
(see :func:`~worker.commands.audit.checks.sum_may_wrap`) is summed again in Python from
its rows, which the window bounds; if those rows no longer match the aggregate, the
audit stops with :class:`AuditError` naming the window and the asset.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

import msgspec

from worker.commands.audit.checks import (
    FEE_COLUMNS,
    GROUP_COLUMNS,
    FeeGroup,
    Group,
    decode_rows,
    int_value,
)
from worker.commands.audit.errors import AuditError
from worker.core.events import EVENT_TYPE_FEE_RECEIVED
from worker.tdengine.sql import STABLE_NAME, quote_identifier

__all__ = ("LedgerReader", "Query", "Selection", "format_us")

logger = logging.getLogger(__name__)

Query = Callable[[str], list[Sequence[Any]]]
_INT64_MAX: Final = (1 << 63) - 1
_IN_LIST: Final = 1000
"""Trade ids per ``IN (...)`` list when auditing one user's trades."""
_BY_TRADE_ASSET: Final = "GROUP BY trade_id, credit_asset"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_G = TypeVar("_G", Group, FeeGroup)


def format_us(ts: int) -> str:
    """A microsecond timestamp as ISO 8601 UTC (``2025-06-01T00:00:00.000000Z``)."""
    try:
        return (_EPOCH + timedelta(microseconds=ts)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    except OverflowError:
        return f"{ts} us"


@dataclass(frozen=True, slots=True)
class Selection:
    """Which rows to audit: a ts range in microseconds and optional filters."""

    from_us: int
    to_us: int
    user_id: int | None = None
    account_type: int | None = None

    def __post_init__(self) -> None:
        for name in ("from_us", "to_us", "user_id", "account_type"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or not 0 <= value <= _INT64_MAX):
                raise AuditError(f"{name} must be an integer in 0..2**63-1, got {value!r}")
        if self.from_us >= self.to_us:
            raise AuditError("--from must be before --to")


class LedgerReader:
    """Builds the audit's SQL (validated integers only) and runs it through ``query``."""

    def __init__(self, query: Query, database: str, *, window_rows: int) -> None:
        self._query = query
        self._table = f"{quote_identifier(database)}.`{STABLE_NAME}`"
        self._window_rows = window_rows
        self.windows = 0
        self.resummed = 0
        """Groups whose sums were recomputed from their rows (a SUM could have wrapped)."""

    @staticmethod
    def _where(a: int, b: int, selection: Selection, extra: str = "") -> str:
        where = f"ts >= {int(a)} AND ts < {int(b)}"
        if selection.account_type is not None:
            where += f" AND account_type = {int(selection.account_type)}"
        return where + extra

    def count(self, a: int, b: int, selection: Selection) -> int:
        rows = self._query(
            f"SELECT COUNT(*) FROM {self._table} WHERE {self._where(a, b, selection)}"
        )
        return int_value(rows[0][0], "COUNT(*)") if rows else 0

    def windows_of(self, selection: Selection) -> Iterator[tuple[int, int]]:
        """Windows [a, b) in time order, each with rows and at most ``window_rows`` of them
        (a single microsecond can hold more; it is never split)."""
        stack = [(selection.from_us, selection.to_us)]
        while stack:
            a, b = stack.pop()
            n = self.count(a, b, selection)
            if n == 0:
                continue
            if n > self._window_rows and b - a > 1:
                mid = a + (b - a) // 2
                stack.append((mid, b))
                stack.append((a, mid))
                continue
            self.windows += 1
            yield a, b

    def trade_filters(self, a: int, b: int, selection: Selection) -> Iterator[str]:
        """Extra WHERE terms per query round: none, or ``trade_id IN (...)`` for one user."""
        if selection.user_id is None:
            yield ""
            return
        where = self._where(a, b, selection, f" AND user_id = {int(selection.user_id)}")
        rows = self._query(f"SELECT trade_id FROM {self._table} WHERE {where} GROUP BY trade_id")
        ids = sorted(int_value(r[0], "trade_id") for r in rows)
        for i in range(0, len(ids), _IN_LIST):
            yield " AND trade_id IN (" + ",".join(str(int(t)) for t in ids[i : i + _IN_LIST]) + ")"

    def groups(self, a: int, b: int, selection: Selection, extra: str) -> list[Group]:
        where = self._where(a, b, selection, extra)
        sql = f"SELECT {GROUP_COLUMNS} FROM {self._table} WHERE {where} {_BY_TRADE_ASSET}"
        return self._exact(decode_rows(self._query(sql), Group, "grouped"), a, b, where)

    def fee_groups(self, a: int, b: int, selection: Selection, extra: str) -> list[FeeGroup]:
        where = self._where(a, b, selection, f"{extra} AND event_type = {EVENT_TYPE_FEE_RECEIVED}")
        sql = f"SELECT {FEE_COLUMNS} FROM {self._table} WHERE {where} {_BY_TRADE_ASSET}"
        return self._exact(decode_rows(self._query(sql), FeeGroup, "FeeReceived"), a, b, where)

    def _exact(self, groups: list[_G], a: int, b: int, where: str) -> list[_G]:
        """``groups`` with every SUM that could have wrapped re-summed from its rows."""
        for i, group in enumerate(groups):
            if group.sums_may_wrap():
                groups[i] = self._resum(group, a, b, where)
        return groups

    def _resum(self, group: _G, a: int, b: int, where: str) -> _G:
        trade_id, asset = int(group.trade_id), int(group.asset)
        self.resummed += 1
        logger.info(
            "a sum could exceed BIGINT (TDengine wraps it): summing the rows in Python "
            "trade=%d asset=%d rows=%d",
            trade_id,
            asset,
            group.rows,
        )
        rows = self._query(
            f"SELECT credit_amt, debit_amt, fee FROM {self._table} WHERE {where} "
            f"AND trade_id = {trade_id} AND credit_asset = {asset}"
        )
        what = (
            f"window {format_us(a)} .. {format_us(b)} (ts {a}..{b}), asset {asset}, "
            f"trade {trade_id}"
        )
        if len(rows) != group.rows:
            raise AuditError(
                f"{what}: a sum could exceed BIGINT, where TDengine's SUM wraps silently, "
                f"and re-reading the group's rows found {len(rows)} rows where the "
                f"aggregate counted {group.rows} (the ledger changed during the audit?): "
                "cannot compute an exact total"
            )
        credits = fees = 0
        debits: int | None = None
        for row in rows:
            credits += int_value(row[0], f"credit_amt ({what})")
            fees += int_value(row[2], f"fee ({what})")
            if row[1] is not None:
                debits = (debits or 0) + int_value(row[1], f"debit_amt ({what})")
        if isinstance(group, Group):
            return msgspec.structs.replace(group, credits=credits, debits=debits, fees=fees)
        return msgspec.structs.replace(group, credits=credits, fees=fees)
