"""The stand-in's engine: catalog, type checks, SQLite storage and overwrite semantics.

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
from collections.abc import Callable, Mapping
from typing import Final, Literal

from standins.tdengine_double import errors as E
from standins.tdengine_double.catalog import (
    PRECISION_UNITS,
    ColumnDef,
    Database,
    DataType,
    Precision,
    StableDef,
    SubTable,
    make_type,
)
from standins.tdengine_double.errors import TDengineError
from standins.tdengine_double.insert import InsertParser, TableRows
from standins.tdengine_double.query import plan_select
from standins.tdengine_double.results import ExecResult, QueryResult, ResultColumn
from standins.tdengine_double.sql import (
    BinaryOp,
    ColumnRef,
    CreateDatabase,
    CreateStable,
    Describe,
    DropDatabase,
    DropStable,
    FuncCall,
    Literal as LiteralExpr,
    Parser,
    SelectStmt,
    ShowDatabases,
    ShowStables,
    ShowTables,
    Statement,
    TableName,
    UseDatabase,
    lower_outside_quotes,
    tokenize,
)

__all__ = ("DEFAULT_SERVER_VERSION", "MAX_SQL_BYTES", "Engine", "SumOverflow")

DEFAULT_SERVER_VERSION: Final = "3.3.6.3"
MAX_SQL_BYTES: Final = 1_048_576
"""taosc's ``TSDB_MAX_ALLOWED_SQL_LEN``: longer statements fail with 0x0219."""

MAX_KEY_BY_PRECISION: Final[dict[str, int]] = {
    "ms": 31_556_995_200_000,
    "us": 31_556_995_200_000_000,
    "ns": 9_214_646_400_000_000_000,
}
"""``tsMaxKeyByPrecision``: 2970-01-01 for ms/us, 2262-01-01 for ns."""

SumOverflow = Literal["error", "wrap"]

_INSERT_START: Final = re.compile(r"\s*insert(?![a-z0-9_])")

_VARCHAR: Final = DataType("VARCHAR", "str", 0)
_SYSTEM_DBS: Final = ("information_schema", "performance_schema")
_ENCODE: Final[dict[str, str]] = {
    "ts": "delta-i",
    "bool": "bit-packing",
    "float": "delta-d",
    "str": "disabled",
    "nchar": "disabled",
}


def _vchar(n: int) -> DataType:
    return DataType("VARCHAR", "str", n)


def _version_tuple(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in text.split("-")[0].split("."):
        if not piece.isdigit():
            break
        parts.append(int(piece))
    return tuple(parts)


def _format_minutes(minutes: int) -> str:
    if minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


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
    sum_overflow:
        ``"error"`` (default) fails a SUM that leaves the BIGINT range with 0x0224;
        ``"wrap"`` wraps it to 64 bits as TDengine's int64 accumulator does.
    """

    def __init__(
        self,
        *,
        db_file: str | None = None,
        server_version: str = DEFAULT_SERVER_VERSION,
        clock: Callable[[], float] = time.time,
        sum_overflow: SumOverflow = "error",
    ) -> None:
        self.server_version = server_version
        self.version = _version_tuple(server_version)
        self.clock = clock
        self.sum_overflow: SumOverflow = sum_overflow
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(
            db_file or ":memory:", check_same_thread=False, isolation_level=None
        )
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.execute("PRAGMA journal_mode=" + ("WAL" if db_file else "MEMORY"))
        self.conn.execute("PRAGMA temp_store=MEMORY")
        self.conn.execute("PRAGMA cache_size=-262144")
        # typeshed expects an int-only aggregate; this one also sums REAL values
        self.conn.create_aggregate("wrapsum", 1, _WrapSum)  # type: ignore[arg-type]
        self.databases: dict[str, Database] = {}
        self._storage_seq = 0
        self._init_meta()

    # ------------------------------------------------------------ versions
    @property
    def pk_keyword(self) -> str:
        """``composite`` from 3.3.6.3 on, ``primary`` before (the other one is rejected)."""
        return "composite" if self.version >= (3, 3, 6, 3) else "primary"

    def close(self) -> None:
        """Close the SQLite connection."""
        with self.lock:
            self.conn.close()

    # -------------------------------------------------------------- catalog
    def _init_meta(self) -> None:
        c = self.conn
        c.execute("CREATE TABLE IF NOT EXISTS _td_db (name TEXT PRIMARY KEY, spec TEXT)")
        c.execute(
            "CREATE TABLE IF NOT EXISTS _td_stable "
            "(db TEXT, name TEXT, spec TEXT, PRIMARY KEY (db, name))"
        )
        c.execute(
            "CREATE TABLE IF NOT EXISTS _td_subtable "
            "(db TEXT, name TEXT, stable TEXT, tags TEXT, PRIMARY KEY (db, name))"
        )
        for name, spec in c.execute("SELECT name, spec FROM _td_db").fetchall():
            d = json.loads(spec)
            self.databases[name] = Database(
                name,
                d["precision"],
                d["keep_minutes"],
                tuple(d["keep_all"]),
                d["duration_minutes"],
                d["wal_level"],
                d["vgroups"],
                d["buffer"],
                d["created_ms"],
            )
        for db, name, spec in c.execute("SELECT db, name, spec FROM _td_stable").fetchall():
            d = json.loads(spec)
            stable = StableDef(
                db,
                name,
                tuple(_column_from_json(x) for x in d["columns"]),
                tuple(_column_from_json(x) for x in d["tags"]),
                d["storage"],
                d["created_ms"],
            )
            self.databases[db].stables[name] = stable
            self._storage_seq = max(self._storage_seq, int(d["storage"].rsplit("_", 1)[1]))
        for db, name, stable_name, tags in c.execute(
            "SELECT db, name, stable, tags FROM _td_subtable"
        ).fetchall():
            self.databases[db].subtables[name] = SubTable(
                db, name, stable_name, tuple(json.loads(tags))
            )

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
        subtable_errors: Mapping[str, tuple[int, str]] | None = None,
    ) -> ExecResult | QueryResult:
        """Run one statement; raises :class:`TDengineError` the way TDengine fails it.

        ``default_db`` is the database named in ``/rest/sql/<db>`` (if it exists);
        ``subtable_errors`` makes any INSERT that touches one of those subtables fail.
        """
        if len(sql.encode()) > MAX_SQL_BYTES:
            raise TDengineError(E.SQL_TOO_LONG, "SQL statement too long")
        lowered = lower_outside_quotes(sql)
        with self.lock:
            if default_db not in self.databases:
                default_db = None  # taosAdapter ignores a failing `use <db>`
            if _INSERT_START.match(lowered):
                return self._insert(lowered, default_db, subtable_errors or {})
            tokens = tokenize(lowered)
            stmt = Parser(lowered, tokens, pk_keyword=self.pk_keyword).statement()
            return self._dispatch(stmt, default_db)

    def _dispatch(self, stmt: Statement, default_db: str | None) -> ExecResult | QueryResult:
        if isinstance(stmt, SelectStmt):
            return self._select(stmt, default_db)
        if isinstance(stmt, CreateDatabase):
            return self._create_database(stmt)
        if isinstance(stmt, CreateStable):
            return self._create_stable(stmt, default_db)
        if isinstance(stmt, ShowDatabases):
            return self._show_databases()
        if isinstance(stmt, ShowStables | ShowTables):
            return self._show_tables(stmt, default_db)
        if isinstance(stmt, Describe):
            return self._describe(stmt.table, default_db)
        if isinstance(stmt, DropDatabase):
            return self._drop_database(stmt)
        if isinstance(stmt, DropStable):
            return self._drop_stable(stmt, default_db)
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

    def _missing_table(self) -> TDengineError:
        code = E.TABLE_NOT_EXIST if self.version >= (3, 3, 6) else E.GET_META_ERROR
        return TDengineError(code, "Fail to get table info, error: Table does not exist")

    # ------------------------------------------------------------------ DDL
    def _create_database(self, stmt: CreateDatabase) -> ExecResult:
        if stmt.name in self.databases or stmt.name in _SYSTEM_DBS:
            if stmt.if_not_exists:
                return ExecResult(0)
            raise TDengineError(E.DB_ALREADY_EXISTS, "Database already exists")
        precision = stmt.precision if stmt.precision is not None else "ms"
        if precision not in PRECISION_UNITS:
            raise TDengineError(E.INVALID_DB_OPTION, f"Invalid option precision: {precision}")
        duration = stmt.duration_minutes if stmt.duration_minutes is not None else 10 * 1440
        if not 60 <= duration <= 3650 * 1440:
            raise TDengineError(
                E.INVALID_DB_OPTION,
                f"Invalid option duration: {duration}m, valid range: [60m, 5256000m]",
            )
        keep = stmt.keep_minutes or (3650 * 1440,)
        if len(keep) > 3:
            raise TDengineError(E.INVALID_DB_OPTION, "Invalid number of keep options")
        padded = (*keep, keep[-1], keep[-1])
        keep_all = (padded[0], padded[1], padded[2])
        for k in keep_all:
            if not 1440 <= k <= 365000 * 1440:
                raise TDengineError(
                    E.INVALID_DB_OPTION,
                    f"Invalid option keep value: {k}m, valid range: [1440m, 525600000m]",
                )
        if not keep_all[0] <= keep_all[1] <= keep_all[2]:
            raise TDengineError(
                E.INVALID_DB_OPTION, "Invalid keep value, should be keep0 <= keep1 <= keep2"
            )
        if keep_all[0] < 3 * duration:
            raise TDengineError(
                E.INVALID_DB_OPTION,
                "Invalid duration value, should be keep2 >= keep1 >= keep0 >= 3 * duration",
            )
        wal = stmt.wal_level if stmt.wal_level is not None else 1
        if wal not in (1, 2):
            raise TDengineError(E.INVALID_DB_OPTION, f"Invalid option wal_level: {wal}")
        vgroups = stmt.vgroups if stmt.vgroups is not None else 2
        if not 1 <= vgroups <= 1024:
            raise TDengineError(E.INVALID_DB_OPTION, f"Invalid option vgroups: {vgroups}")
        buffer = stmt.buffer if stmt.buffer is not None else 256
        if not 3 <= buffer <= 16384:
            raise TDengineError(E.INVALID_DB_OPTION, f"Invalid option buffer: {buffer}")
        prec: Precision = "ms" if precision == "ms" else ("us" if precision == "us" else "ns")
        db = Database(
            stmt.name, prec, keep_all[0], keep_all, duration, wal, vgroups, buffer, self.now_ms()
        )
        spec = {
            "precision": db.precision,
            "keep_minutes": db.keep_minutes,
            "keep_all": list(db.keep_all),
            "duration_minutes": db.duration_minutes,
            "wal_level": db.wal_level,
            "vgroups": db.vgroups,
            "buffer": db.buffer,
            "created_ms": db.created_ms,
        }
        self.conn.execute("INSERT INTO _td_db VALUES (?, ?)", (db.name, json.dumps(spec)))
        self.databases[db.name] = db
        return ExecResult(0)

    def _create_stable(self, stmt: CreateStable, default_db: str | None) -> ExecResult:
        db = self._db_or_fail(stmt.table.db or default_db)
        name = stmt.table.name
        if name in db.stables:
            if stmt.if_not_exists:
                return ExecResult(0)
            raise TDengineError(E.STABLE_ALREADY_EXISTS, "STable already exists")
        if name in db.subtables:
            raise TDengineError(E.TABLE_ALREADY_EXISTS, "Table already exists")
        seen: set[str] = set()
        tags: list[ColumnDef] = []
        for t in stmt.tags:
            if t.name in seen:
                raise TDengineError(E.DUPLICATED_COLUMN, "Duplicated column names")
            seen.add(t.name)
            self._check_var_length(t.type, 16382)
            tags.append(ColumnDef(t.name, t.type))
        if len(stmt.columns) < 2:
            raise TDengineError(E.INVALID_COLUMNS_NUM, "Illegal number of columns")
        columns: list[ColumnDef] = []
        for i, c in enumerate(stmt.columns):
            if i == 0 and c.type.kind != "ts":
                raise TDengineError(E.INVALID_FIRST_COLUMN, "First column must be timestamp")
            if c.key_keyword is not None:
                prefix = "composite " if self.version >= (3, 3, 6) else ""  # as recorded
                if i != 1:
                    raise TDengineError(
                        E.PK_SECOND_COLUMN, f"{prefix}primary key column must be second column"
                    )
                if c.type.name not in ("INT", "INT UNSIGNED", "BIGINT", "BIGINT UNSIGNED") and (
                    c.type.kind != "str"
                ):
                    raise TDengineError(
                        E.PK_COLUMN_TYPE,
                        f"{prefix}primary key column must be of type int, uint, bigint, "
                        "ubigint, and varchar",
                    )
            if c.name in seen:
                raise TDengineError(E.DUPLICATED_COLUMN, "Duplicated column names")
            seen.add(c.name)
            self._check_var_length(c.type, 65517)
            columns.append(ColumnDef(c.name, c.type, c.key_keyword is not None))
        self._storage_seq += 1
        storage = f"_td_rows_{self._storage_seq}"
        stable = StableDef(db.name, name, tuple(columns), tuple(tags), storage, self.now_ms())
        self._create_storage(stable)
        spec = {
            "columns": [_column_to_json(c) for c in stable.columns],
            "tags": [_column_to_json(t) for t in stable.tags],
            "storage": storage,
            "created_ms": stable.created_ms,
        }
        self.conn.execute(
            "INSERT INTO _td_stable VALUES (?, ?, ?)", (db.name, name, json.dumps(spec))
        )
        db.stables[name] = stable
        return ExecResult(0)

    @staticmethod
    def _check_var_length(dtype: DataType, limit: int) -> None:
        if dtype.kind in ("str", "nchar") and not 1 <= dtype.length <= limit:
            raise TDengineError(
                E.INVALID_VAR_COLUMN_LEN, "Invalid column length for var length type"
            )

    def _create_storage(self, stable: StableDef) -> None:
        cols = ["tbname TEXT NOT NULL"]
        cols += [f"t{j} {t.type.sqlite_affinity}" for j, t in enumerate(stable.tags)]
        cols += [f"c{i} {c.type.sqlite_affinity}" for i, c in enumerate(stable.columns)]
        key = ", ".join(["tbname"] + [f"c{i}" for i in stable.key_indices])
        self.conn.execute(
            f'CREATE TABLE "{stable.storage}" ({", ".join(cols)}, PRIMARY KEY ({key})) '
            "WITHOUT ROWID"
        )
        # TDengine stores rows in time order; an index on ts lets a time-range query read
        # only its range (performance only: results are the same without it).
        self.conn.execute(f'CREATE INDEX "{stable.storage}_ts" ON "{stable.storage}" (c0)')

    def _drop_database(self, stmt: DropDatabase) -> ExecResult:
        db = self.databases.get(stmt.name)
        if db is None:
            if stmt.if_exists:
                return ExecResult(0)
            raise TDengineError(E.DB_NOT_EXIST, "Database not exist")
        self.conn.execute("BEGIN")
        try:
            for stable in db.stables.values():
                self.conn.execute(f'DROP TABLE IF EXISTS "{stable.storage}"')
            self.conn.execute("DELETE FROM _td_subtable WHERE db = ?", (db.name,))
            self.conn.execute("DELETE FROM _td_stable WHERE db = ?", (db.name,))
            self.conn.execute("DELETE FROM _td_db WHERE name = ?", (db.name,))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        del self.databases[db.name]
        return ExecResult(0)

    def _drop_stable(self, stmt: DropStable, default_db: str | None) -> ExecResult:
        db = self._db_or_fail(stmt.table.db or default_db)
        stable = db.stables.get(stmt.table.name)
        if stable is None:
            if stmt.if_exists:
                return ExecResult(0)
            raise TDengineError(0x0362, "STable not exist")
        self.conn.execute("BEGIN")
        try:
            self.conn.execute(f'DROP TABLE IF EXISTS "{stable.storage}"')
            self.conn.execute(
                "DELETE FROM _td_subtable WHERE db = ? AND stable = ?", (db.name, stable.name)
            )
            self.conn.execute(
                "DELETE FROM _td_stable WHERE db = ? AND name = ?", (db.name, stable.name)
            )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        del db.stables[stable.name]
        for name in [n for n, s in db.subtables.items() if s.stable == stable.name]:
            del db.subtables[name]
        return ExecResult(0)

    # ---------------------------------------------------------------- SHOW
    def _show_databases(self) -> QueryResult:
        cols = [
            ResultColumn.of("name", _vchar(64)),
            ResultColumn.of("create_time", make_type("TIMESTAMP")),
            ResultColumn.of("vgroups", make_type("INT")),
            ResultColumn.of("ntables", make_type("BIGINT")),
            ResultColumn.of("replica", make_type("TINYINT")),
            ResultColumn.of("strict", _vchar(4)),
            ResultColumn.of("duration", _vchar(10)),
            ResultColumn.of("keep", _vchar(32)),
            ResultColumn.of("buffer", make_type("INT")),
            ResultColumn.of("pagesize", make_type("INT")),
            ResultColumn.of("pages", make_type("INT")),
            ResultColumn.of("minrows", make_type("INT")),
            ResultColumn.of("maxrows", make_type("INT")),
            ResultColumn.of("comp", make_type("TINYINT")),
            ResultColumn.of("precision", _vchar(2)),
            ResultColumn.of("status", _vchar(10)),
            ResultColumn.of("retentions", _vchar(60)),
            ResultColumn.of("single_stable", make_type("BOOL")),
            ResultColumn.of("cachemodel", _vchar(11)),
            ResultColumn.of("cachesize", make_type("INT")),
            ResultColumn.of("wal_level", make_type("TINYINT")),
            ResultColumn.of("wal_fsync_period", make_type("INT")),
            ResultColumn.of("wal_retention_period", make_type("INT")),
            ResultColumn.of("wal_retention_size", make_type("BIGINT")),
            ResultColumn.of("stt_trigger", make_type("SMALLINT")),
            ResultColumn.of("table_prefix", make_type("SMALLINT")),
            ResultColumn.of("table_suffix", make_type("SMALLINT")),
            ResultColumn.of("tsdb_pagesize", make_type("INT")),
            ResultColumn.of("keep_time_offset", make_type("INT")),
        ]
        rows: list[tuple[object, ...]] = []
        for sysdb in _SYSTEM_DBS:
            rows.append((sysdb, *([None] * 14), "ready", *([None] * 13)))
        for db in sorted(self.databases.values(), key=lambda d: d.created_ms):
            keep = ",".join(_format_minutes(k) for k in db.keep_all)
            rows.append(
                (
                    db.name,
                    db.created_ms,
                    db.vgroups,
                    len(db.subtables),
                    1,
                    "off",
                    _format_minutes(db.duration_minutes),
                    keep,
                    db.buffer,
                    4,
                    256,
                    100,
                    4096,
                    2,
                    db.precision,
                    "ready",
                    None,
                    False,
                    "none",
                    1,
                    db.wal_level,
                    3000,
                    3600 if db.wal_level else 0,
                    0,
                    2,
                    0,
                    0,
                    4,
                    0,
                )
            )
        return QueryResult(cols, rows, "ms")

    def _show_tables(self, stmt: ShowStables | ShowTables, default_db: str | None) -> QueryResult:
        db = self._db_or_fail(stmt.db or default_db)
        if isinstance(stmt, ShowStables):
            names = sorted(db.stables)
            return QueryResult([ResultColumn.of("stable_name", _vchar(192))], [(n,) for n in names])
        return QueryResult(
            [ResultColumn.of("table_name", _vchar(192))], [(n,) for n in sorted(db.subtables)]
        )

    def _describe(self, table: TableName, default_db: str | None) -> QueryResult:
        db = self._db_or_fail(table.db or default_db)
        stable = db.stables.get(table.name)
        if stable is None:
            sub = db.subtables.get(table.name)
            if sub is None:
                raise self._missing_table()
            stable = db.stables[sub.stable]
        with_compress = self.version >= (3, 3)
        cols = [
            ResultColumn.of("field", _vchar(64)),
            ResultColumn.of("type", _vchar(20)),
            ResultColumn.of("length", make_type("INT")),
            ResultColumn.of("note", _vchar(16 if with_compress else 8)),
        ]
        if with_compress:
            cols += [ResultColumn.of(n, _vchar(12)) for n in ("encode", "compress", "level")]
        key_note = "COMPOSITE KEY" if self.pk_keyword == "composite" else "PRIMARY KEY"
        rows: list[tuple[object, ...]] = []
        for c in stable.columns:
            note = key_note if c.is_key else ""
            row: tuple[object, ...] = (c.name, c.type.name, c.type.length, note)
            if with_compress:
                encode = "simple8b" if c.type.kind == "int" else _ENCODE[c.type.kind]
                if c.type.kind == "int" and c.type.length == 8:
                    encode = "delta-i"
                row += (encode, "lz4", "medium")
            rows.append(row)
        for t in stable.tags:
            row = (t.name, t.type.name, t.type.length, "TAG")
            if with_compress:
                row += ("disabled", "disabled", "disabled")
            rows.append(row)
        return QueryResult(cols, rows)

    # --------------------------------------------------------------- SELECT
    def _select(self, stmt: SelectStmt, default_db: str | None) -> QueryResult:
        if stmt.table is None:
            item = stmt.items[0] if len(stmt.items) == 1 else None
            if item is None or not (
                isinstance(item.expr, FuncCall) and item.expr.name == "server_version"
            ):
                raise E.par_syntax_error(stmt.items[0].text if stmt.items else "")
            name = item.alias or item.text
            return QueryResult([ResultColumn.of(name, _vchar(30))], [(self.server_version,)], "ms")
        if (stmt.table.db, stmt.table.name) == ("information_schema", "ins_databases"):
            return self._ins_databases_precision(stmt)
        db = self._db_or_fail(stmt.table.db or default_db)
        stable = db.stables.get(stmt.table.name)
        subtable: str | None = None
        if stable is None:
            sub = db.subtables.get(stmt.table.name)
            if sub is None:
                raise self._missing_table()
            stable = db.stables[sub.stable]
            subtable = sub.name
        plan = plan_select(
            stmt, stable, db.precision, subtable=subtable, table_name=stmt.table.name
        )
        sql = plan.sql
        if self.sum_overflow == "wrap":
            sql = sql.replace("SUM(", "wrapsum(")
        try:
            rows = self.conn.execute(sql, plan.params).fetchall()
        except sqlite3.OperationalError as exc:
            if "integer overflow" in str(exc):
                raise TDengineError(
                    E.VALUE_OUT_OF_RANGE,
                    "Value out of range: SUM overflowed BIGINT (the TDengine stand-in fails "
                    "here; TDengine itself wraps the 64-bit sum)",
                ) from None
            raise
        if plan.aggregate_without_group:
            if rows and rows[0][-1] == 0 and not plan.has_count:
                rows = []
            rows = [r[:-1] for r in rows]
        return QueryResult(plan.columns, rows, db.precision)

    def _ins_databases_precision(self, stmt: SelectStmt) -> QueryResult:
        """``SELECT name, `precision` FROM information_schema.ins_databases [WHERE name = '…']``.

        Only this shape (what the worker sends to read a database's precision, as a real
        3.3.6.6 answers it); any other query of the system table is a syntax error.
        """
        names = [i.expr.name if isinstance(i.expr, ColumnRef) else None for i in stmt.items]
        where = stmt.where
        wanted: str | None = None
        if (
            isinstance(where, BinaryOp)
            and where.op == "="
            and isinstance(where.left, ColumnRef)
            and where.left.name == "name"
            and isinstance(where.right, LiteralExpr)
            and where.right.kind == "str"
        ):
            wanted = str(where.right.value)
        if stmt.star or names != ["name", "precision"] or (where is not None and wanted is None):
            raise E.par_syntax_error(stmt.items[0].text if stmt.items else "")
        rows = [(n, "ms") for n in _SYSTEM_DBS]
        rows += [(db.name, db.precision) for db in self.databases.values()]
        cols = [ResultColumn.of("name", _vchar(64)), ResultColumn.of("precision", _vchar(2))]
        return QueryResult(cols, [r for r in rows if wanted is None or r[0] == wanted])

    # --------------------------------------------------------------- INSERT
    def _insert(
        self,
        lowered: str,
        default_db: str | None,
        subtable_errors: Mapping[str, tuple[int, str]],
    ) -> ExecResult:
        parser = InsertParser(
            lowered,
            default_db=default_db,
            lookup_db=self.lookup_db,
            now_ticks=self.now_ticks,
        )
        clauses = parser.parse()
        for tr in clauses:
            fault = subtable_errors.get(tr.tbname)
            if fault is not None:
                raise TDengineError(fault[0], fault[1])
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


class _WrapSum:
    """SQLite aggregate: a 64-bit two's-complement sum, as TDengine's int64 accumulator."""

    def __init__(self) -> None:
        self.total: int | float | None = None

    def step(self, value: object) -> None:
        if not isinstance(value, int | float):
            return
        total = (self.total or 0) + value
        if isinstance(total, int):
            total = (total + 2**63) % 2**64 - 2**63
        self.total = total

    def finalize(self) -> int | float | None:
        return self.total


def _column_to_json(c: ColumnDef) -> dict[str, object]:
    return {"name": c.name, "type": c.type.name, "length": c.type.length, "key": c.is_key}


def _column_from_json(d: dict[str, object]) -> ColumnDef:
    name = str(d["name"])
    tname = str(d["type"])
    length = d["length"]
    assert isinstance(length, int)
    dtype = make_type(tname, length) if tname in ("VARCHAR", "NCHAR") else make_type(tname)
    return ColumnDef(name, dtype, bool(d["key"]))
