"""Parser of the TDengine double: the accepted subset, and 0x2600 for everything else."""

from __future__ import annotations

import pytest

from standins.tdengine_double import lexer as L, statements as S
from standins.tdengine_double.errors import TDengineError
from standins.tdengine_double.sql import Parser


def parse(text: str, key_keywords: tuple[str, ...] = ("composite", "primary")) -> S.Statement:
    return Parser(L.lower_outside_quotes(text), key_keywords=key_keywords).statement()


def test_lowering_keeps_quoted_text() -> None:
    assert L.lower_outside_quotes("SELECT 'AbC', `Tb` FROM X") == "select 'AbC', `Tb` from x"
    assert L.lower_outside_quotes("A 'it''S' \"Q\\\"X\" B") == "a 'it''S' \"Q\\\"X\" b"


def test_unquote_string_resolves_escapes_like_trimstring() -> None:
    assert L.unquote_string("'it''s'") == "it's"
    assert L.unquote_string(r"'a\'b\\c\nd'") == "a'b\\c\nd"
    assert L.unquote_string(r"'50\%'") == r"50\%"


def test_tokens_carry_positions_in_the_lowered_text() -> None:
    toks = L.tokenize("insert into `Db`.t values (-1, 'x')")
    kinds = [t.kind for t in toks]
    assert kinds[:4] == ["id", "id", "qid", "op"]
    assert toks[-1].kind == "eof"
    assert all(t.pos <= t.end for t in toks)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("CREATE DATABASE d", S.CreateDatabase),
        (
            "CREATE DATABASE IF NOT EXISTS d PRECISION 'us' KEEP 3650d DURATION 10d WAL_LEVEL 2",
            S.CreateDatabase,
        ),
        ("create database d keep 30, 60, 90 duration 1440m", S.CreateDatabase),
        (
            "CREATE STABLE IF NOT EXISTS `d`.`st` (ts TIMESTAMP, event_id BIGINT COMPOSITE KEY, "
            "v VARCHAR(8), f BOOL) TAGS (user_id BIGINT, account_type TINYINT)",
            S.CreateStable,
        ),
        ("SHOW DATABASES", S.ShowDatabases),
        ("SHOW d.STABLES", S.ShowStables),
        ("SHOW STABLES;", S.ShowStables),
        ("SHOW `d`.TABLES", S.ShowTables),
        ("DESCRIBE d.st", S.Describe),
        ("DESC `d`.`st`", S.Describe),
        ("DROP DATABASE IF EXISTS d", S.DropDatabase),
        ("DROP STABLE d.st", S.DropStable),
        ("USE d", S.UseDatabase),
        ("SHOW CREATE DATABASE `d`", S.ShowCreateDatabase),
        ("SHOW CREATE STABLE d.st", S.ShowCreateStable),
        ("DELETE FROM d.t1 WHERE ts >= 1 AND ts < 2", S.Delete),
        ("DELETE FROM d.t1", S.Delete),
        ("SELECT SERVER_VERSION()", S.SelectStmt),
        ("SELECT 1", S.SelectStmt),
        ("SELECT LAST_ROW(*) FROM d.st", S.SelectStmt),
        ("SELECT DISTINCT tbname FROM d.st", S.SelectStmt),
        ("SELECT tbname, amt FROM d.st PARTITION BY tbname LIMIT 3", S.SelectStmt),
        ("SELECT * FROM d.st", S.SelectStmt),
        (
            "SELECT user_id, account_type, COUNT(*) AS n, SUM(amt), MIN(ts), MAX(ts), "
            "CAST(ts AS BIGINT) t FROM d.st WHERE (ts >= 1 AND ts < '2025-06-15 00:00:00') "
            "OR user_id IN (1, 2) AND amt IS NOT NULL AND amt NOT BETWEEN -5 AND 5 "
            "GROUP BY user_id, account_type ORDER BY n DESC, user_id LIMIT 10 OFFSET 5",
            S.SelectStmt,
        ),
        ("SELECT tbname, COUNT(amt) FROM d.st GROUP BY tbname", S.SelectStmt),
    ],
)
def test_accepted_subset(text: str, kind: type) -> None:
    assert isinstance(parse(text), kind)


def test_create_database_options_in_minutes() -> None:
    stmt = parse("CREATE DATABASE d PRECISION 'ns' KEEP 30d, 2h, 100 DURATION 60m WAL_LEVEL 1")
    assert isinstance(stmt, S.CreateDatabase)
    assert stmt.precision == "ns"
    assert stmt.keep_minutes == (30 * 1440, 120, 100 * 1440)
    assert stmt.duration_minutes == 60


def test_select_keeps_expression_text_for_column_names() -> None:
    stmt = parse("SELECT COUNT(*), Sum(Amt) AS total FROM d.st")
    assert isinstance(stmt, S.SelectStmt)
    assert [i.text for i in stmt.items] == ["count(*)", "sum(amt)"]
    assert stmt.items[1].alias == "total"


@pytest.mark.parametrize(
    ("text", "near"),
    [
        ("SELEC * FROM st", "selec * from st"),
        ("CREATE STABLE d.st (ts TIMESTAMP, v WIDEINT) TAGS (t INT)", "wideint) tags (t int)"),
        ("SELECT value FROM d.st", "value from d.st"),
        ("SELECT a FROM d.st x", "x"),
    ],
)
def test_what_does_not_parse_is_a_syntax_error_near_the_rest(text: str, near: str) -> None:
    with pytest.raises(TDengineError) as info:
        parse(text)
    assert info.value.code == 0x2600
    assert info.value.desc == f'syntax error near "{near}"'


@pytest.mark.parametrize(
    "text", ["CREATE STABLE d.st (ts TIMESTAMP, v INT)", "SHOW", "SELECT * FROM", "SELECT"]
)
def test_a_statement_that_ends_early_is_incomplete(text: str) -> None:
    with pytest.raises(TDengineError) as info:
        parse(text)
    assert (info.value.code, info.value.desc) == (0x2601, "Incomplete SQL statement")


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("SHOW VGROUPS", "SHOW VGROUPS"),
        ("ALTER TABLE d.st ADD COLUMN x INT", "ALTER statements"),
        ("CREATE TABLE d.t (ts TIMESTAMP, v INT)", "CREATE TABLE"),
        ("DROP TABLE d.t", "DROP TABLE"),
        ("SHOW CREATE TABLE d.t", "SHOW CREATE TABLE"),
        ("CREATE STABLE d.st (ts TIMESTAMP, v JSON) TAGS (t INT)", "type JSON"),
        ("SELECT a FROM d.st JOIN d.x", 'JOIN (near "join d.x")'),
        ("SELECT a FROM d.st INTERVAL(1s)", 'INTERVAL (near "interval(1s)")'),
        ("SELECT * FROM (SELECT * FROM d.st)", "subqueries"),
        ("SELECT a + b FROM d.st", 'arithmetic (near "+ b from d.st")'),
        ("SELECT a FROM d.st WHERE a LIKE 'x%'", "LIKE conditions"),
        ("SELECT LAST(a) FROM d.st", "function last()"),
        ("CREATE DATABASE d CACHEMODEL 'both'", "database option CACHEMODEL"),
        ("SELECT a FROM d.st LIMIT 1, 2", "LIMIT offset, count"),
    ],
)
def test_valid_tdengine_the_stand_in_lacks_is_not_implemented(text: str, what: str) -> None:
    """Never a made-up answer, never a misleading syntax error: 0x0100 naming the feature."""
    with pytest.raises(TDengineError) as info:
        parse(text)
    assert info.value.code == 0x0100
    assert info.value.desc == f"not implemented by the TDengine stand-in: {what}"


def test_only_the_first_statement_is_read() -> None:
    """Recorded: ``SELECT 1; SELECT 2`` answers the first; the rest is never parsed."""
    stmt = parse("SELECT * FROM d.st; SELEC garbage")
    assert isinstance(stmt, S.SelectStmt) and stmt.star


def test_key_keywords_depend_on_the_server_version() -> None:
    """3.3.6.6 takes both keywords (recorded); before 3.3.6.3 only PRIMARY KEY exists."""
    ddl = "CREATE STABLE d.st (ts TIMESTAMP, k BIGINT {} KEY) TAGS (t INT)"
    for word in ("PRIMARY", "COMPOSITE"):
        stmt = parse(ddl.format(word))
        assert isinstance(stmt, S.CreateStable) and stmt.columns[1].key_keyword == word.lower()
    assert isinstance(parse(ddl.format("PRIMARY"), key_keywords=("primary",)), S.CreateStable)
    with pytest.raises(TDengineError) as info:
        parse(ddl.format("COMPOSITE"), key_keywords=("primary",))
    assert info.value.desc == 'syntax error near "composite key) tags (t int)"'


def test_reserved_words_need_backquotes() -> None:
    with pytest.raises(TDengineError):
        parse("CREATE STABLE d.st (ts TIMESTAMP, value INT) TAGS (t INT)")
    stmt = parse("CREATE STABLE d.st (ts TIMESTAMP, `value` INT) TAGS (t INT)")
    assert isinstance(stmt, S.CreateStable)
    assert stmt.columns[1].name == "value"
