"""Schema objects of the stand-in: data types, super tables, subtables and databases."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

__all__ = (
    "PRECISION_UNITS",
    "ColumnDef",
    "DataType",
    "Database",
    "Precision",
    "StableDef",
    "SubTable",
    "TypeKind",
    "make_type",
)

Precision = Literal["ms", "us", "ns"]
TypeKind = Literal["ts", "bool", "int", "float", "str", "nchar"]

PRECISION_UNITS: Final[dict[str, int]] = {"ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
"""Ticks per second for each database precision."""

_INT_RANGES: Final[dict[str, tuple[int, int, int]]] = {
    # name: (min, max, bytes)
    "TINYINT": (-(2**7), 2**7 - 1, 1),
    "SMALLINT": (-(2**15), 2**15 - 1, 2),
    "INT": (-(2**31), 2**31 - 1, 4),
    "BIGINT": (-(2**63), 2**63 - 1, 8),
    "TINYINT UNSIGNED": (0, 2**8 - 1, 1),
    "SMALLINT UNSIGNED": (0, 2**16 - 1, 2),
    "INT UNSIGNED": (0, 2**32 - 1, 4),
    "BIGINT UNSIGNED": (0, 2**64 - 1, 8),
}


@dataclass(frozen=True, slots=True)
class DataType:
    """A TDengine column type: its REST/DESCRIBE name, length and value range."""

    name: str
    """As TDengine prints it: ``BIGINT``, ``VARCHAR``, ``TINYINT UNSIGNED``..."""
    kind: TypeKind
    length: int
    """DESCRIBE/``column_meta`` length: bytes for fixed types, declared n for strings."""
    min_value: int = 0
    max_value: int = 0

    @property
    def sqlite_affinity(self) -> str:
        """Column affinity used for storage."""
        if self.kind in ("str", "nchar"):
            return "TEXT"
        if self.kind == "float":
            return "REAL"
        return "INTEGER"

    @property
    def is_integer(self) -> bool:
        """Integer types (not BOOL, not TIMESTAMP)."""
        return self.kind == "int"

    @property
    def overflow_name(self) -> str:
        """The type word TDengine's insert parser uses in its messages."""
        base = self.name.lower()
        if base.endswith(" unsigned"):
            return "unsigned " + base.removesuffix(" unsigned")
        return base

    def ddl(self) -> str:
        """The type as it would be written in DDL."""
        if self.kind in ("str", "nchar"):
            return f"{self.name}({self.length})"
        return self.name


def make_type(name: str, length: int | None = None) -> DataType:
    """Build a :class:`DataType` from an upper-case TDengine type name."""
    if name in _INT_RANGES:
        lo, hi, size = _INT_RANGES[name]
        return DataType(name, "int", size, lo, hi)
    if name == "TIMESTAMP":
        return DataType(name, "ts", 8)
    if name == "BOOL":
        return DataType(name, "bool", 1)
    if name == "FLOAT":
        return DataType(name, "float", 4)
    if name == "DOUBLE":
        return DataType(name, "float", 8)
    if name in ("VARCHAR", "BINARY"):
        return DataType("VARCHAR", "str", length or 0)
    if name == "NCHAR":
        return DataType("NCHAR", "nchar", length or 0)
    raise ValueError(f"unsupported type {name}")


@dataclass(frozen=True, slots=True)
class ColumnDef:
    """One column or tag of a super table."""

    name: str
    type: DataType
    is_key: bool = False
    """The composite primary key (second column)."""


@dataclass(slots=True)
class StableDef:
    """A super table: columns (first is the timestamp), tags, and its storage table."""

    db: str
    name: str
    columns: tuple[ColumnDef, ...]
    tags: tuple[ColumnDef, ...]
    storage: str
    """Name of the SQLite table that holds its rows (tbname, tags, columns)."""
    created_ms: int = 0
    column_index: dict[str, int] = field(default_factory=dict)
    tag_index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.column_index = {c.name: i for i, c in enumerate(self.columns)}
        self.tag_index = {t.name: i for i, t in enumerate(self.tags)}

    @property
    def key_column(self) -> int | None:
        """Index of the composite key column, if the table has one."""
        if len(self.columns) > 1 and self.columns[1].is_key:
            return 1
        return None

    @property
    def key_indices(self) -> tuple[int, ...]:
        """Column indices that form a row's identity inside a subtable."""
        return (0, 1) if self.key_column is not None else (0,)


@dataclass(frozen=True, slots=True)
class SubTable:
    """A subtable (child table) and its immutable tag values."""

    db: str
    name: str
    stable: str
    tags: tuple[object, ...]


@dataclass(slots=True)
class Database:
    """A database and the options the stand-in enforces."""

    name: str
    precision: Precision = "ms"
    keep_minutes: int = 3650 * 1440
    """The write window: rows older than now minus this are rejected (the first KEEP)."""
    keep_all: tuple[int, int, int] = (3650 * 1440, 3650 * 1440, 3650 * 1440)
    duration_minutes: int = 10 * 1440
    wal_level: int = 1
    vgroups: int = 2
    buffer: int = 256
    created_ms: int = 0
    stables: dict[str, StableDef] = field(default_factory=dict)
    subtables: dict[str, SubTable] = field(default_factory=dict)
