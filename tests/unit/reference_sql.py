"""A literal, slow INSERT builder: the reference the fast one is checked against.

:func:`reference_statements` renders row by row and fills each statement greedily,
row by row, as the contract in :mod:`worker.tdengine.sql` describes: subtables
ascending, rows by (ts, event_id) within one (equal identities in input order), a
subtable cut at a statement boundary continuing under its header repeated.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Any

import msgspec

from worker.tdengine.sql import DEFAULT_MAX_STATEMENT_BYTES, STABLE_NAME, EventRow

__all__ = ("reference_statements",)

_ENCODE = msgspec.json.Encoder().encode
_INSERT = b"INSERT INTO"


def reference_statements(
    database: str,
    events: Sequence[object],
    max_statement_bytes: int = DEFAULT_MAX_STATEMENT_BYTES,
) -> list[tuple[str, int]]:
    """(sql, rows) of every statement that writes ``events``."""
    rows: list[Any] = msgspec.convert(
        list(events),
        list[EventRow],  # type: ignore[valid-type]
        from_attributes=True,
    )
    rows.sort(key=attrgetter("user_id", "account_type", "ts", "event_id"))
    db = f"`{database}`".encode()
    statements: list[tuple[str, int]] = []
    parts: list[bytes] = [_INSERT]
    count = 0
    current: tuple[int, int] | None = None  # the subtable whose piece is open

    def size() -> int:
        return sum(map(len, parts)) + (1 if current is not None else 0)

    for row in rows:
        key = (row.user_id, row.account_type)
        header = b" %s.`u%d_a%d` USING %s.`%s` TAGS (%d,%d) VALUES (" % (
            db, key[0], key[1], db, STABLE_NAME.encode(), key[0], key[1],
        )  # fmt: skip
        text = _ENCODE(row)[1:-1].split(b",", 2)[2].replace(b"null", b"NULL")
        continuing = current == key
        added = [b") (", text] if continuing else [b")", header, text]
        if current is None:
            added = [header, text]
        if size() + sum(map(len, added)) - (1 if current is not None else 0) + 1 > (
            max_statement_bytes
        ):
            if count == 0:
                raise ValueError("one row does not fit")
            parts.append(b")")
            statements.append((b"".join(parts).decode("ascii"), count))
            parts, count, current = [_INSERT], 0, None
            added = [header, text]
        parts += added
        current = key
        count += 1
    if count:
        parts.append(b")")
        statements.append((b"".join(parts).decode("ascii"), count))
    return statements
