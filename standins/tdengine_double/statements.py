"""Parsed statements and expressions of the SQL subset the stand-in accepts."""

from __future__ import annotations

from dataclasses import dataclass, field

from standins.tdengine_double.catalog import DataType

__all__ = (
    "Between",
    "BinaryOp",
    "Cast",
    "ColumnDefAst",
    "ColumnRef",
    "CreateDatabase",
    "CreateStable",
    "Delete",
    "Describe",
    "DropDatabase",
    "DropStable",
    "Expr",
    "FuncCall",
    "InList",
    "IsNull",
    "Literal",
    "Not",
    "SelectItem",
    "SelectStmt",
    "ShowCreateDatabase",
    "ShowCreateStable",
    "ShowDatabases",
    "ShowStables",
    "ShowTables",
    "Statement",
    "TableName",
    "UseDatabase",
    "column_names",
    "conjuncts",
)


@dataclass(frozen=True, slots=True)
class TableName:
    """A possibly db-qualified table name."""

    db: str | None
    name: str
    pos: int
    end: int


@dataclass(frozen=True, slots=True)
class ColumnRef:
    """A column, tag or ``tbname`` reference."""

    name: str
    text: str


@dataclass(frozen=True, slots=True)
class Literal:
    """A constant; ``kind`` is int, float, str, bool or null."""

    value: object
    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class FuncCall:
    """count/sum/min/max/avg/last_row/server_version; ``star`` for ``count(*)``."""

    name: str
    args: tuple[Expr, ...]
    star: bool
    text: str


@dataclass(frozen=True, slots=True)
class Cast:
    """``CAST(expr AS type)``."""

    expr: Expr
    type: DataType
    text: str


@dataclass(frozen=True, slots=True)
class BinaryOp:
    """A comparison (= != < <= > >=) or AND/OR."""

    op: str
    left: Expr
    right: Expr
    text: str


@dataclass(frozen=True, slots=True)
class Not:
    """``NOT expr``."""

    expr: Expr
    text: str


@dataclass(frozen=True, slots=True)
class InList:
    """``expr [NOT] IN (v, ...)``."""

    expr: Expr
    values: tuple[Literal, ...]
    negated: bool
    text: str


@dataclass(frozen=True, slots=True)
class IsNull:
    """``expr IS [NOT] NULL``."""

    expr: Expr
    negated: bool
    text: str


@dataclass(frozen=True, slots=True)
class Between:
    """``expr [NOT] BETWEEN lo AND hi``."""

    expr: Expr
    low: Expr
    high: Expr
    negated: bool
    text: str


Expr = ColumnRef | Literal | FuncCall | Cast | BinaryOp | Not | InList | IsNull | Between


@dataclass(frozen=True, slots=True)
class SelectItem:
    """One output expression, its alias and its original text."""

    expr: Expr
    alias: str | None
    text: str


@dataclass(slots=True)
class SelectStmt:
    """A single-table SELECT (``table`` None: constants only, e.g. ``SELECT 1``)."""

    items: list[SelectItem]
    star: bool
    table: TableName | None
    where: Expr | None = None
    distinct: bool = False
    partition_by: list[Expr] = field(default_factory=list)
    group_by: list[Expr] = field(default_factory=list)
    order_by: list[tuple[Expr, bool]] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None


@dataclass(frozen=True, slots=True)
class CreateDatabase:
    """``CREATE DATABASE`` with the options the stand-in understands (minutes for times)."""

    name: str
    if_not_exists: bool
    precision: str | None
    keep_minutes: tuple[int, ...] | None
    duration_minutes: int | None
    wal_level: int | None
    vgroups: int | None
    buffer: int | None


@dataclass(frozen=True, slots=True)
class ColumnDefAst:
    """A column or tag definition as written."""

    name: str
    type: DataType
    key_keyword: str | None
    """``primary`` or ``composite`` when the column carries a key clause."""
    pos: int


@dataclass(frozen=True, slots=True)
class CreateStable:
    """``CREATE STABLE``."""

    table: TableName
    if_not_exists: bool
    columns: tuple[ColumnDefAst, ...]
    tags: tuple[ColumnDefAst, ...]


@dataclass(frozen=True, slots=True)
class ShowDatabases:
    """``SHOW DATABASES``."""


@dataclass(frozen=True, slots=True)
class ShowStables:
    """``SHOW [db.]STABLES``."""

    db: str | None


@dataclass(frozen=True, slots=True)
class ShowTables:
    """``SHOW [db.]TABLES``."""

    db: str | None


@dataclass(frozen=True, slots=True)
class ShowCreateDatabase:
    """``SHOW CREATE DATABASE db``."""

    name: str


@dataclass(frozen=True, slots=True)
class ShowCreateStable:
    """``SHOW CREATE STABLE [db.]st``."""

    table: TableName


@dataclass(frozen=True, slots=True)
class Delete:
    """``DELETE FROM [db.]table [WHERE condition]``."""

    table: TableName
    where: Expr | None


@dataclass(frozen=True, slots=True)
class Describe:
    """``DESCRIBE [db.]table``."""

    table: TableName


@dataclass(frozen=True, slots=True)
class DropDatabase:
    """``DROP DATABASE [IF EXISTS] db``."""

    name: str
    if_exists: bool


@dataclass(frozen=True, slots=True)
class DropStable:
    """``DROP STABLE [IF EXISTS] [db.]st``."""

    table: TableName
    if_exists: bool


@dataclass(frozen=True, slots=True)
class UseDatabase:
    """``USE db`` (accepted, has no effect over stateless REST)."""

    name: str


Statement = (
    SelectStmt
    | CreateDatabase
    | CreateStable
    | ShowDatabases
    | ShowStables
    | ShowTables
    | ShowCreateDatabase
    | ShowCreateStable
    | Delete
    | Describe
    | DropDatabase
    | DropStable
    | UseDatabase
)


def column_names(e: Expr) -> set[str]:
    """Every column, tag or ``tbname`` an expression refers to."""
    if isinstance(e, ColumnRef):
        return {e.name}
    children: list[Expr] = []
    if isinstance(e, BinaryOp):
        children = [e.left, e.right]
    elif isinstance(e, Not | InList | IsNull | Cast):
        children = [e.expr]
    elif isinstance(e, Between):
        children = [e.expr, e.low, e.high]
    elif isinstance(e, FuncCall):
        children = list(e.args)
    out: set[str] = set()
    for child in children:
        out |= column_names(child)
    return out


def conjuncts(e: Expr | None) -> list[Expr]:
    """The terms of a top-level AND chain (none for no condition)."""
    if e is None:
        return []
    if isinstance(e, BinaryOp) and e.op == "and":
        return conjuncts(e.left) + conjuncts(e.right)
    return [e]
