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
from worker.tdengine.sql import COLUMNS, STABLE_NAME, TAGS, quote_identifier

__all__ = (
    "COMPOSITE_KEY_FROM",
    "MIN_SERVER_VERSION",
    "PRECISION",
    "KeyKeyword",
    "ServerVersion",
    "check_describe",
    "composite_key_keyword",
    "create_database_sql",
    "create_stable_sql",
    "describe_differences",
    "describe_sql",
    "parse_server_version",
    "server_version_sql",
    "show_databases_sql",
    "stable_ref",
)

KeyKeyword = Literal["PRIMARY KEY", "COMPOSITE KEY"]

PRECISION: Final = "us"
"""Timestamp precision of the database: BalanceEvent.ts is in microseconds."""

MIN_SERVER_VERSION: Final = (3, 3, 0, 0)
"""First TDengine with a composite key; without it (ts, event_id) is not a row key."""

COMPOSITE_KEY_FROM: Final = (3, 3, 6, 3)
"""First TDengine whose composite-key keyword is ``COMPOSITE KEY`` (``PRIMARY KEY`` before)."""

_KEY_COLUMN: Final = "event_id"
_VERSION: Final = re.compile(r"v?(\d+)\.(\d+)\.(\d+)(?:\.(\d+))?((?:\.\d+)*(?:[-+_ ~]\S*)?)")


class ServerVersion(msgspec.Struct, frozen=True, order=True):
    """A TDengine server version. ``suffix`` is any text after the numbers (``-alpha``).

    A pre-release counts as its numbered version: ``3.3.6.0-alpha`` is 3.3.6.0.
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
    """Parse ``SELECT SERVER_VERSION()`` output such as ``3.3.6.3`` or ``3.3.6.0-alpha``.

    Raises :class:`UnsupportedServerError` when the text is not a version.
    """
    match = _VERSION.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise UnsupportedServerError(str(text), "cannot read the version number")
    major, minor, patch, build, suffix = match.groups()
    return ServerVersion(int(major), int(minor), int(patch), int(build or 0), suffix)


def composite_key_keyword(version: ServerVersion) -> KeyKeyword:
    """Return the composite-key keyword for ``version``, or refuse an old server.

    3.3.0.0-3.3.6.2 → ``PRIMARY KEY``; 3.3.6.3 and later → ``COMPOSITE KEY``.
    Older servers raise :class:`UnsupportedServerError`: with no composite key a row
    is keyed by (subtable, ts) alone, so the buyer's and the platform's rows of one
    timestamp would overwrite each other and replays could not be idempotent.
    """
    if version.numbers < MIN_SERVER_VERSION:
        raise UnsupportedServerError(
            str(version),
            "TDengine 3.3.0.0 or later is required: older servers have no composite key, "
            "so rows sharing a timestamp in one subtable would overwrite each other and "
            "replays could not be idempotent",
        )
    return "COMPOSITE KEY" if version.numbers >= COMPOSITE_KEY_FROM else "PRIMARY KEY"


def server_version_sql() -> str:
    """The statement that reads the server version."""
    return "SELECT SERVER_VERSION()"


def show_databases_sql() -> str:
    """The statement that lists databases with their precision (to check an existing one)."""
    return "SHOW DATABASES"


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
