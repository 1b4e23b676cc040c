"""Engine of the TDengine double: overwrite, composite key, tags, ranges, KEEP, limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from standins.tdengine_double.engine import MAX_SQL_BYTES, Engine
from standins.tdengine_double.errors import TDengineError
from standins.tdengine_double.results import ExecResult, QueryResult

NOW_S = 1_750_000_000.0
TS = 1_749_990_000_000_000  # a few hours before NOW_S, in microseconds

DDL = (
    "CREATE STABLE d.st (ts TIMESTAMP, event_id BIGINT COMPOSITE KEY, amt BIGINT, "
    "flag BOOL, note VARCHAR(4)) TAGS (user_id BIGINT, account_type TINYINT)"
)


@pytest.fixture
def engine() -> Engine:
    e = Engine(clock=lambda: NOW_S)
    e.execute("CREATE DATABASE d PRECISION 'us'")
    e.execute(DDL)
    return e


def rows(engine: Engine, sql: str) -> list[tuple[object, ...]]:
    result = engine.execute(sql)
    assert isinstance(result, QueryResult)
    return result.rows


def affected(engine: Engine, sql: str) -> int:
    result = engine.execute(sql)
    assert isinstance(result, ExecResult)
    return result.affected_rows


def fails(engine: Engine, sql: str) -> TDengineError:
    with pytest.raises(TDengineError) as info:
        engine.execute(sql)
    return info.value


def put(engine: Engine, table: str = "t1", tags: str = "1, 2", values: str = "") -> int:
    values = values or f"({TS}, 1, 100, true, 'a')"
    return affected(engine, f"INSERT INTO d.{table} USING d.st TAGS ({tags}) VALUES {values}")


def test_rewrite_replaces_given_columns_and_keeps_omitted_ones(engine: Engine) -> None:
    put(engine)
    assert affected(engine, f"INSERT INTO d.t1 (ts, event_id, amt) VALUES ({TS}, 1, 7)") == 1
    assert rows(engine, "SELECT amt, flag, note FROM d.t1") == [(7, 1, "a")]
    # an explicit NULL does overwrite
    affected(engine, f"INSERT INTO d.t1 (ts, event_id, note) VALUES ({TS}, 1, NULL)")
    assert rows(engine, "SELECT amt, flag, note FROM d.t1") == [(7, 1, None)]


def test_new_row_gets_null_for_omitted_columns(engine: Engine) -> None:
    put(engine, values=f"({TS}, 1, 100, true, 'a')")
    affected(engine, f"INSERT INTO d.t1 (ts, event_id, amt) VALUES ({TS}, 2, 5)")
    assert rows(engine, "SELECT event_id, amt, flag FROM d.t1 ORDER BY event_id") == [
        (1, 100, 1),
        (2, 5, None),
    ]


def test_composite_key_identity_and_duplicates_in_one_statement(engine: Engine) -> None:
    assert put(engine, values=f"({TS}, 1, 1, true, 'a')({TS}, 2, 2, true, 'a')") == 2
    assert put(engine, values=f"({TS}, 3, 1, true, 'a')({TS}, 3, 9, false, 'b')") == 1
    assert rows(engine, "SELECT event_id, amt FROM d.t1 WHERE event_id = 3") == [(3, 9)]
    assert rows(engine, "SELECT COUNT(*) FROM d.st") == [(3,)]
    # re-writes of existing rows count in affected_rows
    assert put(engine, values=f"({TS}, 1, 1, true, 'a')({TS}, 2, 2, true, 'a')") == 2


def test_same_key_in_two_subtables_is_two_rows(engine: Engine) -> None:
    put(engine, "t1", "1, 1")
    put(engine, "t2", "2, 1")
    assert rows(engine, "SELECT tbname, user_id FROM d.st ORDER BY tbname") == [
        ("t1", 1),
        ("t2", 2),
    ]


def test_tags_of_an_existing_subtable_never_change(engine: Engine) -> None:
    put(engine, "t1", "1, 2")
    put(engine, "t1", "9, 9", f"({TS}, 2, 1, true, 'a')")
    affected(
        engine,
        f"INSERT INTO d.st (tbname, user_id, account_type, ts, event_id, amt) "
        f"VALUES ('t1', 7, 7, {TS}, 3, 1) ('t3', 5, 6, {TS}, 1, 1)",
    )
    got = rows(
        engine,
        "SELECT tbname, user_id, account_type, COUNT(*) FROM d.st "
        "GROUP BY tbname, user_id, account_type ORDER BY tbname",
    )
    assert got == [("t1", 1, 2, 3), ("t3", 5, 6, 1)]


def test_subtable_under_another_stable_is_rejected(engine: Engine) -> None:
    engine.execute("CREATE STABLE d.other (ts TIMESTAMP, v INT) TAGS (t INT)")
    put(engine, "t1")
    err = fails(engine, f"INSERT INTO d.t1 USING d.other TAGS (1) VALUES ({TS}, 1)")
    assert (err.code, err.desc) == (0x061D, "Table already exists in other stables")


@pytest.mark.parametrize(
    ("type_name", "low", "high", "word"),
    [
        ("TINYINT", -128, 127, "tinyint"),
        ("SMALLINT", -32768, 32767, "smallint"),
        ("INT", -(2**31), 2**31 - 1, "int"),
        ("TINYINT UNSIGNED", 0, 255, "unsigned tinyint"),
        ("INT UNSIGNED", 0, 2**32 - 1, "unsigned int"),
    ],
)
def test_integer_ranges_are_checked_never_wrapped(
    engine: Engine, type_name: str, low: int, high: int, word: str
) -> None:
    engine.execute(f"CREATE STABLE d.r (ts TIMESTAMP, v {type_name}) TAGS (t INT)")
    sql = f"INSERT INTO d.r1 USING d.r TAGS (1) VALUES ({TS}, {{}})"
    assert affected(engine, sql.format(low)) == 1
    assert affected(engine, sql.format(high)) == 1
    err = fails(engine, sql.format(high + 1))
    assert (err.code, err.desc) == (
        0x0216,
        f"syntax error near '{high + 1})' ({word} data overflow)",
    )
    if low < 0:
        err = fails(engine, sql.format(low - 1))
        assert err.desc == f"syntax error near '{low - 1})' ({word} data overflow)"
    else:
        err = fails(engine, sql.format(-1))
        assert err.desc == f"syntax error near '-1)' (invalid {word} data)"


def test_bigint_limits(engine: Engine) -> None:
    sql = f"INSERT INTO d.t1 USING d.st TAGS (1, 1) (ts, event_id, amt) VALUES ({TS}, 1, {{}})"
    assert affected(engine, sql.format(2**63 - 1)) == 1
    assert affected(engine, sql.format(-(2**63))) == 1
    assert fails(engine, sql.format(2**63)).desc == (
        f"syntax error near '{2**63})' (invalid bigint data)"
    )


def test_overflow_message_quotes_at_most_63_bytes(engine: Engine) -> None:
    tail = ", ".join(["1"] * 40)
    engine.execute(
        "CREATE STABLE d.w (ts TIMESTAMP, a TINYINT, "
        + ", ".join(f"c{i} INT" for i in range(40))
        + ") TAGS (t INT)"
    )
    err = fails(engine, f"INSERT INTO d.w1 USING d.w TAGS (1) VALUES ({TS}, 300, {tail})")
    near = f"300, {tail})"[:63]
    assert err.desc == f"syntax error near '{near}' (tinyint data overflow)"


@pytest.mark.parametrize("literal", ["true", "FALSE", "'true'", "'False'", "0", "1", "-3"])
def test_bool_literals_accepted(engine: Engine, literal: str) -> None:
    sql = (
        f"INSERT INTO d.t1 USING d.st TAGS (1, 1) (ts, event_id, flag) VALUES ({TS}, 1, {literal})"
    )
    assert affected(engine, sql) == 1


@pytest.mark.parametrize("literal", ["'yes'", "'t'", "now", "''"])
def test_bad_bool_is_rejected(engine: Engine, literal: str) -> None:
    sql = (
        f"INSERT INTO d.t1 USING d.st TAGS (1, 1) (ts, event_id, flag) VALUES ({TS}, 1, {literal})"
    )
    err = fails(engine, sql)
    assert err.code == 0x0216 and err.desc.endswith("(invalid bool data)")


def test_keep_window_and_precision_maximum(engine: Engine) -> None:
    """A statement with one row outside [now - KEEP, max] fails whole; nothing is stored."""
    keep_us = 3650 * 86_400 * 1_000_000
    now_us = int(NOW_S * 1_000_000)
    sql = "INSERT INTO d.t1 USING d.st TAGS (1, 1) (ts, event_id) VALUES ({}, 1) ({}, 2)"
    err = fails(engine, sql.format(TS, now_us - keep_us - 1))
    assert (err.code, err.desc) == (0x060B, "Timestamp data out of range")
    assert rows(engine, "SHOW d.TABLES") == []
    assert affected(engine, sql.format(TS, now_us - keep_us)) == 2
    err = fails(engine, sql.format(TS, 31_556_995_200_000_001))
    assert err.code == 0x060B
    assert affected(engine, sql.format(TS, 31_556_995_200_000_000)) == 2


def test_keep_is_per_database(engine: Engine) -> None:
    engine.execute("CREATE DATABASE k PRECISION 'ms' KEEP 30 DURATION 1d")
    engine.execute("CREATE STABLE k.st (ts TIMESTAMP, v INT) TAGS (t INT)")
    now_ms = int(NOW_S * 1000)
    assert (
        affected(
            engine, f"INSERT INTO k.a USING k.st TAGS (1) VALUES ({now_ms - 29 * 86_400_000}, 1)"
        )
        == 1
    )
    assert fails(engine, f"INSERT INTO k.a VALUES ({now_ms - 31 * 86_400_000}, 1)").code == 0x060B


def test_multi_table_statement_is_all_or_nothing(engine: Engine) -> None:
    err = fails(
        engine,
        f"INSERT INTO d.t1 USING d.st TAGS (1, 1) VALUES ({TS}, 1, 1, true, 'a') "
        f"d.t2 USING d.st TAGS (2, 1) VALUES ({TS}, 1, 1, true, 'toolong')",
    )
    assert (err.code, err.desc) == (0x2653, "Value too long for column/tag: note")
    assert rows(engine, "SHOW d.TABLES") == []


def test_statement_limit_is_checked_on_bytes(engine: Engine) -> None:
    base = "SELECT SERVER_VERSION()"
    assert isinstance(engine.execute(base + " " * (MAX_SQL_BYTES - len(base))), QueryResult)
    err = fails(engine, base + " " * (MAX_SQL_BYTES - len(base) + 1))
    assert (err.code, err.desc) == (537, "SQL statement too long")


def test_string_timestamps_are_utc_and_render_per_precision(engine: Engine) -> None:
    affected(
        engine,
        "INSERT INTO d.t1 USING d.st TAGS (1, 1) (ts, event_id) "
        "VALUES ('2025-06-14 00:00:00.123456', 1)",
    )
    assert rows(engine, "SELECT CAST(ts AS BIGINT) FROM d.t1") == [(1_749_859_200_123_456,)]
    got = rows(engine, "SELECT COUNT(*) FROM d.st WHERE ts = '2025-06-14 00:00:00.123456'")
    assert got == [(1,)]


def test_select_filters_groups_orders_and_limits(engine: Engine) -> None:
    for user in range(1, 4):
        for acct in (1, 2):
            values = " ".join(f"({TS + k}, {k}, {user * 10 + k}, true, 'x')" for k in range(3))
            put(engine, f"u{user}_a{acct}", f"{user}, {acct}", values)
    got = rows(
        engine,
        "SELECT user_id, COUNT(*) AS n, SUM(amt) FROM d.st WHERE account_type = 1 "
        "AND user_id IN (1, 3) GROUP BY user_id ORDER BY user_id DESC",
    )
    assert got == [(3, 3, 93), (1, 3, 33)]
    got = rows(
        engine,
        "SELECT tbname FROM d.st WHERE event_id BETWEEN 1 AND 1 ORDER BY tbname LIMIT 2 OFFSET 1",
    )
    assert got == [("u1_a2",), ("u2_a1",)]
    got = rows(engine, "SELECT MIN(amt), MAX(amt) FROM d.u2_a2")
    assert got == [(20, 22)]


def test_aggregate_result_types(engine: Engine) -> None:
    put(engine)
    result = engine.execute(
        "SELECT COUNT(*), COUNT(note), SUM(amt), MAX(amt), CAST(ts AS BIGINT) x, tbname "
        "FROM d.st GROUP BY ts, tbname"
    )
    assert isinstance(result, QueryResult)
    assert [(c.name, c.type_name, c.length) for c in result.columns] == [
        ("count(*)", "BIGINT", 8),
        ("count(note)", "BIGINT", 8),
        ("sum(amt)", "BIGINT", 8),
        ("max(amt)", "BIGINT", 8),
        ("x", "BIGINT", 8),
        ("tbname", "VARCHAR", 270),
    ]


def test_min_and_max_take_no_timestamp(engine: Engine) -> None:
    """Recorded on 3.3.6.6: MIN(ts) is 0x2802 "Invalid parameter data type : min"."""
    put(engine)
    for name in ("min", "max"):
        err = fails(engine, f"SELECT {name.upper()}(ts) FROM d.st")
        assert (err.code, err.desc) == (0x2802, f"Invalid parameter data type : {name}")


def test_empty_aggregates(engine: Engine) -> None:
    """Recorded: COUNT over nothing returns one row of 0, SUM over nothing no row, and SUM
    over rows that are all NULL one row of NULL."""
    assert rows(engine, "SELECT COUNT(*) FROM d.st") == [(0,)]
    assert rows(engine, "SELECT SUM(amt) FROM d.st") == []
    assert rows(engine, "SELECT COUNT(*), SUM(amt) FROM d.st") == [(0, None)]
    assert rows(engine, "SELECT user_id, COUNT(*) FROM d.st GROUP BY user_id") == []
    put(engine, values=f"({TS}, 1, NULL, true, 'a')")
    assert rows(engine, "SELECT SUM(amt) FROM d.st") == [(None,)]
    assert rows(engine, "SELECT SUM(amt) FROM d.st WHERE amt > 5") == []


def test_group_by_tags_has_a_group_per_table_rows_or_not(engine: Engine) -> None:
    """Recorded: GROUP BY tags answers COUNT(*) 0 for tables without a matching row."""
    put(engine, "t1", "1, 1", f"({TS}, 1, 10, true, 'a')")
    put(engine, "t2", "2, 1", f"({TS}, 2, 20, true, 'a')")
    put(engine, "t3", "3, 2", f"({TS}, 3, 30, true, 'a')")
    got = rows(
        engine,
        "SELECT user_id, account_type, COUNT(*), SUM(amt) FROM d.st WHERE amt = 10 "
        "GROUP BY user_id, account_type",
    )
    assert sorted(got) == [(1, 1, 1, 10), (2, 1, 0, None), (3, 2, 0, None)]
    # tag conditions choose the tables first; without COUNT an empty group shows nothing
    got = rows(
        engine,
        "SELECT user_id, COUNT(*) FROM d.st WHERE amt = 10 AND account_type = 1 GROUP BY user_id",
    )
    assert sorted(got) == [(1, 1), (2, 0)]
    assert rows(engine, "SELECT user_id, SUM(amt) FROM d.st WHERE amt = 10 GROUP BY user_id") == [
        (1, 10)
    ]
    # a column in GROUP BY: groups come from rows only
    assert rows(engine, "SELECT amt, COUNT(*) FROM d.st WHERE amt = 10 GROUP BY amt") == [(10, 1)]
    err = fails(
        engine,
        "SELECT user_id, COUNT(*) FROM d.st WHERE amt = 10 GROUP BY user_id ORDER BY user_id",
    )
    assert err.code == 0x0100


def test_sum_wraps_around_like_tdengine(engine: Engine) -> None:
    """Recorded: two rows of 2^63-1 sum to -2 (a silent 64-bit wrap), and the wrap is
    modular, so a sum that overflows midway and comes back is exact."""
    big = 2**63 - 1
    put(engine, values=f"({TS}, 1, {big}, true, 'a')({TS}, 2, {big}, true, 'a')")
    assert rows(engine, "SELECT SUM(amt) FROM d.st") == [(-2,)]
    put(engine, "t2", "2, 2", f"({TS}, 1, {big}, true, 'a')({TS}, 2, 1, true, 'a')")
    put(engine, "t2", "2, 2", f"({TS}, 3, -1, true, 'a')")
    assert rows(engine, "SELECT SUM(amt) FROM d.t2") == [(big,)]
    assert rows(engine, "SELECT tbname, SUM(amt) FROM d.st GROUP BY tbname ORDER BY tbname") == [
        ("t1", -2),
        ("t2", big),
    ]


@pytest.mark.parametrize(
    ("sql", "code"),
    [
        ("SELECT user_id, COUNT(*) FROM d.st", 0x260C),
        ("SELECT amt, COUNT(*) FROM d.st GROUP BY user_id", 0x260A),
        ("SELECT amt FROM d.st WHERE COUNT(*) > 1", 0x2608),
        ("SELECT nope FROM d.st", 0x2602),
        ("SELECT SUM(note) FROM d.st", 0x2802),
        ("SELECT * FROM st", 0x2616),
        ("SELECT * FROM x.st", 0x0388),
    ],
)
def test_select_semantic_errors(engine: Engine, sql: str, code: int) -> None:
    assert fails(engine, sql).code == code


def test_version_dependent_behaviour() -> None:
    old = Engine(server_version="3.3.2.0", clock=lambda: NOW_S)
    old.execute("CREATE DATABASE d")
    old.execute("CREATE STABLE d.st (ts TIMESTAMP, k BIGINT PRIMARY KEY) TAGS (t INT)")
    with pytest.raises(TDengineError):
        old.execute("CREATE STABLE d.s2 (ts TIMESTAMP, k BIGINT COMPOSITE KEY) TAGS (t INT)")
    desc = old.execute("DESCRIBE d.st")
    assert isinstance(desc, QueryResult)
    assert desc.rows[1][3] == "PRIMARY KEY"
    with pytest.raises(TDengineError) as info:
        old.execute("SELECT * FROM d.nope")
    assert info.value.code == 0x2662
    err = TDengineError(0, "")
    try:
        old.execute("CREATE STABLE d.s3 (ts TIMESTAMP, v INT, k BIGINT PRIMARY KEY) TAGS (t INT)")
    except TDengineError as exc:
        err = exc
    assert (err.code, err.desc) == (0x2678, "primary key column must be second column")


def test_describe_shape(engine: Engine) -> None:
    result = engine.execute("DESCRIBE d.st")
    assert isinstance(result, QueryResult)
    assert [c.name for c in result.columns] == [
        "field",
        "type",
        "length",
        "note",
        "encode",
        "compress",
        "level",
    ]
    assert result.rows[1][:4] == ("event_id", "BIGINT", 8, "COMPOSITE KEY")
    assert result.rows[4][:4] == ("note", "VARCHAR", 4, "")
    assert result.rows[5] == ("user_id", "BIGINT", 8, "TAG", "disabled", "disabled", "disabled")


@pytest.mark.parametrize(
    ("sql", "code"),
    [
        ("CREATE DATABASE d", 0x0381),
        ("CREATE DATABASE x PRECISION 'xs'", 0x2619),
        ("CREATE DATABASE x KEEP 20", 0x2619),
        ("CREATE DATABASE x KEEP 30 DURATION 11d", 0x2619),
        ("CREATE DATABASE x DURATION 30m", 0x2619),
        ("CREATE DATABASE x WAL_LEVEL 3", 0x2619),
        ("CREATE STABLE d.s (v INT, ts TIMESTAMP) TAGS (t INT)", 0x2641),
        ("CREATE STABLE d.s (ts TIMESTAMP, v INT, v BIGINT) TAGS (t INT)", 0x263C),
        ("CREATE STABLE d.s (ts TIMESTAMP, v INT) TAGS (v INT)", 0x263C),
        ("CREATE STABLE d.s (ts TIMESTAMP) TAGS (t INT)", 0x263F),
        ("CREATE STABLE d.s (ts TIMESTAMP, v VARCHAR(0)) TAGS (t INT)", 0x2642),
        ("CREATE STABLE x.s (ts TIMESTAMP, v INT) TAGS (t INT)", 0x0388),
        ("DROP DATABASE nope", 0x0388),
    ],
)
def test_ddl_errors(engine: Engine, sql: str, code: int) -> None:
    assert fails(engine, sql).code == code


def test_if_not_exists_and_drop(engine: Engine) -> None:
    assert affected(engine, "CREATE DATABASE IF NOT EXISTS d PRECISION 'ms'") == 0
    assert affected(engine, DDL.replace("STABLE d.st", "STABLE IF NOT EXISTS d.st")) == 0
    put(engine)
    show = engine.execute("SHOW DATABASES")
    assert isinstance(show, QueryResult)
    assert [c.name for c in show.columns] == ["name"]  # recorded: the precision is elsewhere
    assert show.rows == [("information_schema",), ("performance_schema",), ("d",)]
    precision = rows(
        engine, "SELECT `precision` FROM information_schema.ins_databases WHERE name = 'd'"
    )
    assert precision == [("us",)]
    assert affected(engine, "DROP DATABASE d") == 0
    assert fails(engine, "SELECT * FROM d.st").code == 0x0388
    assert affected(engine, "DROP DATABASE IF EXISTS d") == 0


def test_file_storage_survives_a_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "double.sqlite")
    first = Engine(db_file=path, clock=lambda: NOW_S)
    first.execute("CREATE DATABASE d PRECISION 'us'")
    first.execute(DDL)
    put(first)
    first.close()
    second = Engine(db_file=path, clock=lambda: NOW_S)
    assert rows(second, "SELECT tbname, amt FROM d.st") == [("t1", 100)]
    put(second, "t2", "5, 5")
    assert rows(second, "SELECT COUNT(*) FROM d.st") == [(2,)]
    second.close()


def test_url_database_that_does_not_exist_is_ignored_like_a_failed_use(engine: Engine) -> None:
    err = fails_with_default(engine, "SELECT * FROM st", "nope")
    assert (err.code, err.desc) == (0x2616, "Database not specified")
    err = fails_with_default(engine, f"INSERT INTO t1 VALUES ({TS}, 1, 1, true, 'a')", "nope")
    assert (err.code, err.desc) == (0x0200, "db is not specified")
    put(engine)
    result = engine.execute("SELECT COUNT(*) FROM st", default_db="d")
    assert isinstance(result, QueryResult) and result.rows == [(1,)]


def fails_with_default(engine: Engine, sql: str, db: str) -> TDengineError:
    with pytest.raises(TDengineError) as info:
        engine.execute(sql, default_db=db)
    return info.value


@pytest.mark.parametrize(
    ("sql", "desc"),
    [  # as 3.3.6.13 answers them, byte for byte (the fourth was not asked)
        ("INSERT d.t1 VALUES (1)",
         "syntax error near 'd.t1 values (1)' (keyword INTO is expected)"),
        ("INSERT INTO d.t1 USING d.st TAGS 1, 2 VALUES (1,2,3)",
         "syntax error near '1, 2 values (1,2,3)' (( is expected)"),
        ("INSERT INTO d.t1 USING d.st TAGX (1, 2) VALUES (1,2,3)",
         "syntax error near 'tagx (1, 2) values (1,2,3)' (TAGS is expected)"),
        ("INSERT INTO d.t1 USING d.st (user_id, account_type) TAG (1, 2) VALUES (1,2,3)",
         "syntax error near 'tag (1, 2) values (1,2,3)' (TAGS is expected)"),
        ("INSERT INTO d.t1 USING d.st TAGS (1, 2) VALUE (1,2,3)",
         "syntax error near 'value (1,2,3)' (keyword VALUES or FILE is expected)"),
    ],
)  # fmt: skip
def test_a_misspelt_insert_is_a_syntax_error_naming_the_keyword(
    engine: Engine, sql: str, desc: str
) -> None:
    error = fails(engine, sql)
    assert (error.code, error.desc) == (0x0216, desc)
