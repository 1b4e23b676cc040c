"""DDL rendering, server-version rules, DESCRIBE checks and ``TDengineOptions``."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import msgspec
import pytest

from worker.tdengine.errors import OptionsError, SchemaMismatchError, UnsupportedServerError
from worker.tdengine.options import TDengineOptions
from worker.tdengine.schema import (
    check_describe,
    composite_key_keyword,
    create_database_sql,
    create_stable_sql,
    describe_differences,
    describe_sql,
    parse_server_version,
)

TEMPLATE = Path(__file__).resolve().parents[2] / "schemas" / "tdengine.sql"

DESCRIBE_COLUMNS = ("field", "type", "length", "note", "encode", "compress", "level")


def described(key_note: str = "PRIMARY KEY") -> list[list[object]]:
    """A DESCRIBE result of the expected super table, as a 3.3 server shows it."""
    rows: list[list[object]] = [
        ["ts", "TIMESTAMP", 8, "", "delta-i", "lz4", "medium"],
        ["event_id", "BIGINT", 8, key_note, "delta-i", "lz4", "medium"],
        ["event_type", "TINYINT", 1, "", "simple8b", "lz4", "medium"],
        ["trade_id", "BIGINT", 8, "", "delta-i", "lz4", "medium"],
        ["debit_asset", "INT", 4, "", "simple8b", "lz4", "medium"],
        ["debit_amt", "BIGINT", 8, "", "delta-i", "lz4", "medium"],
        ["credit_asset", "INT", 4, "", "simple8b", "lz4", "medium"],
        ["credit_amt", "BIGINT", 8, "", "delta-i", "lz4", "medium"],
        ["fee", "BIGINT", 8, "", "delta-i", "lz4", "medium"],
        ["fee_asset", "INT", 4, "", "simple8b", "lz4", "medium"],
        ["is_maker", "BOOL", 1, "", "bit-packing", "lz4", "medium"],
        ["from_user", "BIGINT", 8, "", "delta-i", "lz4", "medium"],
        ["user_id", "BIGINT", 8, "TAG", "disabled", "disabled", "disabled"],
        ["account_type", "TINYINT", 1, "TAG", "disabled", "disabled", "disabled"],
    ]
    return rows


# ------------------------------------------------------------------- versions


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ("3.3.0.0", "PRIMARY KEY"),
        ("3.3.2.0", "PRIMARY KEY"),
        ("3.3.6.0-alpha", "PRIMARY KEY"),
        ("3.3.6.2", "PRIMARY KEY"),
        ("3.3.6.3", "COMPOSITE KEY"),
        ("3.3.6.3-alpha", "COMPOSITE KEY"),
        ("3.3.7.0", "COMPOSITE KEY"),
        ("3.4.0.0", "COMPOSITE KEY"),
        ("3.4.1.12", "COMPOSITE KEY"),
        (" 3.3.6.13\n", "COMPOSITE KEY"),
        ("3.3.6.6", "COMPOSITE KEY"),
        ("3.3.6.6.alpha", "COMPOSITE KEY"),
        ("3.3.6.2.alpha", "PRIMARY KEY"),
        ("3.3.6", "PRIMARY KEY"),
        ("4.0.0.0", "COMPOSITE KEY"),
    ],
)
def test_keyword_follows_the_server_version(text: str, keyword: str) -> None:
    assert composite_key_keyword(parse_server_version(text)) == keyword


@pytest.mark.parametrize(
    ("text", "numbers", "suffix"),
    [
        ("3.3.6.0-alpha", (3, 3, 6, 0), "-alpha"),
        ("3.3.6.6.alpha", (3, 3, 6, 6), ".alpha"),  # a server built from source
        ("3.3.6.6", (3, 3, 6, 6), ""),
        ("3.3.6.13.7", (3, 3, 6, 13), ".7"),
        ("3.4.0.0+g1a2b3c", (3, 4, 0, 0), "+g1a2b3c"),
    ],
)
def test_version_parts_and_suffix_are_read(
    text: str, numbers: tuple[int, int, int, int], suffix: str
) -> None:
    version = parse_server_version(text)
    assert version.numbers == numbers
    assert version.suffix == suffix
    assert str(version) == text


@pytest.mark.parametrize("text", ["3.2.3.0", "3.0.0.0", "2.6.0.34", "3.2.99.99"])
def test_servers_older_than_3_3_are_refused_with_the_reason(text: str) -> None:
    with pytest.raises(UnsupportedServerError, match="composite primary key") as info:
        composite_key_keyword(parse_server_version(text))
    assert info.value.version == text
    assert "idempotent" in str(info.value)


@pytest.mark.parametrize(
    "text", ["", "three", "3.3", "v", "3.3.x.1", "x3.3.6.3", "3.3.6.6alpha", "alpha.3.3.6.6"]
)
def test_unreadable_versions_are_refused(text: str) -> None:
    with pytest.raises(UnsupportedServerError, match="cannot read"):
        parse_server_version(text)


# ------------------------------------------------------------------------ DDL


def test_create_database_sends_only_configured_options() -> None:
    plain = TDengineOptions(database="ledger")
    assert create_database_sql(plain) == "CREATE DATABASE IF NOT EXISTS `ledger` PRECISION 'us'"
    tuned = TDengineOptions(database="ledger", keep="3650d", duration="10d", wal_level=2)
    assert create_database_sql(tuned) == (
        "CREATE DATABASE IF NOT EXISTS `ledger` PRECISION 'us' KEEP 3650d DURATION 10d WAL_LEVEL 2"
    )
    assert create_database_sql(TDengineOptions(wal_level=1)).endswith("PRECISION 'us' WAL_LEVEL 1")


@pytest.mark.parametrize("keyword", ["PRIMARY KEY", "COMPOSITE KEY"])
def test_create_stable_is_the_contract_statement(keyword: str) -> None:
    assert create_stable_sql("ledger", keyword) == (  # type: ignore[arg-type]
        "CREATE STABLE IF NOT EXISTS `ledger`.`balance_events` (ts TIMESTAMP, "
        f"event_id BIGINT {keyword}, event_type TINYINT, trade_id BIGINT, debit_asset INT, "
        "debit_amt BIGINT, credit_asset INT, credit_amt BIGINT, fee BIGINT, fee_asset INT, "
        "is_maker BOOL, from_user BIGINT) TAGS (user_id BIGINT, account_type TINYINT)"
    )
    assert describe_sql("ledger") == "DESCRIBE `ledger`.`balance_events`"


def _template_statements() -> list[str]:
    text = "\n".join(
        line for line in TEMPLATE.read_text().splitlines() if not line.lstrip().startswith("--")
    )
    statements = []
    for raw in text.split(";"):
        flat = re.sub(r"\s+", " ", raw).strip()
        flat = flat.replace("( ", "(").replace(" )", ")")
        if flat:
            statements.append(flat)
    return statements


@pytest.mark.parametrize(
    ("options", "keyword"),
    [
        (TDengineOptions(database="ledger"), "PRIMARY KEY"),
        (TDengineOptions(database="book_2", keep="365d", wal_level=2), "COMPOSITE KEY"),
        (TDengineOptions(database="x", keep="30d,90d,3650d", duration="10d"), "COMPOSITE KEY"),
    ],
)
def test_template_file_and_renderer_agree(options: TDengineOptions, keyword: str) -> None:
    database_options = ""
    if options.keep:
        database_options += f" KEEP {options.keep}"
    if options.duration:
        database_options += f" DURATION {options.duration}"
    if options.wal_level:
        database_options += f" WAL_LEVEL {options.wal_level}"
    filled = [
        s.replace("{database}", options.database)
        .replace("{database_options}", database_options)
        .replace("{key}", keyword)
        for s in _template_statements()
    ]
    assert filled == [
        create_database_sql(options),
        create_stable_sql(options.database, keyword),  # type: ignore[arg-type]
    ]


# ------------------------------------------------------------------- DESCRIBE


@pytest.mark.parametrize("note", ["PRIMARY KEY", "COMPOSITE KEY", "primary key"])
def test_matching_super_table_passes(note: str) -> None:
    assert describe_differences(DESCRIBE_COLUMNS, described(note)) == ()
    check_describe("ledger", DESCRIBE_COLUMNS, described(note))


def test_four_column_describe_of_older_servers_is_understood() -> None:
    rows = [row[:4] for row in described()]
    assert describe_differences(("field", "type", "length", "note"), rows) == ()


def test_every_difference_is_listed() -> None:
    rows = described(key_note="")  # composite key lost
    rows[3] = ["trade_id", "INT", 4, "", "", "", ""]  # wrong type
    del rows[9]  # fee_asset missing
    rows.insert(5, ["memo", "VARCHAR", 64, "", "", "", ""])  # extra column
    rows[-2] = ["user_id", "BIGINT", 8, "", "", "", ""]  # tag turned into a column
    with pytest.raises(SchemaMismatchError) as info:
        check_describe("ledger", DESCRIBE_COLUMNS, rows)
    differences = info.value.differences
    text = str(info.value)
    assert "`ledger`.`balance_events`" in text
    expected_fragments = [
        "column `trade_id` is INT, expected BIGINT",
        "column `fee_asset` INT is missing",
        "unexpected column `memo` VARCHAR",
        "unexpected column `user_id` BIGINT",
        "tag `user_id` BIGINT is missing",
        "column `event_id` is not the composite key",
    ]
    for fragment in expected_fragments:
        assert any(fragment in d for d in differences), (fragment, differences)
        assert fragment in text
    assert len(differences) == len(expected_fragments)


def test_column_order_difference_is_reported() -> None:
    rows = described()
    rows[2], rows[3] = rows[3], rows[2]
    differences = describe_differences(DESCRIBE_COLUMNS, rows)
    assert len(differences) == 1
    assert "order" in differences[0]
    assert "event_type, trade_id" in differences[0]


def test_composite_key_on_another_column_is_reported() -> None:
    rows = described(key_note="")
    rows[3][3] = "COMPOSITE KEY"
    differences = describe_differences(DESCRIBE_COLUMNS, rows)
    assert any("`trade_id` is a composite key" in d for d in differences)
    assert any("`event_id` is not the composite key" in d for d in differences)


def test_tag_type_difference_is_reported() -> None:
    rows = described()
    rows[-1][1] = "INT"
    assert describe_differences(DESCRIBE_COLUMNS, rows) == (
        "tag `account_type` is INT, expected TINYINT",
    )


def test_schema_errors_pickle_with_their_details() -> None:
    error = SchemaMismatchError("super table `x`.`balance_events`", ("a", "b"))
    copy = pickle.loads(pickle.dumps(error))
    assert copy.differences == ("a", "b") and str(copy) == str(error)
    old = UnsupportedServerError("3.2.0.0", "too old")
    assert pickle.loads(pickle.dumps(old)).version == "3.2.0.0"


# -------------------------------------------------------------------- options


def test_defaults() -> None:
    options = TDengineOptions()
    assert options.url == "http://localhost:6041"
    assert (options.user, options.password, options.database) == ("root", "taosdata", "ledger")
    assert options.create_database is True
    assert options.max_statement_bytes == 1_048_000
    assert options.retry_max_elapsed_s <= 30
    assert 0 < options.startup_timeout_s <= 60
    assert options.scheme == "http"


def test_the_removed_attempt_cap_is_refused_by_name_not_ignored() -> None:
    """``retry_max_attempts`` cut the documented time budget short; it is gone, and a
    configuration that still sets it fails at start-up rather than being ignored."""
    with pytest.raises(msgspec.ValidationError, match="retry_max_attempts"):
        msgspec.toml.decode(b"retry_max_attempts = 8\n", type=TDengineOptions)


def test_password_never_appears_in_repr_str_or_rich_output() -> None:
    options = TDengineOptions(password="hunter2-secret")
    assert "hunter2-secret" not in repr(options)
    assert "hunter2-secret" not in str(options)
    assert "hunter2-secret" not in repr(options.__rich_repr__())
    assert "password='***'" in repr(options)
    assert options.password == "hunter2-secret"


def test_options_decode_from_config_with_validation() -> None:
    decoded = msgspec.toml.decode(
        b'url = "wss://td.example:6041"\ndatabase = "book"\nkeep = "3650d"\nwal_level = 2\n',
        type=TDengineOptions,
    )
    assert decoded.scheme == "wss" and decoded.database == "book"
    with pytest.raises(msgspec.ValidationError, match="database"):
        msgspec.toml.decode(b'database = "select"\n', type=TDengineOptions)
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.toml.decode(b'databse = "x"\n', type=TDengineOptions)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("url", "ftp://localhost:6041"),
        ("url", "localhost:6041"),
        ("url", "http://root:taosdata@localhost:6041"),
        ("url", "http://localhost:6041/rest/sql"),
        ("url", "http://localhost:notaport"),
        ("user", ""),
        ("user", "a:b"),
        ("password", ""),
        ("database", "1db"),
        ("database", "ledger; DROP"),
        ("keep", "forever"),
        ("keep", "3650d; DROP DATABASE x"),
        ("duration", "10 days"),
        ("wal_level", 0),
        ("wal_level", 3),
        ("max_statement_bytes", 1_048_577),
        ("max_statement_bytes", 100),
        ("request_timeout_s", 0),
        ("retry_initial_backoff_s", 0),
        ("retry_max_backoff_s", 0.01),
        ("retry_max_elapsed_s", -1),
        ("retry_max_elapsed_s", float("inf")),
        ("startup_timeout_s", -1),
        ("startup_timeout_s", float("nan")),
        ("startup_timeout_s", float("inf")),
    ],
)
def test_invalid_options_are_refused_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(OptionsError) as info:
        TDengineOptions(**{field: value})  # type: ignore[arg-type]
    assert info.value.field == f"tdengine.{field}"
    assert "taosdata" not in str(info.value)


def test_exact_sql_limit_is_an_allowed_statement_size() -> None:
    assert TDengineOptions(max_statement_bytes=1_048_576).max_statement_bytes == 1_048_576
