"""Running a SELECT: constants, a plan on SQLite, and TDengine's ways with sums and groups.

* ``SUM`` over integers wraps around in 64 bits, as TDengine's int64 accumulator does
  (recorded: two rows of 2^63-1 sum to -2). SQLite refuses such a sum, so the plan runs
  again with a wrapping aggregate; when SQLite's sum succeeds no partial sum left the
  BIGINT range and the wrapped sum is the same number.
* ``GROUP BY`` on tags or ``tbname`` only forms one group per table that passes the
  tag conditions, rows or not (recorded: such groups answer ``COUNT(*)`` 0).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Final

from standins.tdengine_double.catalog import DataType, SubTable
from standins.tdengine_double.errors import not_implemented
from standins.tdengine_double.planner import BIGINT
from standins.tdengine_double.query import Plan, TagGroups, finish_rows
from standins.tdengine_double.results import QueryResult, ResultColumn
from standins.tdengine_double.statements import FuncCall, Literal, SelectStmt

__all__ = ("WrapSum", "run_plan", "select_constants")

Row = tuple[object, ...]

_NAME_LEN: Final = 64


def select_constants(stmt: SelectStmt, server_version: str) -> QueryResult:
    """A SELECT without FROM: integer literals (BIGINT) and ``SERVER_VERSION()``."""
    columns: list[ResultColumn] = []
    row: list[object] = []
    for item in stmt.items:
        e = item.expr
        name = item.alias or item.text[:_NAME_LEN]
        if isinstance(e, FuncCall) and e.name == "server_version":
            # VARCHAR as long as the version text: (server_version(), VARCHAR, 7) recorded
            length = len(server_version.encode())
            columns.append(ResultColumn.of(name, DataType("VARCHAR", "str", length)))
            row.append(server_version)
        elif isinstance(e, Literal) and e.kind == "int":
            columns.append(ResultColumn.of(name, BIGINT))
            row.append(e.value)
        else:
            raise not_implemented(
                "SELECT without FROM of anything but integers and SERVER_VERSION()"
            )
    return QueryResult(columns, [tuple(row)], "ms")


def run_plan(conn: sqlite3.Connection, plan: Plan, tables: Iterable[SubTable]) -> list[Row]:
    """The result rows of ``plan``; ``tables`` are the tables the query reads (for groups)."""
    try:
        rows: list[Row] = conn.execute(plan.sql, plan.params).fetchall()
    except sqlite3.OperationalError as exc:
        if "integer overflow" not in str(exc):
            raise
        rows = conn.execute(plan.sql.replace("SUM(", "wrapsum("), plan.params).fetchall()
    if plan.tag_groups is not None:
        rows += _empty_groups(conn, plan, plan.tag_groups, rows, tables)
    return finish_rows(plan, rows)


def _empty_groups(
    conn: sqlite3.Connection,
    plan: Plan,
    groups: TagGroups,
    rows: list[Row],
    tables: Iterable[SubTable],
) -> list[Row]:
    """A row for every group of tables the query found no row in (if it counts)."""
    width = len(plan.columns)
    present = {r[width:] for r in rows}
    listed = [[t.name, *t.tags] for t in tables]
    if not listed:
        return []
    n_tags = max(len(t) for t in listed) - 1
    fields = ", ".join(
        ["json_extract(value, '$[0]') AS tbname"]
        + [f"json_extract(value, '$[{j + 1}]') AS t{j}" for j in range(n_tags)]
    )
    sql = f"SELECT DISTINCT {', '.join(groups.keys_sql)} FROM (SELECT {fields} FROM json_each(?))"
    if groups.where_sql:
        sql += f" WHERE {groups.where_sql}"
    keys: list[Row] = conn.execute(sql, (json.dumps(listed), *groups.where_params)).fetchall()
    missing = [k for k in keys if k not in present]
    if not missing or not plan.has_count:
        return []
    if plan.ordered:
        raise not_implemented("ORDER BY or LIMIT with GROUP BY on tags when a group has no rows")
    out: list[Row] = []
    for key in missing:
        visible = [
            key[i] if kind == "key" else (0 if kind == "count" else None)
            for kind, i in groups.filler
        ]
        out.append((*visible, *key))
    return out


class WrapSum:
    """SQLite aggregate: a 64-bit two's-complement sum, as TDengine's int64 accumulator."""

    def __init__(self) -> None:
        self.total: int | float | None = None

    def step(self, value: object) -> None:
        if not isinstance(value, int | float):
            return
        total = (self.total or 0) + value
        if isinstance(total, int):
            total = (total + 2**63) % 2**64 - 2**63
        self.total = total

    def finalize(self) -> int | float | None:
        return self.total
