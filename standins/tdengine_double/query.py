"""Translate a parsed single-table SELECT into parameterised SQLite SQL.

Identifiers in the generated SQL are the stand-in's own storage names (``tbname``,
``t<i>`` for tags, ``c<i>`` for columns); every literal travels as a parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from standins.tdengine_double import errors as E
from standins.tdengine_double.catalog import DataType, StableDef, make_type
from standins.tdengine_double.errors import TDengineError
from standins.tdengine_double.results import ResultColumn
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
    SelectStmt,
)
from standins.tdengine_double.timefmt import parse_datetime

__all__ = ("Plan", "plan_select")

_BIGINT: Final = make_type("BIGINT")
_DOUBLE: Final = make_type("DOUBLE")
_TBNAME: Final = DataType("VARCHAR", "str", 192)
_NAME_LEN: Final = 64
"""Result column names are cut to ``TSDB_COL_NAME_LEN - 1``."""


@dataclass(frozen=True, slots=True)
class Plan:
    """SQL, its parameters, the result columns and how to post-process the rows."""

    sql: str
    params: tuple[object, ...]
    columns: list[ResultColumn]
    aggregate_without_group: bool
    """One-row aggregate: drop the row when no input row matched and there is no COUNT."""
    has_count: bool


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    params: tuple[object, ...]
    dtype: DataType | None
    """None for boolean conditions and untyped literals."""
    is_agg: bool
    ref: str | None
    """The storage name when the expression is a bare column reference."""


class _Planner:
    def __init__(self, stable: StableDef, precision: str, table_name: str) -> None:
        self.stable = stable
        self.precision = precision
        self.table_name = table_name

    def column(self, ref: ColumnRef) -> _Compiled:
        name = ref.name
        if name == "tbname":
            return _Compiled("tbname", (), _TBNAME, False, "tbname")
        i = self.stable.column_index.get(name)
        if i is not None:
            return _Compiled(f"c{i}", (), self.stable.columns[i].type, False, f"c{i}")
        j = self.stable.tag_index.get(name)
        if j is not None:
            return _Compiled(f"t{j}", (), self.stable.tags[j].type, False, f"t{j}")
        raise TDengineError(E.INVALID_COLUMN, f"Invalid column name: {name}")

    def literal(self, lit: Literal, target: DataType | None) -> _Compiled:
        value = lit.value
        if target is not None and value is not None:
            value = self.coerce(lit, target)
        return _Compiled("?", (value,), None, False, None)

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

    def operand(self, e: Expr, peer: Expr | None, *, allow_agg: bool) -> _Compiled:
        if isinstance(e, Literal):
            target = None
            if peer is not None and not isinstance(peer, Literal):
                target = self.expr(peer, allow_agg=allow_agg).dtype
            return self.literal(e, target)
        return self.expr(e, allow_agg=allow_agg)

    def expr(self, e: Expr, *, allow_agg: bool) -> _Compiled:
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
            return _Compiled(sql, inner.params, _BIGINT, inner.is_agg, None)
        if isinstance(e, BinaryOp):
            if e.op in ("and", "or"):
                left = self.expr(e.left, allow_agg=allow_agg)
                right = self.expr(e.right, allow_agg=allow_agg)
                return _Compiled(
                    f"({left.sql} {e.op.upper()} {right.sql})",
                    left.params + right.params,
                    None,
                    left.is_agg or right.is_agg,
                    None,
                )
            left = self.operand(e.left, e.right, allow_agg=allow_agg)
            right = self.operand(e.right, e.left, allow_agg=allow_agg)
            return _Compiled(
                f"({left.sql} {e.op} {right.sql})",
                left.params + right.params,
                None,
                left.is_agg or right.is_agg,
                None,
            )
        if isinstance(e, Not):
            inner = self.expr(e.expr, allow_agg=allow_agg)
            return _Compiled(f"(NOT {inner.sql})", inner.params, None, inner.is_agg, None)
        if isinstance(e, IsNull):
            inner = self.expr(e.expr, allow_agg=allow_agg)
            op = "IS NOT NULL" if e.negated else "IS NULL"
            return _Compiled(f"({inner.sql} {op})", inner.params, None, inner.is_agg, None)
        if isinstance(e, InList):
            inner = self.expr(e.expr, allow_agg=allow_agg)
            values = tuple(
                self.coerce(v, inner.dtype) if inner.dtype and v.value is not None else v.value
                for v in e.values
            )
            marks = ", ".join("?" for _ in values)
            op = "NOT IN" if e.negated else "IN"
            return _Compiled(
                f"({inner.sql} {op} ({marks}))", inner.params + values, None, inner.is_agg, None
            )
        if isinstance(e, Between):
            inner = self.expr(e.expr, allow_agg=allow_agg)
            low = self.operand(e.low, e.expr, allow_agg=allow_agg)
            high = self.operand(e.high, e.expr, allow_agg=allow_agg)
            op = "NOT BETWEEN" if e.negated else "BETWEEN"
            return _Compiled(
                f"({inner.sql} {op} {low.sql} AND {high.sql})",
                inner.params + low.params + high.params,
                None,
                inner.is_agg,
                None,
            )
        raise TDengineError(E.PAR_SYNTAX_ERROR, 'syntax error near ""')  # pragma: no cover

    def func(self, f: FuncCall, *, allow_agg: bool) -> _Compiled:
        if f.name == "server_version":
            raise TDengineError(E.PAR_SYNTAX_ERROR, f'syntax error near "{f.text}"')
        if not allow_agg:
            raise TDengineError(E.ILLEGAL_USE_AGG_FUNCTION, "There mustn't be aggregation")
        if f.star:
            return _Compiled("COUNT(*)", (), _BIGINT, True, None)
        arg = self.expr(f.args[0], allow_agg=False)
        dtype = arg.dtype
        if f.name == "count":
            return _Compiled(f"COUNT({arg.sql})", arg.params, _BIGINT, True, None)
        numeric = dtype is not None and dtype.kind in ("int", "float")
        if f.name in ("sum", "avg") and not numeric:
            raise TDengineError(E.FUNC_PARA_TYPE, f"Invalid parameter data type : {f.name}")
        if f.name in ("min", "max") and not (numeric or (dtype is not None and dtype.kind == "ts")):
            raise TDengineError(E.FUNC_PARA_TYPE, f"Invalid parameter data type : {f.name}")
        assert dtype is not None
        if f.name == "avg":
            return _Compiled(f"AVG({arg.sql})", arg.params, _DOUBLE, True, None)
        if f.name == "sum":
            out = _DOUBLE if dtype.kind == "float" else _BIGINT
            return _Compiled(f"SUM({arg.sql})", arg.params, out, True, None)
        return _Compiled(f"{f.name.upper()}({arg.sql})", arg.params, dtype, True, None)


def _has_count(e: Expr) -> bool:
    if isinstance(e, FuncCall):
        return e.name == "count"
    if isinstance(e, Cast):
        return _has_count(e.expr)
    return False


def plan_select(
    stmt: SelectStmt,
    stable: StableDef,
    precision: str,
    *,
    subtable: str | None,
    table_name: str,
) -> Plan:
    """Plan ``stmt`` over ``stable`` (restricted to ``subtable`` when given)."""
    p = _Planner(stable, precision, table_name)
    names: list[str] = []
    compiled: list[_Compiled] = []
    if stmt.star:
        for i, col in enumerate(stable.columns):
            names.append(col.name)
            compiled.append(_Compiled(f"c{i}", (), col.type, False, f"c{i}"))
        if subtable is None:
            for j, tag in enumerate(stable.tags):
                names.append(tag.name)
                compiled.append(_Compiled(f"t{j}", (), tag.type, False, f"t{j}"))
    for item in stmt.items:
        c = p.expr(item.expr, allow_agg=True)
        if c.dtype is None:
            raise TDengineError(E.PAR_SYNTAX_ERROR, f'syntax error near "{item.text}"')
        compiled.append(c)
        if item.alias is not None:
            names.append(item.alias)
        elif isinstance(item.expr, ColumnRef):
            names.append(item.expr.name)
        else:
            names.append(item.text[:_NAME_LEN])
    params: list[object] = []
    select_sql = ", ".join(c.sql for c in compiled)
    for c in compiled:
        params.extend(c.params)
    any_agg = any(c.is_agg for c in compiled)
    group_sql: list[str] = []
    group_params: list[object] = []
    for g in stmt.group_by:
        gc = p.expr(g, allow_agg=False)
        group_sql.append(gc.sql)
        group_params.extend(gc.params)
    if group_sql:
        for c in compiled:
            if not c.is_agg and c.sql not in group_sql:
                raise TDengineError(E.GROUPBY_LACK_EXPRESSION, "Not a GROUP BY expression")
    elif any_agg and not all(c.is_agg for c in compiled):
        raise TDengineError(E.NOT_SINGLE_GROUP, "Not a single-group group function")

    where_parts: list[str] = []
    where_params: list[object] = []
    if subtable is not None:
        where_parts.append("tbname = ?")
        where_params.append(subtable)
    if stmt.where is not None:
        w = p.expr(stmt.where, allow_agg=False)
        where_parts.append(w.sql)
        where_params.extend(w.params)

    order_sql: list[str] = []
    order_params: list[object] = []
    for expr, desc in stmt.order_by:
        position = None
        for k, item in enumerate(stmt.items):
            offset = len(compiled) - len(stmt.items)
            if (isinstance(expr, ColumnRef) and item.alias == expr.name) or (
                not isinstance(expr, Literal) and _expr_text(expr) == item.text
            ):
                position = offset + k + 1
                break
        if position is not None:
            order_sql.append(f"{position} {'DESC' if desc else 'ASC'}")
            continue
        oc = p.expr(expr, allow_agg=bool(group_sql) or any_agg)
        if oc.dtype is None:
            raise TDengineError(E.PAR_SYNTAX_ERROR, 'syntax error near ""')
        order_sql.append(f"{oc.sql} {'DESC' if desc else 'ASC'}")
        order_params.extend(oc.params)

    aggregate_without_group = any_agg and not group_sql
    sql = f"SELECT {select_sql}"
    if aggregate_without_group:
        sql += ", COUNT(*)"
    sql += f' FROM "{stable.storage}"'
    if where_parts:
        sql += " WHERE " + " AND ".join(f"({w})" for w in where_parts)
    if group_sql:
        sql += " GROUP BY " + ", ".join(group_sql)
    if order_sql:
        sql += " ORDER BY " + ", ".join(order_sql)
    tail: list[object] = []
    if stmt.limit is not None:
        sql += " LIMIT ?"
        tail.append(stmt.limit)
        if stmt.offset is not None:
            sql += " OFFSET ?"
            tail.append(stmt.offset)
    all_params = tuple(params + where_params + group_params + order_params + tail)
    columns = [ResultColumn.of(n, c.dtype) for n, c in zip(names, compiled, strict=True) if c.dtype]
    has_count = any(_has_count(i.expr) for i in stmt.items)
    return Plan(sql, all_params, columns, aggregate_without_group, has_count)


def _expr_text(e: Expr) -> str:
    return getattr(e, "text", "")
