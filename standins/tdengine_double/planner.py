"""Expressions of a single-table SELECT compiled into parameterised SQLite SQL.

Identifiers in the generated SQL are the stand-in's own storage names (``tbname``,
``t<i>`` for tags, ``c<i>`` for columns); every literal travels as a parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from standins.tdengine_double import errors as E
from standins.tdengine_double.catalog import DataType, StableDef, make_type
from standins.tdengine_double.errors import TDengineError, not_implemented
from standins.tdengine_double.statements import (
    Between,
    BinaryOp,
    Cast,
    ColumnRef,
    Expr,
    FuncCall,
    InList,
    IsNull,
    Literal,
    Not,
)
from standins.tdengine_double.timefmt import parse_datetime

__all__ = ("BIGINT", "Compiled", "ExprCompiler")

BIGINT: Final = make_type("BIGINT")
_DOUBLE: Final = make_type("DOUBLE")
_TBNAME: Final = DataType("VARCHAR", "str", 270)
"""``tbname`` in a result: VARCHAR(270), as recorded (SHOW TABLES lists names as 192)."""


@dataclass(frozen=True, slots=True)
class Compiled:
    """An expression as SQLite SQL: its parameters, type, and whether it aggregates."""

    sql: str
    params: tuple[object, ...]
    dtype: DataType | None
    """None for boolean conditions and untyped literals."""
    is_agg: bool
    ref: str | None
    """The storage name when the expression is a bare column reference."""


class ExprCompiler:
    """Compiles expressions over one super table into SQLite SQL with parameters."""

    def __init__(self, stable: StableDef, precision: str, table_name: str) -> None:
        self.stable = stable
        self.precision = precision
        self.table_name = table_name

    def column(self, ref: ColumnRef) -> Compiled:
        name = ref.name
        if name == "tbname":
            return Compiled("tbname", (), _TBNAME, False, "tbname")
        i = self.stable.column_index.get(name)
        if i is not None:
            return Compiled(f"c{i}", (), self.stable.columns[i].type, False, f"c{i}")
        j = self.stable.tag_index.get(name)
        if j is not None:
            return Compiled(f"t{j}", (), self.stable.tags[j].type, False, f"t{j}")
        raise TDengineError(E.INVALID_COLUMN, f"Invalid column name: {name}")

    def literal(self, lit: Literal, target: DataType | None) -> Compiled:
        value = lit.value
        if target is not None and value is not None:
            value = self.coerce(lit, target)
        return Compiled("?", (value,), None, False, None)

    def coerce(self, lit: Literal, target: DataType) -> object:
        value = lit.value
        kind = target.kind
        if kind == "ts" and lit.kind == "str":
            assert isinstance(value, str)
            ticks = parse_datetime(value, self.precision)
            if ticks is None:
                raise TDengineError(
                    E.INCORRECT_TIMESTAMP_VAL, f"Incorrect TIMESTAMP value: {value}"
                )
            return ticks
        if kind in ("int", "ts", "bool", "float") and lit.kind == "bool":
            return 1 if value else 0
        if kind in ("int", "ts", "bool", "float") and lit.kind == "str":
            assert isinstance(value, str)
            try:
                return int(value)
            except ValueError:
                try:
                    return float(value)
                except ValueError:
                    raise TDengineError(
                        E.PAR_SYNTAX_ERROR, f"Invalid value type: {lit.text}"
                    ) from None
        if kind in ("str", "nchar") and lit.kind in ("int", "float"):
            return str(value)
        return value

    def operand(self, e: Expr, peer: Expr | None, *, allow_agg: bool) -> Compiled:
        if isinstance(e, Literal):
            target = None
            if peer is not None and not isinstance(peer, Literal):
                target = self.expr(peer, allow_agg=allow_agg).dtype
            return self.literal(e, target)
        return self.expr(e, allow_agg=allow_agg)

    def expr(self, e: Expr, *, allow_agg: bool) -> Compiled:
        if isinstance(e, ColumnRef):
            return self.column(e)
        if isinstance(e, Literal):
            return self.literal(e, None)
        if isinstance(e, FuncCall):
            return self.func(e, allow_agg=allow_agg)
        if isinstance(e, Cast):
            inner = self.expr(e.expr, allow_agg=allow_agg)
            if e.type.kind != "int" or e.type.name != "BIGINT":
                raise TDengineError(E.PAR_SYNTAX_ERROR, f'syntax error near "{e.text}"')
            if inner.dtype is not None and inner.dtype.kind in ("str", "nchar", "float"):
                sql = f"CAST({inner.sql} AS INTEGER)"
            else:
                sql = inner.sql
            return Compiled(sql, inner.params, BIGINT, inner.is_agg, None)
        if isinstance(e, BinaryOp):
            if e.op in ("and", "or"):
                left = self.expr(e.left, allow_agg=allow_agg)
                right = self.expr(e.right, allow_agg=allow_agg)
                return Compiled(
                    f"({left.sql} {e.op.upper()} {right.sql})",
                    left.params + right.params,
                    None,
                    left.is_agg or right.is_agg,
                    None,
                )
            left = self.operand(e.left, e.right, allow_agg=allow_agg)
            right = self.operand(e.right, e.left, allow_agg=allow_agg)
            return Compiled(
                f"({left.sql} {e.op} {right.sql})",
                left.params + right.params,
                None,
                left.is_agg or right.is_agg,
                None,
            )
        if isinstance(e, Not):
            inner = self.expr(e.expr, allow_agg=allow_agg)
            return Compiled(f"(NOT {inner.sql})", inner.params, None, inner.is_agg, None)
        if isinstance(e, IsNull):
            inner = self.expr(e.expr, allow_agg=allow_agg)
            op = "IS NOT NULL" if e.negated else "IS NULL"
            return Compiled(f"({inner.sql} {op})", inner.params, None, inner.is_agg, None)
        if isinstance(e, InList):
            inner = self.expr(e.expr, allow_agg=allow_agg)
            values = tuple(
                self.coerce(v, inner.dtype) if inner.dtype and v.value is not None else v.value
                for v in e.values
            )
            marks = ", ".join("?" for _ in values)
            op = "NOT IN" if e.negated else "IN"
            return Compiled(
                f"({inner.sql} {op} ({marks}))", inner.params + values, None, inner.is_agg, None
            )
        if isinstance(e, Between):
            inner = self.expr(e.expr, allow_agg=allow_agg)
            low = self.operand(e.low, e.expr, allow_agg=allow_agg)
            high = self.operand(e.high, e.expr, allow_agg=allow_agg)
            op = "NOT BETWEEN" if e.negated else "BETWEEN"
            return Compiled(
                f"({inner.sql} {op} {low.sql} AND {high.sql})",
                inner.params + low.params + high.params,
                None,
                inner.is_agg,
                None,
            )
        raise TDengineError(E.PAR_SYNTAX_ERROR, 'syntax error near ""')  # pragma: no cover

    def func(self, f: FuncCall, *, allow_agg: bool) -> Compiled:
        if f.name == "server_version":
            raise TDengineError(E.PAR_SYNTAX_ERROR, f'syntax error near "{f.text}"')
        if f.name == "last_row":
            raise not_implemented("LAST_ROW with other expressions or clauses")
        if not allow_agg:
            raise TDengineError(E.ILLEGAL_USE_AGG_FUNCTION, "There mustn't be aggregation")
        if f.star:
            return Compiled("COUNT(*)", (), BIGINT, True, None)
        arg = self.expr(f.args[0], allow_agg=False)
        dtype = arg.dtype
        if f.name == "count":
            return Compiled(f"COUNT({arg.sql})", arg.params, BIGINT, True, None)
        numeric = dtype is not None and dtype.kind in ("int", "float")
        if not numeric:  # MIN(ts) too: recorded on 3.3.6.6
            raise TDengineError(E.FUNC_PARA_TYPE, f"Invalid parameter data type : {f.name}")
        assert dtype is not None
        if f.name == "avg":
            return Compiled(f"AVG({arg.sql})", arg.params, _DOUBLE, True, None)
        if f.name == "sum":
            out = _DOUBLE if dtype.kind == "float" else BIGINT
            return Compiled(f"SUM({arg.sql})", arg.params, out, True, None)
        return Compiled(f"{f.name.upper()}({arg.sql})", arg.params, dtype, True, None)
