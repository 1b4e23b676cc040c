"""The stand-in's engine: statement dispatch, SELECT, and INSERT's overwrite semantics.

Rows of each super table live in one SQLite table keyed by (tbname, ts[, composite
key]); tags are copied into every row (they never change once a subtable exists). A
re-write of a key replaces only the columns the statement supplied, as TDengine merges
rows by column. Every statement is all-or-nothing: it is parsed and checked in full
before one SQLite transaction writes it.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Final

from standins.tdengine_double import errors as E
from standins.tdengine_double.catalog import PRECISION_UNITS, Database, StableDef, SubTable
from standins.tdengine_double.ddl import SYSTEM_DBS, SchemaStore
from standins.tdengine_double.errors import TDengineError, not_implemented
from standins.tdengine_double.infoschema import select_ins_databases, show_create_database
from standins.tdengine_double.insert import InsertParser, TableRows
from standins.tdengine_double.insert_query import insert_query_error, is_insert_values
from standins.tdengine_double.lexer import lower_outside_quotes, tokenize
from standins.tdengine_double.planner import ExprCompiler
from standins.tdengine_double.query import plan_select
from standins.tdengine_double.reads import WrapSum, run_plan, select_constants
from standins.tdengine_double.results import ExecResult, QueryResult
from standins.tdengine_double.show import (
    describe,
    show_create_stable,
    show_databases,
    show_tables,
)
from standins.tdengine_double.sql import Parser
from standins.tdengine_double.statements import (
    Between,
    BinaryOp,
    CreateDatabase,
    CreateStable,
    Delete,
    Describe,
    DropDatabase,
    DropStable,
    SelectStmt,
    ShowCreateDatabase,
    ShowCreateStable,
    ShowDatabases,
    ShowStables,
    ShowTables,
    Statement,
    TableName,
    UseDatabase,
    column_names,
    conjuncts,
)

__all__ = ("DEFAULT_SERVER_VERSION", "MAX_SQL_BYTES", "Engine")

DEFAULT_SERVER_VERSION: Final = "3.3.6.6"
"""The version recorded from a real server (``../shared/tdengine-recorded``)."""
MAX_SQL_BYTES: Final = 1_048_576
"""taosc's ``TSDB_MAX_ALLOWED_SQL_LEN``: longer statements fail with 0x0219."""

MAX_KEY_BY_PRECISION: Final[dict[str, int]] = {
    "ms": 31_556_995_200_000,
    "us": 31_556_995_200_000_000,
    "ns": 9_214_646_400_000_000_000,
}
"""``tsMaxKeyByPrecision``: 2970-01-01 for ms/us, 2262-01-01 for ns."""

_INSERT_START: Final = re.compile(r"\s*insert(?![a-z0-9_])")


def _version_tuple(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in text.split("-")[0].split("."):
        if not piece.isdigit():
            break
        parts.append(int(piece))
    return tuple(parts)


class Engine:
    """Executes statements of the supported subset; thread-safe (one lock).

    Parameters
    ----------
    db_file:
        SQLite file for the data and catalog (``None``: in memory).
    server_version:
        What ``SELECT SERVER_VERSION()`` returns; it also picks version-dependent
        behaviour (``PRIMARY KEY`` before 3.3.6.3, ``COMPOSITE KEY`` from it).
    clock:
        Seconds since the epoch, for ``NOW`` and the KEEP window.
    """

    def __init__(
        self,
        *,
        db_file: str | None = None,
        server_version: str = DEFAULT_SERVER_VERSION,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.server_version = server_version
        self.version = _version_tuple(server_version)
        self.clock = clock
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(
            db_file or ":memory:", check_same_thread=False, isolation_level=None
        )
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.execute("PRAGMA journal_mode=" + ("WAL" if db_file else "MEMORY"))
        self.conn.execute("PRAGMA temp_store=MEMORY")
        self.conn.execute("PRAGMA cache_size=-262144")
        # typeshed expects an int-only aggregate; this one also sums REAL values
        self.conn.create_aggregate("wrapsum", 1, WrapSum)  # type: ignore[arg-type]
        self.schema = SchemaStore(self.conn, self.version)
        self.databases: dict[str, Database] = self.schema.databases

    # ------------------------------------------------------------ versions
    @property
    def key_keywords(self) -> tuple[str, ...]:
        """``COMPOSITE KEY`` or ``PRIMARY KEY`` from 3.3.6.3 on (both recorded on 3.3.6.6),
        only ``PRIMARY KEY`` before."""
        return ("composite", "primary") if self.version >= (3, 3, 6, 3) else ("primary",)

    def close(self) -> None:
        """Close the SQLite connection."""
        with self.lock:
            self.conn.close()

    # ---------------------------------------------------------------- clock
    def now_ms(self) -> int:
        """The clock in milliseconds."""
        return int(self.clock() * 1000)

    def now_ticks(self, precision: str) -> int:
        """The clock in ticks of ``precision``."""
        return int(self.clock() * PRECISION_UNITS[precision])

    def lookup_db(self, name: str) -> Database | None:
        """A database by name."""
        return self.databases.get(name)

    # -------------------------------------------------------------- execute
    def execute(
        self,
        sql: str,
        *,
        default_db: str | None = None,
    ) -> ExecResult | QueryResult:
        """Run one statement; raises :class:`TDengineError` the way TDengine fails it.

        ``default_db`` is the database named in ``/rest/sql/<db>`` (if it exists).
        """
        if len(sql.encode()) > MAX_SQL_BYTES:
            raise TDengineError(E.SQL_TOO_LONG, "SQL statement too long")
        lowered = lower_outside_quotes(sql)
        with self.lock:
            if default_db not in self.databases:
                default_db = None  # taosAdapter ignores a failing `use <db>`
            if _INSERT_START.match(lowered):
                if not is_insert_values(lowered):
                    raise insert_query_error(lowered)
                return self._insert(lowered, default_db)
            tokens = tokenize(lowered)
            stmt = Parser(lowered, tokens, key_keywords=self.key_keywords).statement()
            return self._dispatch(stmt, default_db)

    def _dispatch(self, stmt: Statement, default_db: str | None) -> ExecResult | QueryResult:
        if isinstance(stmt, SelectStmt):
            return self._select(stmt, default_db)
        if isinstance(stmt, CreateDatabase):
            return self.schema.create_database(stmt, self.now_ms())
        if isinstance(stmt, CreateStable):
            db = self._db_or_fail(stmt.table.db or default_db)
            return self.schema.create_stable(stmt, db, self.now_ms())
        if isinstance(stmt, ShowDatabases):
            return show_databases(self.databases)
        if isinstance(stmt, ShowStables | ShowTables):
            return show_tables(self._db_or_fail(stmt.db or default_db), stmt)
        if isinstance(stmt, Describe):
            stable, _ = self._table(stmt.table, default_db, describe=True)
            return describe(stable, self.version)
        if isinstance(stmt, ShowCreateStable):
            stable, sub = self._table(stmt.table, default_db, describe=True)
            if sub is not None or self.version < (3, 3, 6):
                raise not_implemented("SHOW CREATE of a subtable, or before 3.3.6")
            return show_create_stable(stable, self.version)
        if isinstance(stmt, ShowCreateDatabase):
            if stmt.name in SYSTEM_DBS:
                raise not_implemented("SHOW CREATE DATABASE of a system database")
            return show_create_database(self._db_or_fail(stmt.name))
        if isinstance(stmt, Delete):
            return self._delete(stmt, default_db)
        if isinstance(stmt, DropDatabase):
            return self.schema.drop_database(stmt)
        if isinstance(stmt, DropStable):
            return self.schema.drop_stable(stmt, self._db_or_fail(stmt.table.db or default_db))
        if isinstance(stmt, UseDatabase):
            self._db_or_fail(stmt.name)
            return ExecResult(0)
        raise AssertionError(stmt)  # pragma: no cover

    def _db_or_fail(self, name: str | None) -> Database:
        if name is None:
            raise TDengineError(E.PAR_DB_NOT_SPECIFIED, "Database not specified")
        db = self.databases.get(name)
        if db is None:
            raise TDengineError(E.DB_NOT_EXIST, "Database not exist")
        return db

    def _table(
        self, table: TableName, default_db: str | None, *, describe: bool = False
    ) -> tuple[StableDef, SubTable | None]:
        """A super table, or a subtable and its super table; fails as 3.3.6.6 does.

        Recorded: a missing database is "Fail to get table info, error: Database not
        exist" for a query; a missing table is "Fail to get table info, error: Table does
        not exist" for a query and "Table does not exist" for DESCRIBE. DESCRIBE of a
        missing database drops the prefix likewise (UNCONFIRMED).
        """
        name = table.db or default_db
        if name is None:
            raise TDengineError(E.PAR_DB_NOT_SPECIFIED, "Database not specified")
        db = self.databases.get(name)
        prefix = "" if describe else "Fail to get table info, error: "
        if db is None:
            raise TDengineError(E.DB_NOT_EXIST, prefix + "Database not exist")
        stable = db.stables.get(table.name)
        if stable is not None:
            return stable, None
        sub = db.subtables.get(table.name)
        if sub is None:
            if self.version < (3, 3, 6):
                desc = "Fail to get table info, error: Table does not exist"
                raise TDengineError(E.GET_META_ERROR, desc)
            raise TDengineError(E.TABLE_NOT_EXIST, prefix + "Table does not exist")
        return db.stables[sub.stable], sub

    # --------------------------------------------------------------- SELECT
    def _select(self, stmt: SelectStmt, default_db: str | None) -> QueryResult:
        if stmt.table is None:
            return select_constants(stmt, self.server_version)
        if stmt.table.db in SYSTEM_DBS:
            if (stmt.table.db, stmt.table.name) != ("information_schema", "ins_databases"):
                raise not_implemented(f"{stmt.table.db}.{stmt.table.name}")
            return select_ins_databases(self.conn, stmt, self.databases)
        stable, sub = self._table(stmt.table, default_db)
        precision = self.databases[stable.db].precision
        plan = plan_select(
            stmt,
            stable,
            precision,
            subtable=None if sub is None else sub.name,
            table_name=stmt.table.name,
        )
        db = self.databases[stable.db]
        tables = (
            [sub]
            if sub is not None
            else [t for t in db.subtables.values() if t.stable == stable.name]
        )
        return QueryResult(plan.columns, run_plan(self.conn, plan, tables), precision)

    # --------------------------------------------------------------- DELETE
    def _delete(self, stmt: Delete, default_db: str | None) -> ExecResult:
        """Delete the rows in a time range: conditions on the timestamp column only."""
        stable, sub = self._table(stmt.table, default_db)
        ts_name = stable.columns[0].name
        for conj in conjuncts(stmt.where):
            names = column_names(conj)
            if names != {ts_name}:
                raise TDengineError(
                    E.INVALID_DELETE_WHERE,
                    "The DELETE statement must only have a definite time window range",
                )
            if (
                not isinstance(conj, BinaryOp | Between)
                or getattr(conj, "negated", False)
                or (isinstance(conj, BinaryOp) and conj.op in ("!=", "or"))
            ):
                raise not_implemented("DELETE with a time condition other than a range")
        compiler = ExprCompiler(stable, self.databases[stable.db].precision, stmt.table.name)
        parts: list[str] = []
        params: list[object] = []
        if sub is not None:
            parts.append("tbname = ?")
            params.append(sub.name)
        if stmt.where is not None:
            w = compiler.expr(stmt.where, allow_agg=False)
            parts.append(w.sql)
            params.extend(w.params)
        sql = f'DELETE FROM "{stable.storage}"'
        if parts:
            sql += " WHERE " + " AND ".join(f"({p})" for p in parts)
        return ExecResult(self.conn.execute(sql, params).rowcount)

    # --------------------------------------------------------------- INSERT
    def _insert(
        self,
        lowered: str,
        default_db: str | None,
    ) -> ExecResult:
        parser = InsertParser(
            lowered,
            default_db=default_db,
            lookup_db=self.lookup_db,
            now_ticks=self.now_ticks,
        )
        clauses = parser.parse()
        self._check_time_window(clauses)
        return ExecResult(self._write(clauses))

    def _check_time_window(self, clauses: list[TableRows]) -> None:
        for tr in clauses:
            db = tr.db
            unit = PRECISION_UNITS[db.precision]
            low = self.now_ticks(db.precision) - db.keep_minutes * 60 * unit
            high = MAX_KEY_BY_PRECISION[db.precision]
            pos = tr.columns.index(0)
            for row in tr.rows:
                ts = row[pos]
                assert isinstance(ts, int)
                if ts < low or ts > high:
                    raise TDengineError(E.TIMESTAMP_OUT_OF_RANGE, "Timestamp data out of range")

    def _write(self, clauses: list[TableRows]) -> int:
        # key -> (stable, tags, {column index: value}); later values win per column
        merged: dict[str, dict[tuple[object, ...], tuple[tuple[object, ...], dict[int, object]]]]
        merged = {}
        stables: dict[str, StableDef] = {}
        new_tables: dict[tuple[str, str], TableRows] = {}
        for tr in clauses:
            stable = tr.stable
            stables[stable.storage] = stable
            if tr.create:
                new_tables.setdefault((tr.db.name, tr.tbname), tr)
            bucket = merged.setdefault(stable.storage, {})
            cols = tr.columns
            key_pos = [cols.index(k) for k in stable.key_indices]
            tbname = tr.tbname
            tags = tr.tags
            for row in tr.rows:
                key = (tbname, *(row[p] for p in key_pos))
                entry = bucket.get(key)
                if entry is None:
                    bucket[key] = (tags, dict(zip(cols, row, strict=True)))
                else:
                    entry[1].update(zip(cols, row, strict=True))
        affected = 0
        conn = self.conn
        conn.execute("BEGIN")
        try:
            for (db_name, name), tr in new_tables.items():
                conn.execute(
                    "INSERT INTO _td_subtable VALUES (?, ?, ?, ?)",
                    (db_name, name, tr.stable.name, json.dumps(list(tr.tags))),
                )
            for storage, bucket in merged.items():
                stable = stables[storage]
                affected += len(bucket)
                groups: dict[tuple[int, ...], list[tuple[object, ...]]] = {}
                for key, (tags, values) in bucket.items():
                    cols = tuple(sorted(values))
                    groups.setdefault(cols, []).append((key[0], *tags, *(values[c] for c in cols)))
                for cols, params in groups.items():
                    conn.executemany(self._upsert_sql(stable, cols), params)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        for (db_name, name), tr in new_tables.items():
            self.databases[db_name].subtables[name] = SubTable(
                db_name, name, tr.stable.name, tr.tags
            )
        return affected

    @staticmethod
    def _upsert_sql(stable: StableDef, cols: tuple[int, ...]) -> str:
        names = ["tbname"] + [f"t{j}" for j in range(len(stable.tags))]
        names += [f"c{i}" for i in cols]
        marks = ", ".join("?" for _ in names)
        key = ["tbname"] + [f"c{i}" for i in stable.key_indices]
        updates = [f"c{i} = excluded.c{i}" for i in cols if i not in stable.key_indices]
        action = "DO UPDATE SET " + ", ".join(updates) if updates else "DO NOTHING"
        return (
            f'INSERT INTO "{stable.storage}" ({", ".join(names)}) VALUES ({marks}) '
            f"ON CONFLICT ({', '.join(key)}) {action}"
        )
