"""The stmt2 write path without a server: binding shape, value checks, error classes.

taos-ws-py is replaced by :mod:`tests.unit.fake_taosws`, which records every view
and scripts failures in the driver's real message format.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings, strategies as st

from tests.unit.fake_taosws import FakeTaosws, View
from tests.unit.test_tdengine_sql import event, trade_events
from worker.core.events import BalanceEvent
from worker.tdengine import stmt2 as stmt2_module
from worker.tdengine.errors import (
    FatalStoreError,
    OptionsError,
    PermanentStoreError,
    RowValueError,
    StoreError,
    TransientStoreError,
)
from worker.tdengine.sql import COLUMNS, InsertBuilder, check_events
from worker.tdengine.stmt2 import (
    MAX_VIEW_ROWS,
    BindBuilder,
    BindRequest,
    Stmt2Sender,
    classify_driver_error,
    insert_sql,
)
from worker.tdengine.stmt2_rows import FIELDS, columns_of

_BUILDERS = {
    "TIMESTAMP": "micros_timestamps_to_column",
    "BIGINT": "big_ints_to_column",
    "INT": "ints_to_column",
    "TINYINT": "tiny_ints_to_column",
    "BOOL": "bools_to_column",
}
_DATA_FIELDS = tuple(name for name, _ in COLUMNS)


def sample_events(trades: int = 60, users: int = 9, *, seed: int = 3) -> list[BalanceEvent]:
    """Trades in arrival order, users repeating, two account types, some trades sharing ts."""
    rng = random.Random(seed)
    out: list[BalanceEvent] = []
    for n in range(trades):
        buyer, seller = rng.randrange(1, users), rng.randrange(1, users)
        rows = trade_events(1_000 + n, 1_700_000_000_000_000 + (n // 3) * 10, buyer, seller)
        account = 1 + n % 2
        out.extend(msgspec.structs.replace(row, account_type=account) for row in rows)
    return out


def builder(module: FakeTaosws | None = None, **options: Any) -> BindBuilder:
    return BindBuilder(taosws=module or FakeTaosws(), **options)


def views_of(requests: Sequence[BindRequest]) -> list[View]:
    return [view for request in requests for view in request.params]


def bound_rows(views: Sequence[View]) -> list[tuple[object, ...]]:
    """(user_id, account_type, ts, event_id, ...) per bound row, in bind order."""
    rows: list[tuple[object, ...]] = []
    for view in views:
        assert view.tags is not None
        (_, user), (_, account) = view.tags
        columns = [values for _, values in view.columns]
        rows.extend((user, account, *values) for values in zip(*columns, strict=True))
    return rows


def as_row(e: BalanceEvent) -> tuple[object, ...]:
    return tuple(getattr(e, rule.name) for rule in FIELDS)


# ----------------------------------------------------------------- binding shape


def test_each_view_is_one_subtable_named_from_its_tags_with_typed_columns() -> None:
    events = sample_events()
    requests = builder().build(events)
    assert len(requests) == 1
    views = views_of(requests)
    names = [view.table_name for view in views]
    assert len(names) == len(set(names)), "one view per subtable"
    for view in views:
        assert view.tags is not None
        (user_builder, user), (account_builder, account) = view.tags
        assert (user_builder, account_builder) == ("big_int_to_tag", "tiny_int_to_tag")
        assert view.table_name == f"u{user}_a{account}"
        assert [name for name, _ in view.columns] == [_BUILDERS[kind] for _, kind in COLUMNS]
    assert sorted(bound_rows(views)) == sorted(map(as_row, events))


def test_rows_are_ordered_as_the_sql_path_orders_them() -> None:
    events = sample_events()
    random.Random(5).shuffle(events)
    (request,) = builder().build(events)
    (statement,) = InsertBuilder("ledger").build(events)
    assert request.row_keys() == statement.row_keys()
    assert [row[:4] for row in bound_rows(request.params)] == [
        (u, a, ts, eid) for u, a, ts, eid in request.row_keys()
    ]
    assert request.rows == statement.rows == len(events)


def test_null_columns_are_bound_as_none() -> None:
    events = trade_events(5, 1_700_000_000_000_000, 3, 4)
    views = views_of(builder().build(events))
    platform = next(view for view in views if view.table_name == "u0_a1")
    by_name = dict(zip(_DATA_FIELDS, (values for _, values in platform.columns), strict=True))
    assert by_name["debit_asset"] == [None, None]
    assert by_name["debit_amt"] == [None, None]
    assert by_name["from_user"] == [3, 4]
    assert by_name["is_maker"] == [False, False]


def test_requests_hold_at_most_max_rows_and_split_a_subtable_between_them() -> None:
    events = [event(event_id=4 * n, ts=1_700_000_000_000_000 + n) for n in range(25)]
    events += sample_events(trades=10)
    requests = builder(max_rows=7).build(events)
    assert [r.rows for r in requests] == [7, 7, 7, 7, 7, 7, 7, 7, 7, 2]
    assert sum(r.rows for r in requests) == len(events)
    assert sorted(bound_rows(views_of(requests))) == sorted(map(as_row, events))
    for request in requests:
        assert sum(len(view.columns[0][1]) for view in request.params) == request.rows
        assert request.tables == len(request.params)
    owners = [r for r in requests if any(v.table_name == "u7_a1" for v in r.params)]
    assert len(owners) >= 4, "the 25-row subtable spans several requests"


@pytest.mark.parametrize(("max_rows", "max_views"), [(20_000, 3), (7, 2), (11, 1)])
def test_requests_hold_at_most_max_views_views_and_every_row_once_in_order(
    max_rows: int, max_views: int
) -> None:
    events = sample_events(trades=60, users=9)
    (whole,) = builder().build(events)
    requests = builder(max_rows=max_rows, max_views=max_views).build(events)
    assert len(requests) > 1
    for request in requests:
        assert 1 <= request.tables <= max_views
        assert request.rows <= max_rows
        assert sum(len(view.columns[0][1]) for view in request.params) == request.rows
    assert [key for r in requests for key in r.row_keys()] == whole.row_keys()
    assert bound_rows(views_of(requests)) == bound_rows(whole.params)


def test_plain_requests_are_cut_where_the_inline_ones_are() -> None:
    events = sample_events(trades=60, users=9)
    inline = builder(max_rows=7, max_views=2).build(events)
    plain = BindBuilder(max_rows=7, max_views=2, make_views=False).build(events)
    assert [(r.rows, r.tables) for r in plain] == [(r.rows, r.tables) for r in inline]
    for p_request, i_request in zip(plain, inline, strict=True):
        assert p_request.row_keys() == i_request.row_keys()
        assert len(p_request.data.users) == p_request.tables
        assert p_request.data.starts[-1] == p_request.rows


def test_a_subtable_longer_than_a_view_allows_is_bound_as_several_views(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stmt2_module, "MAX_VIEW_ROWS", 4)
    events = [event(event_id=4 * n, ts=1_700_000_000_000_000 + n) for n in range(10)]
    (request,) = builder().build(events)
    assert [len(view.columns[0][1]) for view in request.params] == [4, 4, 2]
    assert {view.table_name for view in request.params} == {"u7_a1"}
    assert MAX_VIEW_ROWS == 32_767


def test_no_events_build_no_request() -> None:
    module = FakeTaosws()
    assert builder(module).build([]) == []
    assert builder(module).build(iter(())) == []


def test_duplicate_identities_count_once_in_distinct_rows() -> None:
    events = sample_events(trades=4)
    (request,) = builder().build(events + events[:3])
    assert request.rows == len(events) + 3
    assert request.distinct_rows() == len(events)


def test_tag_views_are_made_once_per_subtable_and_reused() -> None:
    calls: list[int] = []
    module = FakeTaosws()
    original = module.big_int_to_tag

    def counting(value: int) -> Any:
        calls.append(value)
        return original(value)

    module.big_int_to_tag = counting
    b = builder(module)
    b.build(sample_events())
    first = len(calls)
    b.build(sample_events(seed=4))
    assert first > 0
    assert len(calls) - first <= 2, "only subtables not seen before make new tag views"


def test_subtable_names_come_from_integer_values_only() -> None:
    class Sly(int):
        def __str__(self) -> str:
            return "1`; DROP DATABASE ledger; --"

        __format__ = None  # type: ignore[assignment]
        __repr__ = __str__

    class Account(enum.IntEnum):
        SPOT = 2

    events = [event(user_id=Sly(12), account_type=Account.SPOT)]
    (request,) = builder().build(events)
    (view,) = request.params
    assert view.table_name == "u12_a2"
    assert view.tags == [("big_int_to_tag", 12), ("tiny_int_to_tag", 2)]
    assert type(view.tags[0][1]) is int


# ------------------------------------------------------------------ value checks


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("user_id", -1, "out of range for BIGINT (0..9223372036854775807)"),
        ("account_type", 128, "out of range for TINYINT (0..127)"),
        ("ts", 1 << 63, "out of range for TIMESTAMP"),
        ("event_type", 128, "out of range for TINYINT (-128..127)"),
        ("debit_asset", 1 << 31, "out of range for INT"),
        ("credit_amt", -(1 << 63) - 1, "out of range for BIGINT"),
        ("fee", True, "must be an int, got bool"),
        ("trade_id", 1.0, "must be an int, got float"),
        ("fee_asset", "1", "must be an int, got str"),
        ("credit_asset", None, "is null"),
        ("is_maker", 1, "must be a bool, got int"),
        ("from_user", 1 << 64, "out of range for BIGINT"),
    ],
)
def test_a_refused_value_names_the_field_row_and_value(
    field: str, value: object, expected: str
) -> None:
    module = FakeTaosws()
    events = sample_events(trades=5)
    target = events[6]
    events[6] = msgspec.structs.replace(target, **{field: value})
    with pytest.raises(RowValueError) as caught:
        builder(module).build(events)
    message = str(caught.value)
    assert f"`{field}` = {value!r}" in message
    assert expected in message
    assert f"row 6 (event_id {target.event_id})" in message
    assert module.binds == [] and module.connections == []
    assert isinstance(caught.value, PermanentStoreError) and caught.value.code is None


def test_a_missing_field_is_named() -> None:
    class Partial:
        def __init__(self, source: BalanceEvent) -> None:
            for rule in FIELDS:
                if rule.name != "fee_asset":
                    setattr(self, rule.name, getattr(source, rule.name))

    events: list[object] = [*sample_events(trades=1), Partial(event())]
    with pytest.raises(RowValueError, match=r"`fee_asset` is missing - at row 4"):
        builder().build(events)


def test_nullable_columns_accept_none_and_others_do_not() -> None:
    nullable = {rule.name for rule in FIELDS if rule.nullable}
    assert nullable == {"debit_asset", "debit_amt", "from_user"}
    for name in nullable:
        columns_of([msgspec.structs.replace(event(), **{name: None})])
    for rule in FIELDS:
        if rule.name not in nullable:
            with pytest.raises(RowValueError, match=rf"`{rule.name}` = None is null"):
                columns_of([msgspec.structs.replace(event(), **{rule.name: None})])


_VALUES = st.one_of(
    st.integers(min_value=-(1 << 64), max_value=1 << 64),
    st.sampled_from([0, 127, 128, -128, -129, (1 << 31) - 1, 1 << 31, (1 << 63) - 1, 1 << 63]),
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(
    changes=st.lists(
        st.tuples(st.integers(0, 7), st.sampled_from([r.name for r in FIELDS]), _VALUES),
        max_size=3,
    )
)
def test_accepts_exactly_what_the_sql_path_accepts(
    changes: list[tuple[int, str, object]],
) -> None:
    events = sample_events(trades=2)
    for index, name, value in changes:
        events[index] = msgspec.structs.replace(events[index], **{name: value})
    try:
        check_events(events)
    except RowValueError:
        sql_accepts = False
    else:
        sql_accepts = True
    try:
        columns_of(events)
    except RowValueError:
        bind_accepts = False
    else:
        bind_accepts = True
    assert bind_accepts == sql_accepts


def test_invalid_max_rows_is_refused() -> None:
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="max_rows"):
            BindBuilder(max_rows=bad, taosws=FakeTaosws())  # type: ignore[arg-type]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="max_views"):
            BindBuilder(max_views=bad, taosws=FakeTaosws())  # type: ignore[arg-type]


def test_a_column_the_driver_refuses_after_our_checks_is_fatal() -> None:
    module = FakeTaosws()

    def refuse(values: Sequence[Any]) -> Any:
        raise OverflowError("out of range integral type conversion attempted")

    module.tiny_ints_to_column = refuse
    with pytest.raises(FatalStoreError, match="refused a checked column"):
        builder(module).build(sample_events(trades=1))


# ------------------------------------------------------------------ statements


def test_both_statement_shapes_name_every_column_in_schema_order() -> None:
    columns = ", ".join(name for name, _ in COLUMNS)
    assert insert_sql("ledger", "subtable") == (
        "INSERT INTO ? USING `ledger`.`balance_events` (user_id, account_type) TAGS (?, ?) "
        f"({columns}) VALUES ({', '.join('?' * 12)})"
    )
    assert insert_sql("ledger", "stable") == (
        f"INSERT INTO `ledger`.`balance_events` (tbname, user_id, account_type, {columns}) "
        f"VALUES ({', '.join('?' * 15)})"
    )


@pytest.mark.parametrize("database", ["select", "a`b", "1db", "x; DROP", ""])
def test_unsafe_database_names_are_refused(database: str) -> None:
    with pytest.raises(OptionsError):
        insert_sql(database, "subtable")
    with pytest.raises(OptionsError):
        Stmt2Sender("ws://h:6041", "root", "pw", database, taosws=FakeTaosws())


def test_unknown_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        insert_sql("ledger", "rows")  # type: ignore[arg-type]


# ------------------------------------------------------------------ sender


def sender(module: FakeTaosws, **options: Any) -> Stmt2Sender:
    return Stmt2Sender(
        "http://td.example:6041", "ro ot", "p@ss:w/rd", "ledger", **options, taosws=module
    )


def test_sender_connects_to_the_database_and_prepares_once() -> None:
    module = FakeTaosws()
    s = sender(module, shape="stable")
    b = builder(module)
    first, second = b.build(sample_events(trades=3)), b.build(sample_events(trades=2, seed=9))
    assert s.execute(first[0]) == first[0].distinct_rows()
    assert s.execute(second[0]) == second[0].distinct_rows()
    (connection,) = module.connections
    assert connection.dsn == "ws://ro%20ot:p%40ss%3Aw%2Frd@td.example:6041/ledger"
    assert module.prepared == [insert_sql("ledger", "stable")]
    assert module.binds == [first[0].params, second[0].params]
    assert "p@ss" not in repr(s)


def test_execute_returns_the_servers_affected_rows_unchanged() -> None:
    module = FakeTaosws(affected_delta=-1)
    (request,) = builder(module).build(sample_events(trades=2))
    assert sender(module).execute(request) == request.distinct_rows() - 1


# Messages as taos-ws-py 0.7 raised them from TDengine 3.3.6.13 (see the integration tests).
_REAL_ERRORS = [
    ("connect", "[0x0357] Internal error: `Authentication failure`", FatalStoreError, 0x0357),
    ("connect", "[0x0351] Internal error: `Invalid user`", FatalStoreError, 0x0351),
    ("connect", "[0x0388] Internal error: `Database not exist`", FatalStoreError, 0x0388),
    (
        "connect",
        "[0xE001] Internal error: `WebSocket internal error: IO error: Connection refused "
        "(os error 111)`",
        TransientStoreError,
        0xE001,
    ),
    ("prepare", "[0x022B] Internal error: `Table does not exist`", TransientStoreError, 0x022B),
    ("prepare", "[0x2602] Internal error: `Invalid table type`", FatalStoreError, 0x2602),
    (
        "bind",
        "[0x267B] Internal error: `Primary key column should not be null`",
        PermanentStoreError,
        0x267B,
    ),
    (
        "bind",
        "[0x0200] Internal error: `column type mis-match with buffer type`",
        FatalStoreError,
        0x0200,
    ),
    (
        "bind",
        "[0x0236] Internal error: `bind number out of range or not match`",
        FatalStoreError,
        0x0236,
    ),
    ("bind", "columns len mismatch", FatalStoreError, None),
    (
        "execute",
        "[0x060B] Internal error: `Timestamp data out of range`",
        PermanentStoreError,
        0x060B,
    ),
    (
        "execute",
        "[0x061D] Internal error: `Table already exists in other stables`",
        PermanentStoreError,
        0x061D,
    ),
    ("execute", "[0x0117] Internal error: `Invalid pointer`", TransientStoreError, 0x0117),
    ("execute", "websocket closed", TransientStoreError, None),
]


@pytest.mark.parametrize(("stage", "message", "kind", "code"), _REAL_ERRORS)
def test_driver_errors_are_classified_from_their_code(
    stage: Any, message: str, kind: type[StoreError], code: int | None
) -> None:
    module = FakeTaosws(failures={stage: [message]})
    (request,) = builder(module).build(sample_events(trades=1))
    with pytest.raises(StoreError) as caught:
        sender(module).execute(request)
    assert type(caught.value) is kind
    assert caught.value.code == code
    assert message in caught.value.desc


def test_classification_does_not_depend_on_the_exception_type_when_a_code_is_given() -> None:
    for exception in ("QueryError", "ProgrammingError", "ConnectionError"):
        error = classify_driver_error("[0x060B] Internal error: `x`", exception, "bind")
        assert type(error) is PermanentStoreError


def test_the_default_shape_is_the_super_table_form() -> None:
    assert stmt2_module.DEFAULT_SHAPE == "stable"
    assert sender(FakeTaosws()).sql == insert_sql("ledger", "stable")


def test_after_a_permanent_error_the_statement_is_prepared_again_on_the_same_connection() -> None:
    module = FakeTaosws(failures={"execute": ["[0x060B] Internal error: `Timestamp data`"]})
    s = sender(module)
    (request,) = builder(module).build(sample_events(trades=2))
    with pytest.raises(PermanentStoreError):
        s.execute(request)
    assert s.execute(request) == request.distinct_rows()
    assert len(module.connections) == 1 and not module.connections[0].closed
    assert module.statements == 2 and len(module.prepared) == 2


def test_after_a_transient_error_the_connection_is_opened_again() -> None:
    module = FakeTaosws(failures={"execute": ["websocket closed"]})
    s = sender(module)
    (request,) = builder(module).build(sample_events(trades=2))
    with pytest.raises(TransientStoreError):
        s.execute(request)
    assert module.connections[0].closed
    assert s.execute(request) == request.distinct_rows()
    assert len(module.connections) == 2


def test_a_failed_prepare_leaves_nothing_half_open() -> None:
    module = FakeTaosws(failures={"prepare": ["[0x0388] Internal error: `Database not exist`"]})
    s = sender(module)
    (request,) = builder(module).build(sample_events(trades=1))
    with pytest.raises(FatalStoreError):
        s.execute(request)
    assert s.execute(request) == request.distinct_rows()
    assert len(module.prepared) == 1


def test_the_password_is_scrubbed_from_driver_messages() -> None:
    module = FakeTaosws(failures={"connect": ["bad dsn ws://root:p@ss:w/rd@host"]})
    (request,) = builder(module).build(sample_events(trades=1))
    with pytest.raises(StoreError) as caught:
        sender(module).execute(request)
    assert "p@ss:w/rd" not in str(caught.value)
    assert "***" in str(caught.value)


def test_open_connects_and_prepares_before_the_first_request() -> None:
    module = FakeTaosws()
    s = sender(module)
    s.open()
    assert len(module.connections) == 1 and module.prepared == [s.sql]
    (request,) = builder(module).build(sample_events(trades=1))
    s.execute(request)
    assert len(module.connections) == 1 and module.statements == 1


def test_close_closes_the_connection_and_a_later_call_reconnects() -> None:
    module = FakeTaosws()
    s = sender(module)
    (request,) = builder(module).build(sample_events(trades=1))
    s.execute(request)
    s.close()
    assert module.connections[0].closed
    s.execute(request)
    assert len(module.connections) == 2
