"""DDL for the ledger: database, super table, server-version rules and schema checks.

Pure functions; :class:`worker.tdengine.writer.TDengineWriter` runs them. The same
statements, as a language-neutral template, live in ``schemas/tdengine.sql``; a unit
test keeps the two identical.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final, Literal

import msgspec

from worker.tdengine.errors import SchemaMismatchError, UnsupportedServerError
from worker.tdengine.options import TDengineOptions
from worker.tdengine.sql import COLUMNS, STABLE_NAME, TAGS, check_database_name, quote_identifier

__all__ = (
    "COMPOSITE_KEY_FROM",
    "MIN_SERVER_REASON",
    "MIN_SERVER_VERSION",
    "PRECISION",
    "KeyKeyword",
    "ServerVersion",
    "check_describe",
    "check_precision",
    "composite_key_keyword",
    "create_database_sql",
    "create_stable_sql",
    "database_precision_sql",
    "describe_differences",
    "describe_sql",
    "parse_server_version",
    "server_version_sql",
    "stable_ref",
)

KeyKeyword = Literal["PRIMARY KEY", "COMPOSITE KEY"]

PRECISION: Final = "us"
"""Timestamp precision of the database: BalanceEvent.ts is in microseconds."""

MIN_SERVER_VERSION: Final = (3, 3, 0, 0)
"""First TDengine with a composite key; without it (ts, event_id) is not a row key."""

MIN_SERVER_REASON: Final = (
    "TDengine 3.3.0.0 or later is required: older servers have no composite primary key, "
    "so a subtable's rows sharing a timestamp (a user's several events of one trade time) "
    "would overwrite each other and re-delivered or replayed trades could not be written "
    "idempotently"
)
"""Why :data:`MIN_SERVER_VERSION` is the minimum, as start-up and the README say it."""

COMPOSITE_KEY_FROM: Final = (3, 3, 6, 3)
"""First TDengine whose composite-key keyword is ``COMPOSITE KEY`` (``PRIMARY KEY`` before)."""

_KEY_COLUMN: Final = "event_id"
_VERSION: Final = re.compile(r"v?(\d+)\.(\d+)\.(\d+)(?:\.(\d+))?")
_SUFFIX: Final = re.compile(r"(?:[-+_.~ ]\S*)?")


class ServerVersion(msgspec.Struct, frozen=True, order=True):
    """A TDengine server version. ``suffix`` is any text after the numbers.

    A build from source or a pre-release counts as its numbered version:
    ``3.3.6.6.alpha`` and ``3.3.6.0-alpha`` are 3.3.6.6 and 3.3.6.0.
    """

    major: int
    minor: int
    patch: int
    build: int = 0
    suffix: str = ""

    @property
    def numbers(self) -> tuple[int, int, int, int]:
        """The four version numbers, for comparisons."""
        return (self.major, self.minor, self.patch, self.build)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}.{self.build}{self.suffix}"


def parse_server_version(text: str) -> ServerVersion:
    """Parse ``SELECT SERVER_VERSION()`` output such as ``3.3.6.6`` or ``3.3.6.6.alpha``.

    The numbers are the first three or four; anything after them that starts with
    ``.``, ``-``, ``+``, ``_``, ``~`` or a space is the suffix. Raises
    :class:`UnsupportedServerError` when the text does not start with a version.
    """
    stripped = text.strip() if isinstance(text, str) else ""
    match = _VERSION.match(stripped)
    suffix = stripped[match.end() :] if match is not None else ""
    if match is None or _SUFFIX.fullmatch(suffix) is None:
        raise UnsupportedServerError(str(text), "cannot read the version number")
    major, minor, patch, build = match.groups()
    return ServerVersion(int(major), int(minor), int(patch), int(build or 0), suffix)


def composite_key_keyword(version: ServerVersion) -> KeyKeyword:
    """Return the composite-key keyword for ``version``, or refuse an old server.

    3.3.0.0-3.3.6.2 → ``PRIMARY KEY``; 3.3.6.3 and later → ``COMPOSITE KEY``.
    Older servers raise :class:`UnsupportedServerError`: with no composite key a row
    is keyed by (subtable, ts) alone, so the buyer's and the platform's rows of one
    timestamp would overwrite each other and replays could not be idempotent.
    """
    if version.numbers < MIN_SERVER_VERSION:
        raise UnsupportedServerError(str(version), MIN_SERVER_REASON)
    return "COMPOSITE KEY" if version.numbers >= COMPOSITE_KEY_FROM else "PRIMARY KEY"


def server_version_sql() -> str:
    """The statement that reads the server version."""
    return "SELECT SERVER_VERSION()"


def database_precision_sql(database: str) -> str:
    """The statement that reads a database's timestamp precision.

    ``SHOW DATABASES`` lists names only on TDengine 3.x; the precision is a column of
    ``information_schema.ins_databases``. ``database`` is checked to be a plain
    identifier, so it is safe inside the string literal.
    """
    check_database_name(database)
    return (
        f"SELECT name, `precision` FROM information_schema.ins_databases WHERE name = '{database}'"
    )


def check_precision(
    database: str, columns: Sequence[str], rows: Sequence[Sequence[object]]
) -> bool:
    """Check the answer of :func:`database_precision_sql`; ``False`` when no row names it.

    Raises :class:`SchemaMismatchError` when the precision is not ``'us'``, or the
    answer has no ``precision`` column (then it cannot be checked).
    """
    names = [c.lower() for c in columns]
    if "name" not in names or "precision" not in names:
        raise SchemaMismatchError(
            f"database `{database}`",
            (f"cannot read its precision: the answer has columns {list(columns)}",),
        )
    name_at, precision_at = names.index("name"), names.index("precision")
    for row in rows:
        if str(row[name_at]) != database:
            continue
        precision = row[precision_at]
        if precision != PRECISION:
            raise SchemaMismatchError(
                f"database `{database}`",
                (
                    f"timestamp precision is {precision!r}, expected {PRECISION!r}: "
                    "BalanceEvent.ts is in microseconds",
                ),
            )
        return True
    return False


def stable_ref(database: str) -> str:
    """```db`.`balance_events``` with the database name checked."""
    return f"{quote_identifier(database)}.`{STABLE_NAME}`"


def create_database_sql(options: TDengineOptions) -> str:
    """``CREATE DATABASE IF NOT EXISTS`` with precision 'us' and only the configured options."""
    database = quote_identifier(options.database)
    sql = f"CREATE DATABASE IF NOT EXISTS {database} PRECISION '{PRECISION}'"
    if options.keep is not None:
        sql += f" KEEP {options.keep}"
    if options.duration is not None:
        sql += f" DURATION {options.duration}"
    if options.wal_level is not None:
        sql += f" WAL_LEVEL {int(options.wal_level)}"
    return sql


def create_stable_sql(database: str, keyword: KeyKeyword) -> str:
    """``CREATE STABLE IF NOT EXISTS `db`.`balance_events` (...) TAGS (...)``."""
    columns = ", ".join(
        f"{name} {kind} {keyword}" if name == _KEY_COLUMN else f"{name} {kind}"
        for name, kind in COLUMNS
    )
    tags = ", ".join(f"{name} {kind}" for name, kind in TAGS)
    return f"CREATE STABLE IF NOT EXISTS {stable_ref(database)} ({columns}) TAGS ({tags})"


def describe_sql(database: str) -> str:
    """``DESCRIBE `db`.`balance_events```."""
    return f"DESCRIBE {stable_ref(database)}"


def _describe_rows(
    columns: Sequence[str], rows: Sequence[Sequence[object]]
) -> list[tuple[str, str, str]]:
    """(field, type, note) from DESCRIBE output, found by column name (or position 0, 1, 3)."""
    lowered = [c.lower() for c in columns]

    def position(name: str, default: int) -> int:
        return lowered.index(name) if name in lowered else default

    field, kind, note = position("field", 0), position("type", 1), position("note", 3)
    out = []
    for row in rows:
        note_text = row[note] if note < len(row) else ""
        out.append(
            (
                str(row[field]),
                str(row[kind]).strip().upper(),
                str(note_text or "").strip().upper(),
            )
        )
    return out


def describe_differences(
    columns: Sequence[str], rows: Sequence[Sequence[object]]
) -> tuple[str, ...]:
    """Every difference between a DESCRIBE result and the expected super table.

    Checks the data columns (names, order, types), the composite key on
    ``event_id`` (note ``PRIMARY KEY`` or ``COMPOSITE KEY``, whichever the server
    shows) and the tags. An empty tuple means the table matches.
    """
    found = _describe_rows(columns, rows)
    found_columns = [(n, t, k) for n, t, k in found if k != "TAG"]
    found_tags = [(n, t) for n, t, k in found if k == "TAG"]
    differences: list[str] = []

    def compare(
        what: str, expected: Sequence[tuple[str, str]], got: Sequence[tuple[str, str]]
    ) -> None:
        got_types = {name.lower(): kind for name, kind in got}
        want_types = {name: kind for name, kind in expected}
        for name, kind in expected:
            if name not in got_types:
                differences.append(f"{what} `{name}` {kind} is missing")
            elif got_types[name] != kind:
                differences.append(f"{what} `{name}` is {got_types[name]}, expected {kind}")
        for name, kind in got:
            if name.lower() not in want_types:
                differences.append(f"unexpected {what} `{name}` {kind}")
        got_order = [name.lower() for name, _ in got if name.lower() in want_types]
        want_order = [name for name, _ in expected if name in got_types]
        if got_order != want_order:
            differences.append(
                f"{what}s are in the order ({', '.join(got_order)}), "
                f"expected ({', '.join(want_order)})"
            )

    compare("column", COLUMNS, [(n, t) for n, t, _ in found_columns])
    compare("tag", TAGS, found_tags)
    for name, _, note in found_columns:
        is_key = "PRIMARY KEY" in note or "COMPOSITE KEY" in note
        if name.lower() == _KEY_COLUMN and not is_key:
            differences.append(
                f"column `{_KEY_COLUMN}` is not the composite key (note {note!r}): "
                "rows sharing a timestamp would overwrite each other"
            )
        elif name.lower() != _KEY_COLUMN and is_key:
            differences.append(f"column `{name}` is a composite key, expected only `event_id`")
    return tuple(differences)


def check_describe(database: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Raise :class:`SchemaMismatchError` listing every difference, if there is any."""
    differences = describe_differences(columns, rows)
    if differences:
        raise SchemaMismatchError(f"super table {stable_ref(database)}", differences)
