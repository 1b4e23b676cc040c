"""The build-only sinks: the worker's own cost, built as TDengineSink builds (prepare)."""

from __future__ import annotations

import pytest

from tests.unit.test_tdengine_sql import trade_events
from worker.engine.sink import AllStored, MessageKey, MessageRows, PreparingSink
from worker.tdengine.sink import BindOnlySink, StatementOnlySink
from worker.tdengine.sql import InsertBuilder


def batch(trades: int) -> list[MessageRows]:
    return [
        MessageRows(
            MessageKey("trades", 0, t), trade_events(t, 1_700_000_000_000_000 + t, 10 + t, 20)
        )
        for t in range(1, trades + 1)
    ]


def test_statement_only_builds_in_prepare_what_the_insert_builder_builds() -> None:
    sink = StatementOnlySink("ledger")
    assert isinstance(sink, PreparingSink)
    rows = batch(25)
    prepared = sink.prepare(rows)
    expected = InsertBuilder("ledger").build(e for r in rows for e in r.events)
    assert prepared == 100 == sum(s.rows for s in expected)
    assert sink.requests == len(expected)
    assert sink.nbytes == sum(s.nbytes for s in expected)
    assert sink.send(prepared) == AllStored(100)
    assert sink.write(rows) == AllStored(100)
    assert sink.requests == 2 * len(expected)


def test_send_takes_only_what_prepare_returned() -> None:
    with pytest.raises(TypeError, match="what prepare"):
        StatementOnlySink().send("INSERT INTO ...")


@pytest.mark.parametrize("make_views", [False, True])
def test_bind_only_counts_the_rows_it_bound(make_views: bool) -> None:
    sink = BindOnlySink(max_rows=40, make_views=make_views)
    assert sink.prepare(batch(25)) == 100
    assert sink.requests == 3  # 100 rows in requests of at most 40
