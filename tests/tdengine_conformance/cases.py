"""Request → expected response cases: what a real TDengine answers, per server version.

Ground truth: the answers a real 3.3.6.6 gave (``../shared/tdengine-recorded``; every
case below with a recorded counterpart matches it), and the fact sheet's table
confirmed on 3.3.2.0 for older servers. Texts that differ by version are callables of
the version (e.g. 3.3.6 says "composite primary key column ...", 3.3.2 "primary key
column ...").

Placeholders in SQL and expectations: ``{db}`` (a fresh database per case), ``{key}``
(``COMPOSITE KEY`` from 3.3.6.3, ``PRIMARY KEY`` before), ``{ts}`` (an integer
timestamp in microseconds inside the default KEEP window), ``{ts_text}`` (how the REST
API renders ``{ts}``). ``desc`` may be a callable of (version, rendered SQL) for the
messages that quote the statement. Follow-up checks whose expectation is a choice of
the double on an UNCONFIRMED point sit in ``double_checks`` with the reason: the case
itself runs against every server; only those checks are the double's own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = (
    "CASES",
    "SCHEMA",
    "TS",
    "TS_TEXT",
    "WITH_ROW",
    "Case",
    "near",
)

TS = (int(time.time()) // 86_400 - 1) * 86_400 * 1_000_000
"""Yesterday 00:00 UTC in microseconds (inside the default 3650-day KEEP)."""
TS_TEXT = datetime.fromtimestamp(TS // 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")

SCHEMA = (
    "CREATE DATABASE {db} PRECISION 'us'",
    "CREATE STABLE {db}.st (ts TIMESTAMP, event_id BIGINT {key}, amt BIGINT, flag BOOL, "
    "s VARCHAR(4), tiny TINYINT) TAGS (user_id BIGINT, account_type TINYINT)",
)
WITH_ROW = (
    *SCHEMA,
    "INSERT INTO {db}.t1 USING {db}.st TAGS (1, 1) VALUES ({ts}, 1, 10, true, 'a', 1)",
)

Version = tuple[int, ...]
DescSpec = str | Callable[[Version, str], str] | None


def near(sql: str, fragment: str) -> str:
    """What ``buildSyntaxErrMsg`` quotes: the lower-cased statement from ``fragment``, 63 bytes."""
    lowered = sql.lower()
    start = lowered.index(fragment.lower())
    return lowered[start:].encode()[:63].decode(errors="replace")


@dataclass(frozen=True, slots=True)
class Case:
    """One request and what TDengine answers."""

    id: str
    sql: str
    code: int | Callable[[Version], int]
    desc: DescSpec = None
    setup: tuple[str, ...] = SCHEMA
    url_db: bool = False
    """Post to ``/rest/sql/{db}`` instead of ``/rest/sql``."""
    body: str | None = None
    """Exact success body (after placeholders)."""
    checks: tuple[tuple[str, list[list[object]]], ...] = ()
    """Follow-up SELECTs and the ``data`` they must return."""
    double_checks: tuple[tuple[str, list[list[object]]], ...] = ()
    """Follow-up checks of the double's choice on an UNCONFIRMED point (see ``unconfirmed``)."""
    unconfirmed: str | None = None
    source: str = "confirmed"
    extra: dict[str, object] = field(default_factory=dict)


def _composite(version: Version) -> str:
    """3.3.6 prefixes the composite-key messages with "composite " (recorded on 3.3.6.6)."""
    return "composite " if version >= (3, 3, 6) else ""


def _pk_second(version: Version, sql: str) -> str:
    return f"{_composite(version)}primary key column must be second column"


def _pk_type(version: Version, sql: str) -> str:
    return (
        f"{_composite(version)}primary key column must be of type int, uint, bigint, "
        "ubigint, and varchar"
    )


def _missing_table_code(version: Version) -> int:
    return 0x2603 if version >= (3, 3, 6) else 0x2662


EXEC_0 = '{"code":0,"column_meta":[["affected_rows","INT",4]],"data":[[0]],"rows":1}'
EXEC_1 = '{"code":0,"column_meta":[["affected_rows","INT",4]],"data":[[1]],"rows":1}'
EXEC_2 = '{"code":0,"column_meta":[["affected_rows","INT",4]],"data":[[2]],"rows":1}'


def _stored_as(
    prefix: str, column: str, source: str, *literals: tuple[str, str, object]
) -> tuple[Case, ...]:
    """One case per (name, literal, stored value): the literal inserted into ``column``
    is accepted and read back as the stored value."""
    return tuple(
        Case(
            f"{prefix}-{name}",
            f"INSERT INTO {{db}}.t1 USING {{db}}.st TAGS (1, 1) (ts, event_id, {column}) "
            f"VALUES ({{ts}}, 1, {literal})",
            0,
            body=EXEC_1,
            checks=((f"SELECT {column} FROM {{db}}.t1", [[stored]]),),
            source=source,
        )
        for name, literal, stored in literals
    )


_TINY_SQL = (
    "INSERT INTO {db}.t1 USING {db}.st TAGS (1, 1) (ts, event_id, tiny) VALUES ({ts}, 1, %s)"
)

CASES: tuple[Case, ...] = (
    # ------------------------------------------------ confirmed error table
    Case(
        "insert-missing-table",
        "INSERT INTO {db}.nope VALUES ({ts}, 1, 1, true, 'a', 1)",
        0x2603,
        "Table does not exist",
    ),
    Case(
        "using-missing-stable",
        "INSERT INTO {db}.t1 USING {db}.nost TAGS (1, 1) VALUES ({ts}, 1, 1, true, 'a', 1)",
        0x2603,
        "Table does not exist",
    ),
    Case(
        "select-missing-table",
        "SELECT * FROM {db}.nope",
        _missing_table_code,
        "Fail to get table info, error: Table does not exist",
    ),
    *(
        Case(
            f"tinyint-overflow-{v}",
            _TINY_SQL % v,
            0x0216,
            f"syntax error near '{v})' (tinyint data overflow)",
        )
        for v in ("200", "-200", "-129")
    ),
    *(
        Case(
            f"tinyint-edge-{v}",
            _TINY_SQL % v,
            0,
            body=EXEC_1,
            checks=(("SELECT tiny FROM {db}.t1", [[int(v)]]),),
        )
        for v in ("127", "-128")
    ),
    Case("misspelt-keyword", "SELEC * FROM st", 0x2600, 'syntax error near "selec * from st"'),
    Case(
        "truncated-values",
        "INSERT INTO {db}.t1 USING {db}.st TAGS (1, 1) (ts, event_id, amt) VALUES ({ts}, 1",
        0x0216,
        "syntax error near '' (, expected)",
    ),
    Case(
        "too-few-values",
        "INSERT INTO {db}.t1 USING {db}.st TAGS (1, 1) (ts, event_id, amt) VALUES ({ts}, 1)",
        0x0216,
        "syntax error near ')' (, expected)",
    ),
    Case(
        "wrong-number-of-tags",
        "INSERT INTO {db}.t1 USING {db}.st TAGS (1) VALUES ({ts}, 1, 1, true, 'a', 1)",
        0x0216,
        lambda v, sql: f"syntax error near '{near(sql, ') values')}' (invalid data or symbol)",
    ),
    Case(
        "bad-timestamp-string",
        "INSERT INTO {db}.t1 USING {db}.st TAGS (1, 1) VALUES ('not-a-time', 1, 1, true, 'a', 1)",
        0x0216,
        "syntax error near 'not-a-time' (invalid timestamp)",
    ),
    Case(
        "key-left-out",
        "INSERT INTO {db}.t1 USING {db}.st TAGS (1, 1) (ts, amt) VALUES ({ts}, 1)",
        0x0200,
        "Primary key column should not be none",
    ),
    Case(
        "key-null",
        "INSERT INTO {db}.t1 USING {db}.st TAGS (1, 1) VALUES ({ts}, NULL, 1, true, 'a', 1)",
        0x267B,
        "Primary key column should not be null",
    ),
    Case(
        "key-not-second",
        "CREATE STABLE {db}.st2 (ts TIMESTAMP, v INT, event_id BIGINT {key}) TAGS (t INT)",
        0x2678,
        _pk_second,
    ),
    Case(
        "key-double",
        "CREATE STABLE {db}.st2 (ts TIMESTAMP, event_id DOUBLE {key}, v INT) TAGS (t INT)",
        0x2679,
        _pk_type,
    ),
    Case(
        "no-database",
        "INSERT INTO t1 VALUES ({ts}, 1, 1, true, 'a', 1)",
        0x0200,
        "db is not specified",
    ),
    Case(
        "unknown-database",
        "INSERT INTO {db}_nope.t1 USING {db}_nope.st TAGS (1, 1) VALUES ({ts}, 1, 1, true, 'a', 1)",
        0x0388,
        "Database not exist",
    ),
    Case(
        "stable-exists",
        "CREATE STABLE {db}.st (ts TIMESTAMP, v INT) TAGS (t INT)",
        0x0360,
        "STable already exists",
    ),
    Case(
        "supertable-without-tbname",
        "INSERT INTO {db}.st VALUES ({ts}, 1, 1, true, 'a', 1)",
        0x0216,
        lambda v, sql: (
            f"syntax error near '{near(sql, ' values')}' "
            "((...tbname, ts...) bounded cols is expected for supertable insertion)"
        ),
    ),
    Case(
        "varchar-too-long",
        "INSERT INTO {db}.t1 USING {db}.st TAGS (1, 1) VALUES ({ts}, 1, 1, true, 'abcde', 1)",
        0x2653,
        "Value too long for column/tag: s",
    ),
    # ------------------------------------------------ overwrite semantics (confirmed)
    Case(
        "rewrite-same-key-last-wins",
        "INSERT INTO {db}.t1 VALUES ({ts}, 1, 20, false, 'b', 2)",
        0,
        body=EXEC_1,
        setup=WITH_ROW,
        checks=(("SELECT COUNT(*), SUM(amt) FROM {db}.st", [[1, 20]]),),
    ),
    Case(
        "same-ts-other-key-second-row",
        "INSERT INTO {db}.t1 VALUES ({ts}, 2, 20, false, 'b', 2)",
        0,
        body=EXEC_1,
        setup=WITH_ROW,
        checks=(("SELECT COUNT(*) FROM {db}.t1", [[2]]),),
    ),
    Case(
        "duplicate-in-one-statement",
        "INSERT INTO {db}.t2 USING {db}.st TAGS (2, 1) VALUES ({ts}, 7, 1, true, 'a', 1)"
        "({ts}, 7, 2, true, 'a', 1)",
        0,
        body=EXEC_1,
        checks=(("SELECT amt FROM {db}.t2", [[2]]),),
    ),
    Case(
        "omitted-columns-keep-values",
        "INSERT INTO {db}.t1 (ts, event_id, amt) VALUES ({ts}, 1, 99)",
        0,
        body=EXEC_1,
        setup=WITH_ROW,
        checks=(("SELECT amt, flag, s, tiny FROM {db}.t1", [[99, True, "a", 1]]),),
    ),
    Case(
        "using-other-tags-keeps-tags",
        "INSERT INTO {db}.t1 USING {db}.st TAGS (5, 5) VALUES ({ts}, 2, 1, true, 'a', 1)",
        0,
        body=EXEC_1,
        setup=WITH_ROW,
        checks=(("SELECT user_id, account_type FROM {db}.st WHERE event_id = 2", [[1, 1]]),),
    ),
    Case(
        "integer-ts-in-db-precision",
        "SELECT ts, event_id FROM {db}.t1",
        0,
        setup=WITH_ROW,
        body='{"code":0,"column_meta":[["ts","TIMESTAMP",8],["event_id","BIGINT",8]],'
        '"data":[["{ts_text}",1]],"rows":1}',
    ),
    # ------------------------------------------------ success shapes (checklist 2)
    Case("create-database-shape", "CREATE DATABASE {db}", 0, body=EXEC_0, setup=()),
    Case(
        "insert-shape",
        "INSERT INTO {db}.t1 USING {db}.st TAGS (1, 1) VALUES ({ts}, 1, 1, true, 'a', 1)"
        "({ts}, 2, 1, true, 'a', 1)",
        0,
        body=EXEC_2,
    ),
    Case(
        "url-database",
        "INSERT INTO t1 USING st TAGS (1, 1) VALUES ({ts}, 1, 1, true, 'a', 1)",
        0,
        body=EXEC_1,
        url_db=True,
    ),
    Case(
        "select-count-sum-shape",
        "SELECT COUNT(*), SUM(amt) FROM {db}.st",
        0,
        setup=WITH_ROW,
        body='{"code":0,"column_meta":[["count(*)","BIGINT",8],["sum(amt)","BIGINT",8]],'
        '"data":[[1,10]],"rows":1}',
    ),
    # ------------------------------------------------ checklist 4 (source, not runtime)
    Case(
        "keep-window",
        "INSERT INTO {db}.t1 USING {db}.st TAGS (1, 1) VALUES ({ts}, 1, 1, true, 'a', 1)"
        "(0, 2, 1, true, 'a', 1)",
        0x060B,
        "Timestamp data out of range",  # recorded on 3.3.6.6 (code 1547)
        double_checks=(("SHOW {db}.TABLES", []),),
        unconfirmed="whole statement fails and nothing (not even the USING subtable) is "
        "created - the double's strict choice",
        source="fact sheet section 2; code and text recorded on 3.3.6.6",
    ),
    Case(
        "int-overflow",
        "INSERT INTO {db}.t2 USING {db}.st2 TAGS (1) (ts, v) VALUES ({ts}, 2147483648)",
        0x0216,
        "syntax error near '2147483648)' (int data overflow)",
        setup=(*SCHEMA, "CREATE STABLE {db}.st2 (ts TIMESTAMP, v INT) TAGS (t INT)"),
        source="parInsertSql.c",
    ),
    Case(
        "bigint-overflow",
        "INSERT INTO {db}.t1 USING {db}.st TAGS (1, 1) (ts, event_id, amt) "
        "VALUES ({ts}, 1, 9223372036854775808)",
        0x0216,
        "syntax error near '9223372036854775808)' (invalid bigint data)",
        source="parInsertSql.c: BIGINT has no overflow branch, a failed parse is invalid",
    ),
    Case(
        "bad-bool",
        "INSERT INTO {db}.t1 USING {db}.st TAGS (1, 1) (ts, event_id, flag) "
        "VALUES ({ts}, 1, 'yes')",
        0x0216,
        "syntax error near 'yes' (invalid bool data)",
        source="parInsertSql.c",
    ),
    # ------------------------------------------- probed on 3.3.6.13 (differential runs)
    *_stored_as(
        "decimal-into-bigint",
        "amt",
        "3.3.6.13: a decimal (or a string holding one) is rounded half away from zero",
        ("half-up", "2.5", 3),
        ("half-down-negative", "-1.5", -2),
        ("below-half", "1.4999", 1),
        ("exponent", "1e3", 1000),
        ("string", "'1.5'", 2),
        ("signed-hex-string", "'-0x10'", -16),
    ),
    Case(
        "decimal-tinyint-overflow-after-rounding",
        _TINY_SQL % "127.6",
        0x0216,
        "syntax error near '127.6)' (tinyint data overflow)",
        source="3.3.6.13",
    ),
    *_stored_as(
        "bool-from-string",
        "flag",
        "3.3.6.13: a string other than true/false is read as a number",
        ("zero", "'0'", False),
        ("two", "'2'", True),
        ("hex", "'0x1'", True),
    ),
    Case(
        "primary-timestamp-null",
        "INSERT INTO {db}.t1 USING {db}.st TAGS (1, 1) VALUES (NULL, 1, 1, true, 'a', 1)",
        0x0216,
        lambda v, sql: (
            f"syntax error near '{near(sql, 'null, 1,')}' "
            "(Primary timestamp column should not be null)"
        ),
        source="3.3.6.13",
    ),
    Case(
        "stable-insert-without-tbname",
        "INSERT INTO {db}.st (ts, event_id) VALUES ({ts}, 1)",
        0x0200,
        "tbname column should not be null",
        source="3.3.6.13: with a column list; without one it is 0x0216 (recorded)",
    ),
    Case(
        "stable-insert-null-tbname",
        "INSERT INTO {db}.st (tbname, ts, event_id) VALUES (NULL, {ts}, 1)",
        0x0200,
        "tbname can not be null value",
        source="3.3.6.13",
    ),
    Case(
        "stable-insert-empty-tbname",
        "INSERT INTO {db}.st (tbname, ts, event_id) VALUES ('', {ts}, 1)",
        0x0200,
        "tbname can not be empty",
        source="3.3.6.13",
    ),
    Case(
        "misspelt-values-is-left-to-the-grammar",
        "INSERT INTO {db}.st (tbname, ts, event_id) VALUE ('t9', {ts}, 1)",
        0x2600,
        lambda v, sql: f'syntax error near "{sql.lower()[sql.lower().index("tbname") :]}"',
        source="3.3.6.13: no USING, VALUES or FILE token, so the grammar parses it",
    ),
    Case(
        "misspelt-values-on-a-missing-table",
        "INSERT INTO {db}.nope (ts, event_id) VALUE ({ts}, 1)",
        0x2600,
        lambda v, sql: f'syntax error near "{sql.lower()[sql.lower().index("value") :]}"',
        source="3.3.6.13: the grammar fails it before any table is looked up",
    ),
    *(
        Case(f"ends-early-{name}", sql, 0x2601, "Incomplete SQL statement", source="3.3.6.13")
        for name, sql in (
            ("insert", "INSERT INTO {db}.t1"),
            ("insert-into", "INSERT INTO"),
            ("select", "SELECT * FROM"),
            ("group-by", "SELECT COUNT(*) FROM {db}.st GROUP BY"),
            ("show", "SHOW"),
        )
    ),
)
