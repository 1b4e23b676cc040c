"""Stand-in reads and catalog answers beyond the recorded steps: the same rules, other inputs.

The recorded corpus (``tests/tdengine_conformance``) pins the exact answers it holds; these
tests pin how the stand-in generalises them, and that it says "not implemented" (0x0100)
instead of guessing.
"""

from __future__ import annotations

import pytest

from standins.tdengine_double.engine import Engine
from standins.tdengine_double.results import QueryResult
from tests.unit.test_tdengine_double_engine import affected, fails

NOW_S = 1_750_000_000.0
TS = 1_749_990_000_000_000
DDL = (
    "CREATE STABLE d.st (ts TIMESTAMP, event_id BIGINT PRIMARY KEY, amt BIGINT, note VARCHAR(4), "
    "f FLOAT, n NCHAR(2), s SMALLINT) TAGS (user_id BIGINT, account_type TINYINT)"
)
NOT_IMPLEMENTED = 0x0100


@pytest.fixture
def engine() -> Engine:
    e = Engine(clock=lambda: NOW_S)
    e.execute("CREATE DATABASE d PRECISION 'us' KEEP 3650d,3650d,3650d")
    e.execute(DDL)
    return e


def query(engine: Engine, sql: str) -> QueryResult:
    result = engine.execute(sql)
    assert isinstance(result, QueryResult)
    return result


def rows(engine: Engine, sql: str) -> list[tuple[object, ...]]:
    return query(engine, sql).rows


def put(engine: Engine, table: str, tags: str, *values: str) -> None:
    sql = f"INSERT INTO d.{table} USING d.st TAGS ({tags}) (ts, event_id, amt) VALUES "
    affected(engine, sql + " ".join(values))


def test_select_without_from_takes_integers_and_server_version(engine: Engine) -> None:
    result = query(engine, "SELECT 1, -7 AS x, SERVER_VERSION()")
    meta = [(c.name, c.type_name, c.length) for c in result.columns]
    assert meta == [("1", "BIGINT", 8), ("x", "BIGINT", 8), ("server_version()", "VARCHAR", 7)]
    assert result.rows == [(1, -7, "3.3.6.6")]
    assert fails(engine, "SELECT 'a'").code == NOT_IMPLEMENTED


def test_only_the_first_statement_runs(engine: Engine) -> None:
    assert rows(engine, "SHOW DATABASES; DROP DATABASE d") == [
        ("information_schema",),
        ("performance_schema",),
        ("d",),
    ]
    assert rows(engine, "SHOW d.STABLES") == [("st",)]


def test_ins_databases_values_of_a_user_database(engine: Engine) -> None:
    result = query(engine, "SELECT * FROM information_schema.ins_databases WHERE name = 'd'")
    assert len(result.columns) == 37
    got = dict(zip((c.name for c in result.columns), result.rows[0], strict=True))
    assert got["precision"] == "us" and got["keep"] == "3650d,3650d,3650d"
    assert got["duration"] == "10d" and got["vgroups"] == 2 and got["ntables"] == 0
    assert got["create_time"] == int(NOW_S * 1000)
    put(engine, "t1", "1, 1", f"({TS}, 1, 1)")
    assert rows(
        engine, "SELECT ntables FROM information_schema.ins_databases WHERE name = 'd'"
    ) == [(1,)]
    assert rows(engine, "SELECT COUNT(*) FROM information_schema.ins_databases") == [(3,)]


def test_system_databases_show_only_what_was_recorded(engine: Engine) -> None:
    got = rows(engine, "SELECT name, `precision` FROM information_schema.ins_databases")
    assert got == [("information_schema", "ms"), ("performance_schema", "ms"), ("d", "us")]
    for sql in (
        "SELECT * FROM information_schema.ins_databases",
        "SELECT name, vgroups FROM information_schema.ins_databases WHERE name != 'd'",
    ):
        assert fails(engine, sql).code == NOT_IMPLEMENTED
    assert fails(engine, "SELECT * FROM information_schema.ins_tables").code == NOT_IMPLEMENTED


def test_show_create_database_prints_the_options(engine: Engine) -> None:
    engine.execute("CREATE DATABASE k PRECISION 'ms' KEEP 30,60 DURATION 1d WAL_LEVEL 2")
    result = query(engine, "SHOW CREATE DATABASE k")
    assert [c.name for c in result.columns] == ["Database", "Create Database"]
    text = str(result.rows[0][1])
    assert text.startswith("CREATE DATABASE `k` BUFFER 256 ")
    for part in ("DURATION 1d", "KEEP 30d,60d,60d", "PRECISION 'ms'", "WAL_LEVEL 2"):
        assert f" {part} " in text
    assert fails(engine, "SHOW CREATE DATABASE nope").code == 0x0388


def test_describe_and_show_create_stable_carry_each_types_compression(engine: Engine) -> None:
    described = rows(engine, "DESCRIBE d.st")
    assert [r[:1] + r[3:6] for r in described[:7]] == [
        ("ts", "", "delta-i", "lz4"),
        ("event_id", "COMPOSITE KEY", "simple8b", "lz4"),  # created with PRIMARY KEY
        ("amt", "", "simple8b", "lz4"),
        ("note", "", "disabled", "zstd"),
        ("f", "", "delta-d", "lz4"),
        ("n", "", "disabled", "zstd"),
        ("s", "", "simple8b", "zlib"),
    ]
    text = str(rows(engine, "SHOW CREATE STABLE d.st")[0][1])
    assert text.startswith(
        "CREATE STABLE `st` (`ts` TIMESTAMP ENCODE 'delta-i' COMPRESS 'lz4' LEVEL 'medium', "
        "`event_id` BIGINT ENCODE 'simple8b' COMPRESS 'lz4' LEVEL 'medium' COMPOSITE KEY, "
    )
    assert "`note` VARCHAR(4) ENCODE 'disabled' COMPRESS 'zstd' LEVEL 'medium'" in text
    assert text.endswith(") TAGS (`user_id` BIGINT, `account_type` TINYINT)")


def test_delete_takes_a_time_range_only(engine: Engine) -> None:
    put(engine, "t1", "1, 1", f"({TS}, 1, 1)", f"({TS + 1}, 2, 2)", f"({TS + 2}, 3, 3)")
    put(engine, "t2", "2, 1", f"({TS}, 1, 10)")
    err = fails(engine, f"DELETE FROM d.t1 WHERE ts = {TS} AND event_id = 1")
    assert (err.code, err.desc) == (
        0x2655,
        "The DELETE statement must only have a definite time window range",
    )
    assert fails(engine, f"DELETE FROM d.t1 WHERE ts = {TS} OR ts = {TS + 1}").code == (
        NOT_IMPLEMENTED
    )
    assert affected(engine, f"DELETE FROM d.t1 WHERE ts >= {TS} AND ts < {TS + 2}") == 2
    assert rows(engine, "SELECT event_id FROM d.st ORDER BY amt") == [(3,), (1,)]
    assert affected(engine, f"DELETE FROM d.st WHERE ts <= {TS + 2}") == 2
    assert rows(engine, "SELECT COUNT(*) FROM d.st") == [(0,)]
    assert rows(engine, "SHOW d.TABLES") == [("t1",), ("t2",)]  # tables stay


def test_last_row_is_the_latest_row_whole(engine: Engine) -> None:
    assert rows(engine, "SELECT LAST_ROW(*) FROM d.st") == []
    put(engine, "t1", "1, 1", f"({TS}, 1, 5)", f"({TS + 5}, 2, NULL)")
    put(engine, "t2", "2, 1", f"({TS + 5}, 1, 7)")
    result = query(engine, "SELECT LAST_ROW(*) FROM d.st")
    assert [c.name for c in result.columns][:3] == [
        "last_row(ts)",
        "last_row(event_id)",
        "last_row(amt)",
    ]
    assert result.rows == [(TS + 5, 2, None, None, None, None, None)]
    assert rows(engine, "SELECT LAST_ROW(amt) a FROM d.t2") == [(7,)]
    assert fails(engine, "SELECT LAST_ROW(*), COUNT(*) FROM d.st").code == NOT_IMPLEMENTED


def test_partition_by_limits_each_partition(engine: Engine) -> None:
    put(engine, "t1", "1, 1", f"({TS + 2}, 1, 3)", f"({TS}, 2, 1)", f"({TS + 1}, 3, 2)")
    put(engine, "t2", "2, 1", f"({TS}, 1, 10)")
    sql = "SELECT tbname, amt FROM d.st PARTITION BY tbname LIMIT 2"
    result = query(engine, sql)
    tbname = result.columns[0]
    assert (tbname.name, tbname.type_name, tbname.length) == ("tbname", "VARCHAR", 270)
    assert sorted(result.rows) == [("t1", 1), ("t1", 2), ("t2", 10)]
    assert sorted(rows(engine, sql + " OFFSET 2")) == [("t1", 3)]
    assert sorted(rows(engine, "SELECT tbname, SUM(amt) FROM d.st PARTITION BY tbname")) == [
        ("t1", 6),
        ("t2", 10),
    ]
    assert fails(engine, sql.replace("LIMIT", "ORDER BY amt LIMIT")).code == NOT_IMPLEMENTED


def test_distinct(engine: Engine) -> None:
    put(engine, "t1", "1, 1", f"({TS}, 1, 3)", f"({TS + 1}, 2, 3)")
    put(engine, "t2", "2, 1", f"({TS}, 1, 3)")
    assert sorted(rows(engine, "SELECT DISTINCT tbname FROM d.st")) == [("t1",), ("t2",)]
    assert rows(engine, "SELECT DISTINCT amt, account_type FROM d.st") == [(3, 1)]
    assert fails(engine, "SELECT DISTINCT COUNT(*) FROM d.st").code == NOT_IMPLEMENTED


def test_schema_statements_need_a_database(engine: Engine) -> None:
    err = fails(engine, "CREATE STABLE s (ts TIMESTAMP, v INT) TAGS (t INT)")
    assert (err.code, err.desc) == (0x2616, "Database not specified")
    assert fails(engine, "SHOW TABLES").code == 0x2616
