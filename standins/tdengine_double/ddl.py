"""Schema statements of the stand-in: databases and super tables, kept in SQLite.

The catalog lives in three SQLite tables (``_td_db``, ``_td_stable``,
``_td_subtable``) next to one storage table per super table, so a file-backed
stand-in keeps its schema across restarts.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Final

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
from standins.tdengine_double.results import ExecResult
from standins.tdengine_double.statements import (
    CreateDatabase,
    CreateStable,
    DropDatabase,
    DropStable,
)

__all__ = ("SYSTEM_DBS", "SchemaStore")

SYSTEM_DBS: Final = ("information_schema", "performance_schema")
"""Databases every TDengine server has."""


class SchemaStore:
    """Databases, super tables and subtables, in memory and in SQLite.

    ``version`` is the emulated server version (it picks some error texts).
    """

    def __init__(self, conn: sqlite3.Connection, version: tuple[int, ...]) -> None:
        self.conn = conn
        self.version = version
        self.databases: dict[str, Database] = {}
        self._storage_seq = 0
        self.load()

    def load(self) -> None:
        """Create the catalog tables if needed and read back what they hold."""
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

    def create_database(self, stmt: CreateDatabase, now_ms: int) -> ExecResult:
        """``CREATE DATABASE``: options checked as TDengine checks them."""
        if stmt.name in self.databases or stmt.name in SYSTEM_DBS:
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
            stmt.name, prec, keep_all[0], keep_all, duration, wal, vgroups, buffer, now_ms
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

    def create_stable(self, stmt: CreateStable, db: Database, now_ms: int) -> ExecResult:
        """``CREATE STABLE`` in ``db``, with its SQLite storage table."""
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
            _check_var_length(t.type, 16382)
            tags.append(ColumnDef(t.name, t.type))
        if len(stmt.columns) < 2:
            raise TDengineError(E.INVALID_COLUMNS_NUM, "Illegal number of columns")
        columns: list[ColumnDef] = []
        for i, c in enumerate(stmt.columns):
            if i == 0 and c.type.kind != "ts":
                raise TDengineError(E.INVALID_FIRST_COLUMN, "First column must be timestamp")
            if c.key_keyword is not None:
                # both texts recorded on 3.3.6.6 with the "composite " prefix
                prefix = "composite " if self.version >= (3, 3, 6) else ""
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
            _check_var_length(c.type, 65517)
            columns.append(ColumnDef(c.name, c.type, c.key_keyword is not None))
        self._storage_seq += 1
        storage = f"_td_rows_{self._storage_seq}"
        stable = StableDef(db.name, name, tuple(columns), tuple(tags), storage, now_ms)
        self.create_storage(stable)
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

    def create_storage(self, stable: StableDef) -> None:
        """The SQLite table holding ``stable``'s rows, keyed like TDengine rows."""
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

    def drop_database(self, stmt: DropDatabase) -> ExecResult:
        """``DROP DATABASE`` and every row stored in it."""
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

    def drop_stable(self, stmt: DropStable, db: Database) -> ExecResult:
        """``DROP STABLE`` in ``db`` with its subtables and rows."""
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


def _check_var_length(dtype: DataType, limit: int) -> None:
    if dtype.kind in ("str", "nchar") and not 1 <= dtype.length <= limit:
        raise TDengineError(E.INVALID_VAR_COLUMN_LEN, "Invalid column length for var length type")


def _column_to_json(c: ColumnDef) -> dict[str, object]:
    return {"name": c.name, "type": c.type.name, "length": c.type.length, "key": c.is_key}


def _column_from_json(d: dict[str, object]) -> ColumnDef:
    name = str(d["name"])
    tname = str(d["type"])
    length = d["length"]
    assert isinstance(length, int)
    dtype = make_type(tname, length) if tname in ("VARCHAR", "NCHAR") else make_type(tname)
    return ColumnDef(name, dtype, bool(d["key"]))
