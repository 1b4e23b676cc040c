"""Translate a parsed single-table SELECT into parameterised SQLite SQL (a :class:`Plan`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from standins.tdengine_double import errors as E
from standins.tdengine_double.catalog import StableDef
from standins.tdengine_double.errors import TDengineError
from standins.tdengine_double.planner import Compiled, ExprCompiler
from standins.tdengine_double.results import ResultColumn
from standins.tdengine_double.statements import (
    Cast,
    ColumnRef,
    Expr,
    FuncCall,
    Literal,
    SelectStmt,
)

__all__ = ("Plan", "plan_select")

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
    p = ExprCompiler(stable, precision, table_name)
    names: list[str] = []
    compiled: list[Compiled] = []
    if stmt.star:
        for i, col in enumerate(stable.columns):
            names.append(col.name)
            compiled.append(Compiled(f"c{i}", (), col.type, False, f"c{i}"))
        if subtable is None:
            for j, tag in enumerate(stable.tags):
                names.append(tag.name)
                compiled.append(Compiled(f"t{j}", (), tag.type, False, f"t{j}"))
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
