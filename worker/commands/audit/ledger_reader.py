"""Reads the ledger from TDengine in bounded windows; SQL from validated integers only."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

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

__all__ = ("LedgerReader", "Query", "Selection")

Query = Callable[[str], list[Sequence[Any]]]
_INT64_MAX: Final = (1 << 63) - 1
_IN_LIST: Final = 1000
"""Trade ids per ``IN (...)`` list when auditing one user's trades."""
_BY_TRADE_ASSET: Final = "GROUP BY trade_id, credit_asset"


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
        return decode_rows(self._query(sql), Group, "grouped")

    def fee_groups(self, a: int, b: int, selection: Selection, extra: str) -> list[FeeGroup]:
        where = self._where(a, b, selection, f"{extra} AND event_type = {EVENT_TYPE_FEE_RECEIVED}")
        sql = f"SELECT {FEE_COLUMNS} FROM {self._table} WHERE {where} {_BY_TRADE_ASSET}"
        return decode_rows(self._query(sql), FeeGroup, "FeeReceived")
