"""Balance events as validated, sorted columns: the pure half of the stmt2 write path.

No I/O and no driver here. :func:`columns_of` validates a batch of BalanceEvents with
the SQL path's own check (one msgspec conversion of the whole batch, in C; for the
engine's TradeRows, :func:`~worker.tdengine.row_checks.trade_event_columns` on the
trades' values), turns it into one list per field, orders the rows as
:mod:`worker.tdengine.sql` does (by subtable, then ``ts``, then ``event_id``, equal rows
keeping their input order) and marks where each subtable's rows begin.

The values accepted are exactly those :func:`worker.tdengine.sql.check_events`
accepts, so a batch either path refuses, the other refuses too: an ``int`` (or an int
subclass, never ``bool``; the columns hold plain ints) in range of its column type,
``None`` only where the column is nullable, a ``bool`` for ``is_maker``. A refusal
raises :class:`~worker.tdengine.errors.RowValueError` naming the field, the row and
the value.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from operator import attrgetter, itemgetter
from typing import Any, Final

import msgspec

from worker.core.event_columns import TradeEvents
from worker.tdengine.errors import RowValueError
from worker.tdengine.row_checks import EventRow, field_bounds, trade_event_columns
from worker.tdengine.row_order import identity_order, run_starts, subtable_keys, tags_of
from worker.tdengine.sql import COLUMNS, TAGS, RowKey

__all__ = (
    "FIELDS",
    "ColumnBatch",
    "FieldRule",
    "check_rows",
    "columns_of",
)


class FieldRule:
    """What one field of a BalanceEvent may hold.

    Attributes
    ----------
    name:
        The field (and column or tag) name.
    sql_type:
        The TDengine type, for messages (``BIGINT``, ``TINYINT``, ``INT``, ``BOOL``).
    low, high:
        The inclusive range of an integer field (``None`` for ``BOOL``).
    nullable:
        ``None`` is allowed (the column is written as NULL).
    """

    __slots__ = ("get", "high", "low", "name", "nullable", "sql_type")

    def __init__(
        self, name: str, sql_type: str, bounds: tuple[int, int] | None, *, nullable: bool = False
    ) -> None:
        self.name = name
        self.sql_type = sql_type
        self.low: int | None = bounds[0] if bounds is not None else None
        self.high: int | None = bounds[1] if bounds is not None else None
        self.nullable = nullable
        self.get = attrgetter(name)

    def problem(self, value: object) -> str | None:
        """Why ``value`` is refused, or ``None`` when it is accepted (the slow, exact check)."""
        if value is None:
            return None if self.nullable else f"is null, but {self.sql_type} NOT NULL here"
        if self.low is None:
            return None if type(value) is bool else f"must be a bool, got {type(value).__name__}"
        if not isinstance(value, int) or isinstance(value, bool):
            return f"must be an int, got {type(value).__name__}"
        assert self.high is not None
        if not self.low <= value <= self.high:
            return f"is out of range for {self.sql_type} ({self.low}..{self.high})"
        return None


_SQL_TYPES: Final = dict((*TAGS, *COLUMNS))


def _rule(name: str) -> FieldRule:
    """The rule of an :class:`EventRow` field: the bounds the SQL path checks it with."""
    bounds, nullable = field_bounds(name)
    return FieldRule(name, _SQL_TYPES[name], bounds, nullable=nullable)


FIELDS: Final[tuple[FieldRule, ...]] = tuple(map(_rule, EventRow.__struct_fields__))
"""Every field in binding order: the two tags, then the columns in schema order."""

assert tuple(rule.name for rule in FIELDS) == (*(n for n, _ in TAGS), *(n for n, _ in COLUMNS))

_ROWS: Final = list[EventRow]  # type: ignore[valid-type]


class ColumnBatch:
    """A validated batch as columns, rows sorted by (subtable, ts, event_id).

    Attributes
    ----------
    subtables:
        Each row's subtable as one int, ``user_id << 7 | account_type`` (the tags:
        account types are 0..127); non-decreasing.
    data:
        The 12 data columns in schema order, each a sequence with one value per row.
    starts:
        Index of the first row of every subtable run, then ``len(rows)``; so run ``i``
        is ``starts[i]:starts[i + 1]`` and all its rows have the same tags.
    """

    __slots__ = ("data", "starts", "subtables")

    def __init__(
        self, subtables: Sequence[int], data: tuple[Sequence[Any], ...], starts: list[int]
    ) -> None:
        self.subtables = subtables
        self.data = data
        self.starts = starts

    def __len__(self) -> int:
        return len(self.subtables)

    def tags_at(self, rows: Iterable[int]) -> tuple[list[int], list[int]]:
        """(user ids, account types) of the given rows: plain ints, in range."""
        return tags_of(list(map(self.subtables.__getitem__, rows)))

    def row_keys(self, start: int, end: int) -> list[RowKey]:
        """Identities (user_id, account_type, ts, event_id) of rows ``start:end``."""
        users, accounts = self.tags_at(range(start, end))
        ts, event_id = self.data[0], self.data[1]
        return list(zip(users, accounts, ts[start:end], event_id[start:end], strict=True))


def check_rows(events: Sequence[object]) -> None:
    """The exact check, row by row in input order; raise for the first refused value.

    The slow path: :func:`columns_of` calls it only when a column check failed, so the
    message can name the row as the caller sent it.
    """
    for index, event in enumerate(events):
        for rule in FIELDS:
            if not hasattr(event, rule.name):
                raise RowValueError(
                    f"invalid balance event value: `{rule.name}` is missing - at row {index}"
                )
            value = getattr(event, rule.name)
            problem = rule.problem(value)
            if problem is not None:
                event_id = getattr(event, "event_id", None)
                which = f"row {index}" + (
                    f" (event_id {event_id!r})" if type(event_id) is int else ""
                )
                raise RowValueError(
                    f"invalid balance event value: `{rule.name}` = {value!r} {problem} - at {which}"
                )


def _columns(rows: Sequence[Any]) -> list[Sequence[Any]]:
    """One list per field of :data:`FIELDS`, in that order, rows in input order; raise
    for the first refused value (in input order, as :func:`check_rows` names it)."""
    columns = trade_event_columns(rows)
    if columns is not None:
        return [columns[rule.name] for rule in FIELDS]
    if rows.__class__ is TradeEvents:
        rows = list(rows)
    try:
        # The SQL path's check, in C; its rows hold plain ints, bools and None.
        valid = msgspec.convert(rows, _ROWS, from_attributes=True)
    except msgspec.ValidationError:
        check_rows(rows)
        raise AssertionError("msgspec refused a row that check_rows accepts") from None
    # One C-level pass per field over the rows, which lie together in memory.
    return [list(map(rule.get, valid)) for rule in FIELDS]


def columns_of(events: Iterable[object]) -> ColumnBatch:
    """Validate ``events`` (as :func:`~worker.tdengine.sql.check_events` does) and return
    them as sorted columns.

    Raises
    ------
    RowValueError
        A field is missing, of the wrong type, null where it may not be, or out of
        range; the message names the field, the row (in input order, with its
        event_id) and the value.
    """
    batch = events if isinstance(events, Sequence) else list(events)
    count = len(batch)
    columns = _columns(batch)
    subtables: Sequence[int] = subtable_keys(columns[0], columns[1])
    data = columns[2:]
    if count > 1:
        # The SQL builder's order. The columns are extracted first and permuted after:
        # reading the events in sorted order instead is several times slower (their
        # values are scattered in memory).
        pick = itemgetter(*identity_order(subtables, data[0], data[1]))
        subtables = pick(subtables)
        picked: dict[int, Sequence[Any]] = {}  # columns may share a list: pick it once
        data = [picked.get(id(c)) or picked.setdefault(id(c), pick(c)) for c in data]
    starts = run_starts(subtables)
    return ColumnBatch(subtables, tuple(data), [*starts, count] if count else [])
