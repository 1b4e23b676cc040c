"""Statement results: affected rows, or a result set with TDengine column metadata."""

from __future__ import annotations

from dataclasses import dataclass, field

from standins.tdengine_double.catalog import DataType

__all__ = ("ExecResult", "QueryResult", "ResultColumn")


@dataclass(frozen=True, slots=True)
class ResultColumn:
    """One ``column_meta`` entry: name, TDengine type name, length; ``kind`` drives JSON."""

    name: str
    type_name: str
    length: int
    kind: str
    """ts, bool, int, float, str or nchar."""

    @classmethod
    def of(cls, name: str, dtype: DataType) -> ResultColumn:
        """A result column carrying a data type's name, length and kind."""
        return cls(name, dtype.name, dtype.length, dtype.kind)


@dataclass(frozen=True, slots=True)
class ExecResult:
    """INSERT/DDL outcome."""

    affected_rows: int


@dataclass(slots=True)
class QueryResult:
    """A result set; TIMESTAMP values are raw ticks of ``precision``."""

    columns: list[ResultColumn]
    rows: list[tuple[object, ...]] = field(default_factory=list)
    precision: str = "ms"
