"""Catalog listings of the stand-in: SHOW DATABASES / STABLES / TABLES, DESCRIBE and
``SHOW CREATE STABLE``, with the columns and values 3.3.6.6 answers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from standins.tdengine_double.catalog import Database, DataType, StableDef, make_type
from standins.tdengine_double.ddl import SYSTEM_DBS
from standins.tdengine_double.results import QueryResult, ResultColumn
from standins.tdengine_double.statements import ShowStables, ShowTables

__all__ = ("describe", "show_create_stable", "show_databases", "show_tables")

_COMPRESSION: Final[dict[str, tuple[str, str]]] = {
    # recorded on 3.3.6.6
    "TIMESTAMP": ("delta-i", "lz4"),
    "BIGINT": ("simple8b", "lz4"),
    "INT": ("simple8b", "lz4"),
    "TINYINT": ("simple8b", "zlib"),
    "BOOL": ("bit-packing", "zstd"),
    # TDengine's compression docs as we read them: UNCONFIRMED by a recording
    "SMALLINT": ("simple8b", "zlib"),
    "TINYINT UNSIGNED": ("simple8b", "zlib"),
    "SMALLINT UNSIGNED": ("simple8b", "zlib"),
    "INT UNSIGNED": ("simple8b", "lz4"),
    "BIGINT UNSIGNED": ("simple8b", "lz4"),
    "FLOAT": ("delta-d", "lz4"),
    "DOUBLE": ("delta-d", "lz4"),
    "VARCHAR": ("disabled", "zstd"),
    "NCHAR": ("disabled", "zstd"),
}
"""Default (encode, compress) of a column by type; the level is always ``medium``."""


def _vchar(n: int) -> DataType:
    return DataType("VARCHAR", "str", n)


def show_databases(databases: Mapping[str, Database]) -> QueryResult:
    """``SHOW DATABASES``: one column, ``name`` (the precision is in ins_databases)."""
    names = [*SYSTEM_DBS, *(d.name for d in sorted(databases.values(), key=_created))]
    return QueryResult([ResultColumn.of("name", _vchar(64))], [(n,) for n in names])


def _created(db: Database) -> int:
    return db.created_ms


def show_tables(db: Database, stmt: ShowStables | ShowTables) -> QueryResult:
    """``SHOW [db.]STABLES`` or ``SHOW [db.]TABLES``: names in ``stable_name``/``table_name``."""
    if isinstance(stmt, ShowStables):
        names = sorted(db.stables)
        return QueryResult([ResultColumn.of("stable_name", _vchar(192))], [(n,) for n in names])
    return QueryResult(
        [ResultColumn.of("table_name", _vchar(192))], [(n,) for n in sorted(db.subtables)]
    )


def _key_note(version: tuple[int, ...]) -> str:
    """``COMPOSITE KEY`` from 3.3.6.3 on, whichever keyword created the table."""
    return "COMPOSITE KEY" if version >= (3, 3, 6, 3) else "PRIMARY KEY"


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
    key_note = _key_note(version)
    rows: list[tuple[object, ...]] = []
    for c in stable.columns:
        note = key_note if c.is_key else ""
        row: tuple[object, ...] = (c.name, c.type.name, c.type.length, note)
        if with_compress:
            row += (*_COMPRESSION[c.type.name], "medium")
        rows.append(row)
    for t in stable.tags:
        row = (t.name, t.type.name, t.type.length, "TAG")
        if with_compress:
            row += ("disabled", "disabled", "disabled")
        rows.append(row)
    return QueryResult(cols, rows)


def show_create_stable(stable: StableDef, version: tuple[int, ...]) -> QueryResult:
    """``SHOW CREATE STABLE``: every column with its encoding, then the tags (3.3.6.6 text)."""
    key = f" {_key_note(version)}"
    columns = ", ".join(
        f"`{c.name}` {c.type.ddl()} ENCODE '{_COMPRESSION[c.type.name][0]}' "
        f"COMPRESS '{_COMPRESSION[c.type.name][1]}' LEVEL 'medium'{key if c.is_key else ''}"
        for c in stable.columns
    )
    tags = ", ".join(f"`{t.name}` {t.type.ddl()}" for t in stable.tags)
    text = f"CREATE STABLE `{stable.name}` ({columns}) TAGS ({tags})"
    cols = [ResultColumn.of("Table", _vchar(193)), ResultColumn.of("Create Table", _vchar(3145726))]
    return QueryResult(cols, [(stable.name, text)])
