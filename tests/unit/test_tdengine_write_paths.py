"""The writer over each write path: SQL text or stmt2 binding keep the same guarantees."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from tests.unit.fake_taosws import FakeTaosws
from tests.unit.test_tdengine_sql import trade_events
from tests.unit.test_tdengine_writer import FakeTransport, make_writer
from worker.core.events import TradeRows, trade_rows
from worker.core.messages import Trade
from worker.tdengine.errors import (
    OptionsError,
    PermanentStoreError,
    RowValueError,
    TransientStoreError,
)
from worker.tdengine.options import TDengineOptions
from worker.tdengine.stmt2 import BindBuilder, Stmt2Sender
from worker.tdengine.write_paths import SqlPath, Stmt2Path, open_write_path
from worker.tdengine.writer import NullObserver, RowGroup, TDengineWriter

OPTIONS = TDengineOptions(url="ws://td.example:6041", password="taosdata", write_api="stmt2")


class NoTransport:
    """The stmt2 path never sends rows through the SQL transport."""

    def execute(self, sql: str) -> int:
        raise AssertionError(f"SQL sent on the stmt2 path: {sql[:80]}")

    def query(self, sql: str) -> Any:
        raise AssertionError(sql)

    def close(self) -> None:
        pass


class Mismatches(NullObserver):
    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    def on_affected_mismatch(self, expected: int, actual: int) -> None:
        self.seen.append((expected, actual))


def stmt2_writer(module: FakeTaosws, observer: Any = None, **options: Any) -> TDengineWriter:
    opts = TDengineOptions(**{**{"url": OPTIONS.url, "password": "taosdata"}, **options})
    path = Stmt2Path(
        BindBuilder(max_rows=opts.bind_max_rows, taosws=module),
        Stmt2Sender(opts.url, opts.user, opts.password, opts.database, taosws=module),
    )
    return TDengineWriter(NoTransport(), opts, observer, path=path, sleep=lambda _: None)


def groups(count: int) -> list[RowGroup]:
    """One message per trade; trade t is bought by user 100 + t and sold by user 1."""
    return [
        RowGroup(("trades", 0, t), trade_events(t, 1_750_000_000_000_000 + t, 100 + t, 1))
        for t in range(1, count + 1)
    ]


def test_the_configured_api_picks_the_path() -> None:
    transport = NoTransport()
    assert isinstance(open_write_path(OPTIONS, transport), Stmt2Path)
    sql = TDengineOptions(url="http://td.example:6041", password="taosdata")
    assert sql.write_api == "sql"
    assert isinstance(open_write_path(sql, transport), SqlPath)


def test_an_unknown_api_names_the_field() -> None:
    with pytest.raises(OptionsError, match=r"tdengine\.write_api: must be one of sql, stmt2"):
        TDengineOptions(password="taosdata", write_api="ilp")  # type: ignore[arg-type]
    with pytest.raises(OptionsError, match=r"tdengine\.bind_max_rows"):
        TDengineOptions(password="taosdata", bind_max_rows=0)


def test_every_row_is_bound_and_none_goes_through_sql() -> None:
    module = FakeTaosws()
    result = stmt2_writer(module).write(groups(5))
    assert result.rows_written == 20 and not result.rejected
    bound = {(v.table_name, ts) for views in module.binds for v in views for ts in v.columns[0][1]}
    assert ("u103_a1", 1_750_000_000_000_003) in bound


def test_a_refused_subtable_rejects_only_its_message() -> None:
    module = FakeTaosws(
        refused_tables={"u104_a1": "[0x060B] Internal error: `Timestamp data out of range`"}
    )
    writer = stmt2_writer(module, bind_max_rows=1_000)
    result = writer.write(groups(8))
    assert [key for key, _ in result.rejected] == [("trades", 0, 4)]
    [(_, error)] = result.rejected
    assert isinstance(error, PermanentStoreError) and error.code == 0x060B
    assert result.rows_written == 7 * 4


def test_a_short_affected_count_is_reported() -> None:
    observer = Mismatches()
    stmt2_writer(FakeTaosws(affected_delta=-1), observer).write(groups(3))
    assert observer.seen == [(12, 11)]


def test_transient_errors_are_retried_then_raised_for_the_batch() -> None:
    refused = "[0xE001] Internal error: `WebSocket internal error: Connection refused`"
    module = FakeTaosws(failures={"connect": [refused] * 1000})
    writer = stmt2_writer(module, retry_max_elapsed_s=0.0)
    with pytest.raises(TransientStoreError):
        writer.write(groups(2))
    recovered = FakeTaosws(failures={"connect": [refused] * 2})
    assert stmt2_writer(recovered).write(groups(2)).rows_written == 8


def test_a_prepared_write_sends_the_same_way_again_after_a_failure() -> None:
    """prepare() builds once; every send() starts from it (a retry carries nothing over)."""
    module = FakeTaosws(
        refused_tables={"u102_a1": "[0x060B] Internal error: `Timestamp data out of range`"},
        failures={"execute": ["[0x0117] Internal error: `Invalid pointer`"]},
    )
    writer = stmt2_writer(module, retry_max_elapsed_s=0.0)
    prepared = writer.prepare(groups(4))
    binds_after_prepare = len(module.binds)
    with pytest.raises(TransientStoreError):
        writer.send(prepared)
    first, second = writer.send(prepared), writer.send(prepared)
    assert binds_after_prepare == 0  # prepare does no I/O
    for result in (first, second):
        assert [key for key, _ in result.rejected] == [("trades", 0, 2)]
        assert result.rows_written == 12


def test_the_tdengine_sink_is_a_preparing_sink() -> None:
    from worker.engine.sink import PreparingSink
    from worker.tdengine.sink import TDengineSink

    sink = TDengineSink(stmt2_writer(FakeTaosws()), NoTransport())
    assert isinstance(sink, PreparingSink)
    with pytest.raises(TypeError, match="what prepare"):
        sink.send(object())


def trade_row_groups(count: int) -> list[RowGroup]:
    """:func:`groups` as the engine carries them: one TradeRows per message."""
    rows = []
    for t in range(1, count + 1):
        trade = Trade(
            trade_id=t, symbol_id=1, ts=1_750_000_000_000_000 + t, price=7, qty=1_000 + t,
            qty_unit=1, base_asset_id=1, quote_asset_id=2, buyer_user_id=100 + t,
            seller_user_id=1, taker_side="buy",
        )  # fmt: skip
        rows.append(RowGroup(("trades", 0, t), trade_rows(trade, 1_000, 2_000)))
    return rows


@pytest.mark.parametrize("api", ["stmt2", "sql"])
def test_trade_rows_are_written_and_isolated_as_events_are(api: str) -> None:
    """The engine's TradeRows take the column path; a refused subtable still rejects
    its message alone, and a refused value is found without sending it."""
    module = FakeTaosws(
        refused_tables={"u104_a1": "[0x060B] Internal error: `Timestamp data out of range`"}
    )
    batch = trade_row_groups(8)
    first = batch[0].events
    assert isinstance(first, TradeRows)
    broken = RowGroup(("trades", 0, 99), msgspec.structs.replace(first, ts=-(2**64)))
    if api == "stmt2":
        writer = stmt2_writer(module, bind_max_rows=1_000)
        result = writer.write([*batch, broken])
        refused = [("trades", 0, 4), ("trades", 0, 99)]
        written = {v.table_name for views in module.binds for v in views}
        assert {"u0_a1", "u1_a1", "u101_a1"} <= written
    else:
        transport = FakeTransport()
        writer, _, _ = make_writer(transport)
        result = writer.write([*batch, broken])
        refused = [("trades", 0, 99)]
        assert {key[0] for key in transport.rows} == {0, 1, *range(101, 109)}
    assert [key for key, _ in result.rejected] == refused
    assert isinstance(result.rejected[-1][1], RowValueError)
    assert "$[0].ts" in str(result.rejected[-1][1])
    assert result.rows_written == (8 - len(refused) + 1) * 4
