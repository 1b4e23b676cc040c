"""Translate a parsed single-table SELECT into parameterised SQLite SQL (a :class:`Plan`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

from standins.tdengine_double import errors as E
from standins.tdengine_double.catalog import StableDef
from standins.tdengine_double.errors import TDengineError, not_implemented
from standins.tdengine_double.planner import Compiled, ExprCompiler
from standins.tdengine_double.results import ResultColumn
from standins.tdengine_double.statements import (
    Cast,
    ColumnRef,
    Expr,
    FuncCall,
    Literal,
    SelectStmt,
    column_names,
    conjuncts,
)

__all__ = ("Plan", "TagGroups", "finish_rows", "plan_select")

_NAME_LEN: Final = 64
"""Result column names are cut to ``TSDB_COL_NAME_LEN - 1``."""


@dataclass(frozen=True, slots=True)
class TagGroups:
    """GROUP BY on tags and ``tbname`` only: TDengine forms a group per table, rows or not.

    The engine lists the groups of the tables that pass ``where_sql`` (the tag-only
    conditions of WHERE) and adds a row for each group the query left empty.
    """

    keys_sql: tuple[str, ...]
    """The grouping expressions, over ``tbname`` and ``t<j>`` only."""
    where_sql: str | None
    where_params: tuple[object, ...]
    filler: tuple[tuple[str, int], ...]
    """Per result column of an empty group: ("key", i), ("count", 0) or ("null", 0)."""


@dataclass(frozen=True, slots=True)
class Plan:
    """SQL, its parameters, the result columns and how to post-process the rows."""

    sql: str
    params: tuple[object, ...]
    columns: list[ResultColumn]
    aggregate_without_group: bool
    """One-row aggregate: drop the row when no input row matched and there is no COUNT."""
    has_count: bool
    hidden: int = 0
    """Trailing SQL columns that are not part of the result (row count, group keys)."""
    tag_groups: TagGroups | None = None
    ordered: bool = False
    """ORDER BY, LIMIT or OFFSET present (rows added afterwards would break them)."""


def _has_count(e: Expr) -> bool:
    if isinstance(e, FuncCall):
        return e.name == "count"
    if isinstance(e, Cast):
        return _has_count(e.expr)
    return False


def _is_last_row(e: Expr) -> bool:
    return isinstance(e, FuncCall) and e.name == "last_row"


def _select_list(
    p: ExprCompiler, stmt: SelectStmt, stable: StableDef, subtable: str | None
) -> tuple[list[str], list[Compiled]]:
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
            if isinstance(item.expr, Literal):
                raise not_implemented("constants in the SELECT list of a query with FROM")
            raise TDengineError(E.PAR_SYNTAX_ERROR, f'syntax error near "{item.text}"')
        compiled.append(c)
        if item.alias is not None:
            names.append(item.alias)
        elif isinstance(item.expr, ColumnRef):
            names.append(item.expr.name)
        else:
            names.append(item.text[:_NAME_LEN])
    return names, compiled


def _where(
    p: ExprCompiler, stmt: SelectStmt, subtable: str | None
) -> tuple[str, tuple[object, ...]]:
    parts: list[str] = []
    params: list[object] = []
    if subtable is not None:
        parts.append("tbname = ?")
        params.append(subtable)
    if stmt.where is not None:
        w = p.expr(stmt.where, allow_agg=False)
        parts.append(w.sql)
        params.extend(w.params)
    if not parts:
        return "", ()
    return " WHERE " + " AND ".join(f"({w})" for w in parts), tuple(params)


def _plan_last_row(
    p: ExprCompiler, stmt: SelectStmt, stable: StableDef, subtable: str | None
) -> Plan:
    """``SELECT LAST_ROW(*|col), ...``: the row with the greatest timestamp (and key)."""
    if (
        stmt.star
        or stmt.distinct
        or stmt.group_by
        or stmt.partition_by
        or stmt.order_by
        or stmt.limit is not None
        or not all(_is_last_row(i.expr) for i in stmt.items)
    ):
        raise not_implemented("LAST_ROW with other expressions or clauses")
    columns: list[ResultColumn] = []
    sql_cols: list[str] = []
    for item in stmt.items:
        call = item.expr
        assert isinstance(call, FuncCall)
        if call.star:
            for i, col in enumerate(stable.columns):
                columns.append(ResultColumn.of(f"last_row({col.name})", col.type))
                sql_cols.append(f"c{i}")
            continue
        arg = call.args[0]
        if not isinstance(arg, ColumnRef):
            raise not_implemented("LAST_ROW of an expression")
        c = p.expr(arg, allow_agg=False)
        assert c.dtype is not None
        columns.append(ResultColumn.of(item.alias or item.text[:_NAME_LEN], c.dtype))
        sql_cols.append(c.sql)
    where_sql, where_params = _where(p, stmt, subtable)
    order = "c0 DESC, c1 DESC" if stable.key_column is not None else "c0 DESC"
    sql = (
        f'SELECT {", ".join(sql_cols)} FROM "{stable.storage}"{where_sql} ORDER BY {order} LIMIT 1'
    )
    return Plan(sql, where_params, columns, False, False)


def _tag_groups(
    p: ExprCompiler,
    stmt: SelectStmt,
    stable: StableDef,
    compiled: list[Compiled],
    group_sql: list[str],
) -> TagGroups | None:
    refs = [p.expr(g, allow_agg=False).ref for g in stmt.group_by]
    if not refs or any(r is None or r.startswith("c") for r in refs):
        return None
    tag_names = {"tbname", *stable.tag_index}
    where_parts: list[str] = []
    where_params: list[object] = []
    for conj in conjuncts(stmt.where):
        if column_names(conj) <= tag_names:
            w = p.expr(conj, allow_agg=False)
            where_parts.append(f"({w.sql})")
            where_params.extend(w.params)
    filler: list[tuple[str, int]] = []
    items = stmt.items
    for k, c in enumerate(compiled):
        if c.sql in group_sql:
            filler.append(("key", group_sql.index(c.sql)))
        elif _has_count(items[k - (len(compiled) - len(items))].expr):
            filler.append(("count", 0))
        else:
            filler.append(("null", 0))
    return TagGroups(
        tuple(group_sql),
        " AND ".join(where_parts) or None,
        tuple(where_params),
        tuple(filler),
    )


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
    if any(_is_last_row(i.expr) for i in stmt.items):
        return _plan_last_row(p, stmt, stable, subtable)
    if stmt.partition_by and stmt.group_by:
        raise not_implemented("PARTITION BY with GROUP BY")
    if stmt.distinct and (stmt.star or stmt.group_by or stmt.partition_by):
        raise not_implemented("DISTINCT with *, GROUP BY or PARTITION BY")
    names, compiled = _select_list(p, stmt, stable, subtable)
    params: list[object] = []
    select_sql = ", ".join(c.sql for c in compiled)
    for c in compiled:
        params.extend(c.params)
    any_agg = any(c.is_agg for c in compiled)
    if stmt.distinct and any_agg:
        raise not_implemented("DISTINCT with aggregates")
    if stmt.partition_by and any_agg:
        stmt = replace(stmt, group_by=stmt.partition_by, partition_by=[])
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
    where_sql, where_params = _where(p, stmt, subtable)

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
    columns = [ResultColumn.of(n, c.dtype) for n, c in zip(names, compiled, strict=True) if c.dtype]
    has_count = any(_has_count(i.expr) for i in stmt.items)

    if stmt.partition_by and stmt.limit is not None:
        if order_sql:
            raise not_implemented("PARTITION BY with ORDER BY")
        return _plan_partition_limit(p, stmt, stable, compiled, columns, where_sql, where_params)

    aggregate_without_group = any_agg and not group_sql
    tag_groups = _tag_groups(p, stmt, stable, compiled, group_sql) if group_sql else None
    sql = f"SELECT {'DISTINCT ' if stmt.distinct else ''}{select_sql}"
    hidden = 0
    if aggregate_without_group:
        sql += ", COUNT(*)"
        hidden = 1
    elif tag_groups is not None:
        sql += ", " + ", ".join(group_sql)
        hidden = len(group_sql)
    sql += f' FROM "{stable.storage}"{where_sql}'
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
    all_params = tuple(params + list(where_params) + group_params + order_params + tail)
    ordered = bool(order_sql) or stmt.limit is not None
    return Plan(
        sql, all_params, columns, aggregate_without_group, has_count, hidden, tag_groups, ordered
    )


def _plan_partition_limit(
    p: ExprCompiler,
    stmt: SelectStmt,
    stable: StableDef,
    compiled: list[Compiled],
    columns: list[ResultColumn],
    where_sql: str,
    where_params: tuple[object, ...],
) -> Plan:
    """``PARTITION BY ... LIMIT n [OFFSET m]`` without aggregates: n rows per partition."""
    keys: list[str] = []
    key_params: list[object] = []
    for e in stmt.partition_by:
        kc = p.expr(e, allow_agg=False)
        keys.append(kc.sql)
        key_params.extend(kc.params)
    inner_cols = ", ".join(f"{c.sql} AS _v{k}" for k, c in enumerate(compiled))
    params: list[object] = [x for c in compiled for x in c.params]
    inner = (
        f"SELECT {inner_cols}, ROW_NUMBER() OVER (PARTITION BY {', '.join(keys)} ORDER BY c0) "
        f'AS _rn FROM "{stable.storage}"{where_sql}'
    )
    outer_cols = ", ".join(f"_v{k}" for k in range(len(compiled)))
    offset = stmt.offset or 0
    assert stmt.limit is not None
    sql = f"SELECT {outer_cols} FROM ({inner}) WHERE _rn > ? AND _rn <= ?"
    all_params = tuple([*params, *key_params, *where_params, offset, offset + stmt.limit])
    return Plan(sql, all_params, columns, False, False, ordered=True)


def finish_rows(plan: Plan, rows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """Rows as the result shows them: an empty one-row aggregate without COUNT dropped,
    hidden columns cut."""
    if plan.aggregate_without_group and rows and rows[0][-1] == 0 and not plan.has_count:
        return []
    if plan.hidden:
        return [r[: -plan.hidden] for r in rows]
    return rows


def _expr_text(e: Expr) -> str:
    return getattr(e, "text", "")
