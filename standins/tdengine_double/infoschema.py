"""``information_schema.ins_databases`` and ``SHOW CREATE DATABASE``, as 3.3.6.6 answers them.

Columns, types and the values of a database's options are the recorded ones; options
the stand-in does not take (it refuses them in CREATE DATABASE) always have the value a
default database showed. For the two system databases only ``name`` and ``precision``
(``ms``) were recorded: a query that would show any other column of theirs is answered
"not implemented" rather than with made-up values.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Final

from standins.tdengine_double.catalog import ColumnDef, Database, DataType, StableDef, make_type
from standins.tdengine_double.ddl import SYSTEM_DBS
from standins.tdengine_double.errors import not_implemented
from standins.tdengine_double.planner import ExprCompiler
from standins.tdengine_double.query import finish_rows, plan_select
from standins.tdengine_double.results import QueryResult, ResultColumn
from standins.tdengine_double.statements import Expr, SelectStmt, column_names, conjuncts

__all__ = ("format_minutes", "select_ins_databases", "show_create_database")


def _vchar(n: int) -> DataType:
    return DataType("VARCHAR", "str", n)


_INT: Final = make_type("INT")
_BIGINT: Final = make_type("BIGINT")
_TINYINT: Final = make_type("TINYINT")
_SMALLINT: Final = make_type("SMALLINT")
INS_DATABASES: Final[tuple[tuple[str, DataType], ...]] = (
    ("name", _vchar(64)),
    ("create_time", make_type("TIMESTAMP")),
    ("vgroups", _INT),
    ("ntables", _BIGINT),
    ("replica", _TINYINT),
    ("strict", _vchar(4)),
    ("duration", _vchar(10)),
    ("keep", _vchar(32)),
    ("buffer", _INT),
    ("pagesize", _INT),
    ("pages", _INT),
    ("minrows", _INT),
    ("maxrows", _INT),
    ("comp", _TINYINT),
    ("precision", _vchar(2)),
    ("status", _vchar(10)),
    ("retentions", _vchar(60)),
    ("single_stable", make_type("BOOL")),
    ("cachemodel", _vchar(11)),
    ("cachesize", _INT),
    ("wal_level", _TINYINT),
    ("wal_fsync_period", _INT),
    ("wal_retention_period", _INT),
    ("wal_retention_size", _BIGINT),
    ("stt_trigger", _SMALLINT),
    ("table_prefix", _SMALLINT),
    ("table_suffix", _SMALLINT),
    ("tsdb_pagesize", _INT),
    ("keep_time_offset", _INT),
    ("s3_chunkpages", _INT),
    ("s3_keeplocal", _vchar(10)),
    ("s3_compact", _TINYINT),
    ("with_arbitrator", _TINYINT),
    ("encrypt_algorithm", _vchar(16)),
    ("compact_interval", _vchar(12)),
    ("compact_time_range", _vchar(24)),
    ("compact_time_offset", _vchar(4)),
)
"""The 37 columns of ``information_schema.ins_databases`` on 3.3.6.6."""
_KNOWN_FOR_SYSTEM_DBS: Final = frozenset({"name", "precision"})
_STORAGE: Final = "_td_ins_databases"


def format_minutes(minutes: int) -> str:
    """A duration as TDengine prints it: whole days ``d``, whole hours ``h``, else ``m``."""
    if minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


def _options(db: Database) -> dict[str, object]:
    """Every ``ins_databases`` value of a user database (recorded defaults for the rest)."""
    return {
        "name": db.name,
        "create_time": db.created_ms,
        "vgroups": db.vgroups,
        "ntables": len(db.subtables),
        "replica": 1,
        "strict": "on",
        "duration": format_minutes(db.duration_minutes),
        "keep": ",".join(format_minutes(k) for k in db.keep_all),
        "buffer": db.buffer,
        "pagesize": 4,
        "pages": 256,
        "minrows": 100,
        "maxrows": 4096,
        "comp": 2,
        "precision": db.precision,
        "status": "ready",
        "retentions": None,
        "single_stable": 0,
        "cachemodel": "none",
        "cachesize": 1,
        "wal_level": db.wal_level,
        "wal_fsync_period": 3000,
        "wal_retention_period": 3600,
        "wal_retention_size": 0,
        "stt_trigger": 2,
        "table_prefix": 0,
        "table_suffix": 0,
        "tsdb_pagesize": 4,
        "keep_time_offset": 0,
        "s3_chunkpages": 131072,
        "s3_keeplocal": "525600m",
        "s3_compact": 1,
        "with_arbitrator": 0,
        "encrypt_algorithm": "none",
        "compact_interval": "0d",
        "compact_time_range": "0d,0d",
        "compact_time_offset": "0h",
    }


def show_create_database(db: Database) -> QueryResult:
    """``SHOW CREATE DATABASE``: the statement text 3.3.6.6 prints, options in its order."""
    o = _options(db)
    text = (
        f"CREATE DATABASE `{db.name}` BUFFER {o['buffer']} CACHESIZE {o['cachesize']} "
        f"CACHEMODEL '{o['cachemodel']}' COMP {o['comp']} DURATION {o['duration']} "
        f"WAL_FSYNC_PERIOD {o['wal_fsync_period']} MAXROWS {o['maxrows']} "
        f"MINROWS {o['minrows']} STT_TRIGGER {o['stt_trigger']} KEEP {o['keep']} "
        f"PAGES {o['pages']} PAGESIZE {o['pagesize']} PRECISION '{o['precision']}' "
        f"REPLICA {o['replica']} WAL_LEVEL {o['wal_level']} VGROUPS {o['vgroups']} "
        f"SINGLE_STABLE {o['single_stable']} TABLE_PREFIX {o['table_prefix']} "
        f"TABLE_SUFFIX {o['table_suffix']} TSDB_PAGESIZE {o['tsdb_pagesize']} "
        f"WAL_RETENTION_PERIOD {o['wal_retention_period']} "
        f"WAL_RETENTION_SIZE {o['wal_retention_size']} KEEP_TIME_OFFSET {o['keep_time_offset']} "
        f"ENCRYPT_ALGORITHM '{o['encrypt_algorithm']}' S3_CHUNKPAGES {o['s3_chunkpages']} "
        f"S3_KEEPLOCAL {o['s3_keeplocal']} S3_COMPACT {o['s3_compact']} "
        f"COMPACT_INTERVAL {o['compact_interval']} "
        f"COMPACT_TIME_RANGE {o['compact_time_range']} "
        f"COMPACT_TIME_OFFSET {o['compact_time_offset']}"
    )
    cols = [
        ResultColumn.of("Database", _vchar(63)),
        ResultColumn.of("Create Database", _vchar(65517)),
    ]
    return QueryResult(cols, [(db.name, text)])


def _referenced(stmt: SelectStmt) -> set[str]:
    exprs: list[Expr] = [i.expr for i in stmt.items]
    exprs += stmt.group_by + stmt.partition_by + [e for e, _ in stmt.order_by]
    if stmt.where is not None:
        exprs.append(stmt.where)
    names = {n for n, _ in INS_DATABASES} if stmt.star else set()
    for e in exprs:
        names |= column_names(e)
    return names


def select_ins_databases(
    conn: sqlite3.Connection, stmt: SelectStmt, databases: Mapping[str, Database]
) -> QueryResult:
    """A SELECT over ``information_schema.ins_databases``, run on a temporary SQLite table."""
    columns = tuple(ColumnDef(n, t) for n, t in INS_DATABASES)
    table = StableDef("information_schema", "ins_databases", columns, (), _STORAGE)
    conn.execute(f"DROP TABLE IF EXISTS temp.{_STORAGE}")
    names = ", ".join(f"c{i}" for i in range(len(INS_DATABASES)))
    conn.execute(f"CREATE TEMP TABLE {_STORAGE} (tbname TEXT, {names})")
    rows: list[tuple[object, ...]] = []
    for sysdb in SYSTEM_DBS:
        known = {"name": sysdb, "precision": "ms"}
        rows.append((sysdb, *(known.get(n) for n, _ in INS_DATABASES)))
    for db in databases.values():
        values = _options(db)
        rows.append((db.name, *(values[n] for n, _ in INS_DATABASES)))
    marks = ", ".join("?" for _ in range(len(INS_DATABASES) + 1))
    conn.executemany(f"INSERT INTO {_STORAGE} VALUES ({marks})", rows)
    try:
        if not _referenced(stmt) <= _KNOWN_FOR_SYSTEM_DBS:
            _refuse_system_rows(conn, stmt, table)
        plan = plan_select(stmt, table, "ms", subtable=None, table_name="ins_databases")
        found = conn.execute(plan.sql, plan.params).fetchall()
    finally:
        conn.execute(f"DROP TABLE IF EXISTS temp.{_STORAGE}")
    if plan.tag_groups is not None:
        raise not_implemented("GROUP BY over information_schema.ins_databases")
    return QueryResult(plan.columns, finish_rows(plan, found), "ms")


def _refuse_system_rows(conn: sqlite3.Connection, stmt: SelectStmt, table: StableDef) -> None:
    """Fail when a system database would show a column whose value was never recorded."""
    sql = f"SELECT COUNT(*) FROM {_STORAGE} WHERE c0 IN (?, ?)"
    params: list[object] = list(SYSTEM_DBS)
    compiler = ExprCompiler(table, "ms", "ins_databases")
    for conj in conjuncts(stmt.where):
        if column_names(conj) <= {"name"}:
            w = compiler.expr(conj, allow_agg=False)
            sql += f" AND ({w.sql})"
            params.extend(w.params)
    if conn.execute(sql, params).fetchone()[0]:
        raise not_implemented(
            "information_schema.ins_databases columns other than name and precision "
            "for the system databases"
        )
