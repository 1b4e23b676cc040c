"""Catalog listings of the stand-in: SHOW DATABASES / STABLES / TABLES and DESCRIBE."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from standins.tdengine_double.catalog import Database, DataType, StableDef, make_type
from standins.tdengine_double.ddl import SYSTEM_DBS
from standins.tdengine_double.results import QueryResult, ResultColumn
from standins.tdengine_double.statements import ShowStables, ShowTables

__all__ = ("describe", "format_minutes", "show_databases", "show_tables")

_ENCODE: Final[dict[str, str]] = {
    "ts": "delta-i",
    "bool": "bit-packing",
    "float": "delta-d",
    "str": "disabled",
    "nchar": "disabled",
}


def _vchar(n: int) -> DataType:
    return DataType("VARCHAR", "str", n)


def format_minutes(minutes: int) -> str:
    """A duration as TDengine prints it: whole days ``d``, whole hours ``h``, else ``m``."""
    if minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


def show_databases(databases: Mapping[str, Database]) -> QueryResult:
    """``SHOW DATABASES``: the system databases, then the others by creation time."""
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
    for sysdb in SYSTEM_DBS:
        rows.append((sysdb, *([None] * 14), "ready", *([None] * 13)))
    for db in sorted(databases.values(), key=lambda d: d.created_ms):
        keep = ",".join(format_minutes(k) for k in db.keep_all)
        rows.append(
            (
                db.name,
                db.created_ms,
                db.vgroups,
                len(db.subtables),
                1,
                "off",
                format_minutes(db.duration_minutes),
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


def show_tables(db: Database, stmt: ShowStables | ShowTables) -> QueryResult:
    """``SHOW [db.]STABLES`` or ``SHOW [db.]TABLES``: names in ``stable_name``/``table_name``."""
    if isinstance(stmt, ShowStables):
        names = sorted(db.stables)
        return QueryResult([ResultColumn.of("stable_name", _vchar(192))], [(n,) for n in names])
    return QueryResult(
        [ResultColumn.of("table_name", _vchar(192))], [(n,) for n in sorted(db.subtables)]
    )


def describe(stable: StableDef, version: tuple[int, ...]) -> QueryResult:
    """``DESCRIBE`` of a super table (or of a subtable, through its super table)."""
    with_compress = version >= (3, 3)
    cols = [
        ResultColumn.of("field", _vchar(64)),
        ResultColumn.of("type", _vchar(20)),
        ResultColumn.of("length", make_type("INT")),
        ResultColumn.of("note", _vchar(16 if with_compress else 8)),
    ]
    if with_compress:
        cols += [ResultColumn.of(n, _vchar(12)) for n in ("encode", "compress", "level")]
    key_note = "COMPOSITE KEY" if version >= (3, 3, 6, 3) else "PRIMARY KEY"
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
