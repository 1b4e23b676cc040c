"""Pure INSERT building: grouping, ordering, splitting, rendering and value guards."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

import msgspec
import pytest
from hypothesis import given, settings, strategies as st

from tests.unit.reference_sql import reference_statements
from worker.core.events import BalanceEvent
from worker.tdengine.errors import OptionsError, RowValueError, StatementSizeError
from worker.tdengine.sql import (
    COLUMNS,
    MAX_SQL_BYTES,
    MIN_STATEMENT_BYTES,
    EventRow,
    InsertBuilder,
    InsertStatement,
    build_insert_statements,
    check_database_name,
    check_events,
    quote_identifier,
    subtable_name,
)

ParsedRow = tuple[object, ...]
"""(user_id, account_type, ts, event_id, event_type, ..., from_user): tags then columns."""

_HEADER = re.compile(
    r" `(?P<db>\w+)`\.`u(?P<u>\d+)_a(?P<a>\d+)` USING `(?P=db)`\.`balance_events` "
    r"TAGS \((?P<tu>-?\d+),(?P<ta>-?\d+)\) VALUES "
)
_TUPLE = re.compile(r"\(([^()]*)\)")
_FIELDS = ("user_id", "account_type", *(name for name, _ in COLUMNS))


def _value(text: str) -> object:
    if text == "NULL":
        return None
    if text in ("true", "false"):
        return text == "true"
    assert re.fullmatch(r"-?\d+", text), text
    return int(text)


def parse_statement(sql: str) -> list[ParsedRow]:
    """Parse one statement back into rows; fails on anything but the exact contract form."""
    assert sql.startswith("INSERT INTO `"), sql[:40]
    rows: list[ParsedRow] = []
    position = len("INSERT INTO")
    while position < len(sql):
        header = _HEADER.match(sql, position)
        assert header is not None, sql[position : position + 80]
        user, account = int(header["u"]), int(header["a"])
        assert (int(header["tu"]), int(header["ta"])) == (user, account)
        position = header.end()
        while True:  # tuples separated by one space, up to the next header or the end
            found = _TUPLE.match(sql, position)
            assert found is not None, sql[position : position + 80]
            values = [_value(v) for v in found.group(1).split(",")]
            assert len(values) == len(COLUMNS)
            rows.append((user, account, *values))
            position = found.end()
            if position == len(sql) or sql.startswith(" `", position):
                break
            assert sql.startswith(" (", position), sql[position : position + 20]
            position += 1
    return rows


def as_row(event: BalanceEvent) -> ParsedRow:
    return tuple(getattr(event, name) for name in _FIELDS)


def expected_rows(events: Sequence[BalanceEvent]) -> list[ParsedRow]:
    # Stable sort: equal identities keep input order.
    return [
        as_row(e)
        for e in sorted(events, key=lambda e: (e.user_id, e.account_type, e.ts, e.event_id))
    ]


def event(
    *,
    ts: int = 1_700_000_000_000_000,
    event_id: int = 400,
    user_id: int = 7,
    account_type: int = 1,
    **overrides: object,
) -> BalanceEvent:
    fields: dict[str, object] = dict(
        ts=ts,
        event_id=event_id,
        event_type=1,
        trade_id=event_id // 4,
        user_id=user_id,
        account_type=account_type,
        debit_asset=2,
        debit_amt=12_345,
        credit_asset=1,
        credit_amt=67_890,
        fee=12,
        fee_asset=1,
        is_maker=True,
        from_user=None,
    )
    fields.update(overrides)
    return BalanceEvent(**fields)  # type: ignore[arg-type]


def trade_events(trade_id: int, ts: int, buyer: int, seller: int) -> list[BalanceEvent]:
    """The four rows of one trade: buyer, seller and two platform fee rows."""
    base = trade_id * 4
    return [
        event(ts=ts, event_id=base, user_id=buyer, is_maker=True),
        event(ts=ts, event_id=base + 1, user_id=seller, is_maker=False),
        event(
            ts=ts,
            event_id=base + 2,
            user_id=0,
            event_type=2,
            debit_asset=None,
            debit_amt=None,
            is_maker=False,
            from_user=buyer,
        ),
        event(
            ts=ts,
            event_id=base + 3,
            user_id=0,
            event_type=2,
            debit_asset=None,
            debit_amt=None,
            is_maker=False,
            from_user=seller,
        ),
    ]


def all_rows(statements: Sequence[InsertStatement]) -> list[ParsedRow]:
    return [row for s in statements for row in parse_statement(s.sql)]


# ----------------------------------------------------------------- rendering


def test_single_row_renders_exactly_the_contract_form() -> None:
    e = event(debit_asset=None, debit_amt=None, is_maker=False, from_user=9)
    [statement] = build_insert_statements("ledger", [e])
    assert statement.sql == (
        "INSERT INTO `ledger`.`u7_a1` USING `ledger`.`balance_events` TAGS (7,1) "
        "VALUES (1700000000000000,400,1,100,NULL,NULL,1,67890,12,1,false,9)"
    )
    assert statement.rows == 1
    assert statement.nbytes == len(statement.sql.encode("utf-8"))


def test_true_and_null_render_as_sql_keywords() -> None:
    [statement] = build_insert_statements("ledger", [event(is_maker=True, from_user=None)])
    assert statement.sql.endswith(",true,NULL)")
    assert "null" not in statement.sql
    assert "True" not in statement.sql and "None" not in statement.sql


def test_rows_are_grouped_by_subtable_in_ascending_order() -> None:
    events = [
        event(user_id=7, event_id=1),
        event(user_id=0, event_id=2),
        event(user_id=7, account_type=0, event_id=3),
        event(user_id=12, event_id=4),
        event(user_id=0, event_id=5),
    ]
    [statement] = build_insert_statements("ledger", events)
    tables = re.findall(r"`(u\d+_a\d+)` USING", statement.sql)
    assert tables == ["u0_a1", "u7_a0", "u7_a1", "u12_a1"]
    assert all_rows([statement]) == expected_rows(events)


def test_rows_within_a_subtable_ascend_by_ts_then_event_id() -> None:
    events = [
        event(ts=30, event_id=1),
        event(ts=10, event_id=9),
        event(ts=10, event_id=2),
        event(ts=20, event_id=5),
    ]
    [statement] = build_insert_statements("ledger", events)
    assert [(r[2], r[3]) for r in parse_statement(statement.sql)] == [
        (10, 2),
        (10, 9),
        (20, 5),
        (30, 1),
    ]


def test_buyer_equal_to_seller_keeps_both_trade_rows() -> None:
    events = trade_events(trade_id=100, ts=1_700_000_000_000_000, buyer=5, seller=5)
    [statement] = build_insert_statements("ledger", events)
    rows = parse_statement(statement.sql)
    assert statement.rows == 4
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        (0, 1, 1_700_000_000_000_000, 402),
        (0, 1, 1_700_000_000_000_000, 403),
        (5, 1, 1_700_000_000_000_000, 400),
        (5, 1, 1_700_000_000_000_000, 401),
    ]
    assert statement.sql.count("`u5_a1` USING") == 1
    assert statement.distinct_rows() == 4


def test_duplicate_identities_are_kept_in_input_order_and_counted_once() -> None:
    first = event(credit_amt=1)
    again = event(credit_amt=2)  # same (subtable, ts, event_id): the later one must win
    [statement] = build_insert_statements("ledger", [first, again])
    rows = parse_statement(statement.sql)
    assert [r[9] for r in rows] == [1, 2]
    assert statement.rows == 2
    assert statement.distinct_rows() == 1
    assert statement.row_keys() == [(7, 1, first.ts, 400)] * 2


def test_no_events_build_no_statement() -> None:
    assert build_insert_statements("ledger", []) == []


def test_extreme_in_range_values_render_as_plain_integers() -> None:
    big = (1 << 63) - 1
    small = -(1 << 63)
    e = event(
        ts=big,
        event_id=small,
        event_type=-128,
        trade_id=big,
        user_id=big,
        account_type=127,
        debit_asset=-(1 << 31),
        debit_amt=small,
        credit_asset=(1 << 31) - 1,
        credit_amt=big,
        fee=small,
        fee_asset=0,
        from_user=big,
    )
    [statement] = build_insert_statements("ledger", [e])
    assert parse_statement(statement.sql) == [as_row(e)]
    assert f"`u{big}_a127`" in statement.sql


# -------------------------------------------------------------------- splitting


def _many_events(count: int, users: int = 3) -> list[BalanceEvent]:
    return [event(ts=1_000 + i, event_id=i, user_id=i % users) for i in range(count)]


def test_statement_of_exactly_the_limit_is_allowed_and_one_byte_less_splits() -> None:
    events = _many_events(150)
    [whole] = build_insert_statements("ledger", events, max_statement_bytes=MAX_SQL_BYTES)
    assert whole.nbytes > MIN_STATEMENT_BYTES

    [exact] = build_insert_statements("ledger", events, max_statement_bytes=whole.nbytes)
    assert exact.sql == whole.sql

    split = build_insert_statements("ledger", events, max_statement_bytes=whole.nbytes - 1)
    assert len(split) == 2
    assert all(s.nbytes <= whole.nbytes - 1 for s in split)
    assert all_rows(split) == expected_rows(events)
    assert sum(s.rows for s in split) == 150


def test_a_subtable_continues_in_the_next_statement_under_a_repeated_header() -> None:
    events = [event(ts=i, event_id=i, user_id=42) for i in range(120)]
    statements = build_insert_statements("ledger", events, max_statement_bytes=MIN_STATEMENT_BYTES)
    assert len(statements) > 1
    for statement in statements:
        assert statement.nbytes <= MIN_STATEMENT_BYTES
        assert statement.sql.count("`u42_a1` USING `ledger`.`balance_events` TAGS (42,1)") == 1
        assert statement.rows == len(parse_statement(statement.sql))
        assert statement.row_keys() == [r[:4] for r in parse_statement(statement.sql)]
    assert all_rows(statements) == expected_rows(events)


def test_default_statement_size_splits_a_batch_over_one_mebibyte() -> None:
    events = [e for t in range(6_000) for e in trade_events(t, 1_000_000 + t, t % 97 + 1, 7)]
    statements = build_insert_statements("ledger", events)
    assert len(statements) >= 2
    assert all(s.nbytes <= 1_048_000 for s in statements)
    assert sum(s.rows for s in statements) == len(events)
    assert all_rows(statements) == expected_rows(events)


@pytest.mark.parametrize("size", [MIN_STATEMENT_BYTES - 1, MAX_SQL_BYTES + 1, 0])
def test_statement_size_outside_bounds_is_refused(size: int) -> None:
    with pytest.raises(StatementSizeError):
        build_insert_statements("ledger", [event()], max_statement_bytes=size)


def test_builder_reuses_rendered_headers_across_calls() -> None:
    builder = InsertBuilder("ledger", header_cache_size=2)
    first = builder.build([event(user_id=1), event(user_id=2), event(user_id=3)])
    second = builder.build([event(user_id=1), event(user_id=2), event(user_id=3)])
    assert [s.sql for s in first] == [s.sql for s in second]
    assert builder.database == "ledger"
    assert builder.max_statement_bytes == 1_048_000


# ------------------------------------------------------------------- identifiers


@pytest.mark.parametrize("name", ["ledger", "Ledger_2", "_x", "a" * 64, "ledger_2026"])
def test_good_database_names_are_accepted_and_backquoted(name: str) -> None:
    assert check_database_name(name) == name
    assert quote_identifier(name) == f"`{name}`"


@pytest.mark.parametrize(
    "name",
    [
        "",
        "1ledger",
        "led-ger",
        "led ger",
        "led`ger",
        "ledger.x",
        "ledger;DROP",
        "a" * 65,
        "lédger",
        "select",
        "Database",
        "TAGS",
        "information_schema",
        "NULL",
    ],
)
def test_bad_database_names_are_refused(name: str) -> None:
    with pytest.raises(OptionsError):
        check_database_name(name)
    with pytest.raises(OptionsError):
        build_insert_statements(name, [event()])


def test_subtable_names_are_built_from_integers() -> None:
    assert subtable_name(0, 1) == "u0_a1"
    assert subtable_name(7, 0) == "u7_a0"
    assert subtable_name((1 << 63) - 1, 127) == f"u{(1 << 63) - 1}_a127"


@pytest.mark.parametrize(
    ("user_id", "account_type"),
    [(-1, 1), (True, 1), (1, True), (1, 128), (1, -1), ("7", 1), (1 << 63, 1), (1.0, 1)],
)
def test_subtable_names_refuse_anything_but_small_non_negative_ints(
    user_id: object, account_type: object
) -> None:
    with pytest.raises(RowValueError):
        subtable_name(user_id, account_type)  # type: ignore[arg-type]


# ----------------------------------------------------------------- value guards


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("account_type", 128),
        ("account_type", -1),
        ("user_id", -1),
        ("user_id", 1 << 63),
        ("event_type", 128),
        ("event_type", -129),
        ("debit_asset", 1 << 31),
        ("credit_asset", -(1 << 31) - 1),
        ("fee_asset", 1 << 31),
        ("ts", 1 << 63),
        ("event_id", -(1 << 63) - 1),
        ("credit_amt", 1 << 63),
        ("debit_amt", 1 << 64),
        ("from_user", 1 << 63),
        ("fee", "12"),
        ("ts", 1.5),
        ("ts", True),
        ("credit_amt", None),
        ("is_maker", 1),
        ("is_maker", "true"),
        ("trade_id", "1); DROP DATABASE ledger; --"),
    ],
)
def test_out_of_range_or_mistyped_values_raise_and_build_no_sql(field: str, value: object) -> None:
    bad = msgspec.structs.replace(event(), **{field: value})
    good = event(event_id=999)
    with pytest.raises(RowValueError, match=field):
        build_insert_statements("ledger", [good, bad])
    with pytest.raises(RowValueError, match=field):
        check_events([bad])


def test_check_events_accepts_valid_events() -> None:
    check_events(trade_events(1, 10, 2, 3))


def test_row_struct_follows_the_schema_column_order() -> None:
    assert EventRow.__struct_fields__ == _FIELDS


# -------------------------------------------------------------------- properties

_int64 = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
_int32 = st.integers(min_value=-(1 << 31), max_value=(1 << 31) - 1)


def balance_events(
    *,
    ts: st.SearchStrategy[int],
    event_id: st.SearchStrategy[int],
    users: list[int],
    most_account_type: int,
) -> st.SearchStrategy[BalanceEvent]:
    """Events with any valid column values; keys, users and account types as given."""
    return st.builds(
        BalanceEvent,
        ts=ts,
        event_id=event_id,
        event_type=st.integers(min_value=-128, max_value=127),
        trade_id=_int64,
        user_id=st.sampled_from(users),
        account_type=st.integers(min_value=0, max_value=most_account_type),
        debit_asset=st.none() | _int32,
        debit_amt=st.none() | _int64,
        credit_asset=_int32,
        credit_amt=_int64,
        fee=_int64,
        fee_asset=_int32,
        is_maker=st.booleans(),
        from_user=st.none() | _int64,
    )  # fmt: skip


events_strategy = balance_events(
    ts=st.integers(min_value=0, max_value=5), event_id=st.integers(min_value=0, max_value=8),
    users=[0, 1, 2, 9, 10, 19, 99, (1 << 63) - 1], most_account_type=3,
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    events=st.lists(events_strategy, max_size=150),
    limit=st.integers(min_value=MIN_STATEMENT_BYTES, max_value=MIN_STATEMENT_BYTES * 4),
)
def test_statements_respect_the_limit_and_carry_exactly_the_input_rows(
    events: list[BalanceEvent], limit: int
) -> None:
    statements = build_insert_statements("ledger", events, max_statement_bytes=limit)
    for statement in statements:
        assert statement.nbytes == len(statement.sql.encode("utf-8")) <= limit
        parsed = parse_statement(statement.sql)
        assert statement.rows == len(parsed) > 0
        assert statement.row_keys() == [r[:4] for r in parsed]
    assert all_rows(statements) == expected_rows(events)


# ------------------------------------------------------------ against the reference

_random_events = balance_events(
    ts=st.integers(min_value=0, max_value=3) | _int64,
    event_id=st.integers(min_value=0, max_value=5) | _int64,
    users=[0, 1, 2, 9, 10, 127, 128, 999, (1 << 63) - 1], most_account_type=127,
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    events=st.lists(_random_events, max_size=300),
    limit=st.sampled_from([MIN_STATEMENT_BYTES, MIN_STATEMENT_BYTES + 777, 1_048_000]),
    cache=st.sampled_from([1, 3, 1 << 18]),
)
def test_statements_are_byte_identical_to_the_reference_builder(
    events: list[BalanceEvent], limit: int, cache: int
) -> None:
    builder = InsertBuilder("ledger", max_statement_bytes=limit, header_cache_size=cache)
    want = reference_statements("ledger", events, limit)
    for _ in range(2):  # headers rendered, then (as far as the cache holds them) reused
        assert [(s.sql, s.rows) for s in builder.build(events)] == want


def test_a_large_batch_is_byte_identical_to_the_reference_builder() -> None:
    rng = random.Random(20261201)
    events = [
        event(
            ts=1_700_000_000_000_000 + rng.randrange(1000),
            event_id=rng.randrange(1 << 40),
            user_id=rng.choice((0, rng.randrange(5000))),
            account_type=rng.randrange(1, 3),
            debit_amt=rng.choice((None, rng.randrange(1 << 62))),
            from_user=rng.choice((None, rng.randrange(1 << 62))),
        )
        for _ in range(30_000)
    ]
    statements = InsertBuilder("ledger").build(events)
    assert len(statements) > 1
    assert [(s.sql, s.rows) for s in statements] == reference_statements("ledger", events)
    for statement in statements[:2]:
        assert statement.row_keys() == [r[:4] for r in parse_statement(statement.sql)]
