"""``balance-sink audit`` where TDengine's SUM would wrap: the CLI against the stand-in or
``TDENGINE_URL``.

A real TDengine sums BIGINT in a 64-bit accumulator that wraps silently (two rows of
2**63-1 sum to -2). The ledger here holds one broken trade whose base-asset credits are
2 x (2**63-1) and whose matching debit is -2: with the wrapped SUM every check would
pass. The audit must see the exact sum and fail the trade, never pass it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.tdengine import TDengineEndpoint
from worker.tdengine.options import TDengineOptions
from worker.tdengine.writer import init_database

from .worker_support import worker_config, write_schedule

pytestmark = [pytest.mark.tdengine, pytest.mark.timeout(300)]

INT64_MAX = (1 << 63) - 1
TS = 1_700_000_000_000_000  # inside the default KEEP window
TRADE = 1
BASE, QUOTE = 11, 2


def rows(database: str) -> list[str]:
    """The four rows of trade 1 (event ids 4..7), as INSERT statements."""
    table = f"`{database}`.`balance_events`"
    columns = (
        "ts, event_id, event_type, trade_id, debit_asset, debit_amt, credit_asset, "
        "credit_amt, fee, fee_asset, is_maker, from_user"
    )

    def row(user: int, values: tuple[object, ...]) -> str:
        text = ", ".join("NULL" if v is None else str(v).lower() for v in values)
        return (
            f"INSERT INTO `{database}`.`u{user}_a1` USING {table} TAGS ({user}, 1) "
            f"({columns}) VALUES ({text})"
        )

    return [
        # k=0 buyer: pays 10 quote, receives 2**63-1 base, fee 2**63-1 base
        row(101, (TS, 4, 1, TRADE, QUOTE, 10, BASE, INT64_MAX, INT64_MAX, BASE, True, None)),
        # k=1 seller: pays -2 base (what the wrapped base credits sum to), receives 9 quote
        row(102, (TS, 5, 1, TRADE, BASE, -2, QUOTE, 9, 1, QUOTE, False, None)),
        # k=2, k=3: the platform's fee rows
        row(0, (TS, 6, 2, TRADE, None, None, BASE, INT64_MAX, 0, BASE, True, 101)),
        row(0, (TS, 7, 2, TRADE, None, None, QUOTE, 1, 0, QUOTE, False, 102)),
    ]


def test_a_sum_that_would_wrap_is_exact_and_the_broken_trade_fails(
    tmp_path: Path,
    tdengine_endpoint: TDengineEndpoint,
    tdengine_database: str,
    tdengine_options: TDengineOptions,
    tdengine_sql: Any,
) -> None:
    init_database(tdengine_options)
    for sql in rows(tdengine_database):
        answer = tdengine_sql(sql)
        assert answer["code"] == 0, answer
    schedule_path, _ = write_schedule(tmp_path)
    config = tmp_path / "audit.toml"
    config.write_text(worker_config(
        bootstrap="127.0.0.1:9", topic="unused", dead_letter_topic="unused-dlq",
        group="unused", schedule_path=schedule_path, tdengine=tdengine_endpoint,
        database=tdengine_database,
    ))  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "worker", "audit", "--config", str(config),
         "--from", "1", "--to", "4102444800000", "--format", "json"],
        capture_output=True, timeout=120,
    )  # fmt: skip
    stderr = done.stderr.decode()
    assert done.returncode != 0, "a ledger with a wrapped sum must never pass"
    if done.returncode == 3 and "SUM overflowed BIGINT" in stderr:
        # The stand-in before it wrapped like TDengine: it refused the overflowing SUM
        # (0x0224) instead. Still no pass; the exact path is what a real server takes.
        assert tdengine_endpoint.is_double, stderr
        return
    assert done.returncode == 1, stderr
    report = json.loads(done.stdout)
    assert report["failures_by_check"]["conservation"] == 1, report
    (failure,) = report["failures"]
    assert failure["trade_id"] == TRADE
    assert f"credits {2 * INT64_MAX} != debits -2" in failure["message"]
    revenue = {t["asset"]: t["fee_revenue"] for t in report["totals"]}
    assert revenue == {BASE: INT64_MAX, QUOTE: 1}


def test_the_demo_fee_revenue_summary_is_exact_where_sum_wraps(
    tdengine_database: str, tdengine_options: TDengineOptions, tdengine_sql: Any
) -> None:
    from worker.commands.demo import _revenue
    from worker.tdengine.transport import open_transport

    init_database(tdengine_options)
    # Trade 2: the same four rows again, as event ids 8..11.
    second = [re.sub(rf"VALUES \({TS}, (\d), (\d), {TRADE},",
                     lambda m: f"VALUES ({TS}, {int(m[1]) + 4}, {m[2]}, 2,", sql)
              for sql in rows(tdengine_database)]  # fmt: skip
    assert len(set(second) - set(rows(tdengine_database))) == 4
    for sql in [*rows(tdengine_database), *second]:
        answer = tdengine_sql(sql)
        assert answer["code"] == 0, answer
    stable = f"`{tdengine_database}`.`balance_events`"
    plain = tdengine_sql(f"SELECT SUM(credit_amt) FROM {stable} WHERE event_type = 2 "
                         f"AND credit_asset = {BASE}")  # fmt: skip
    assert plain["data"][0][0] == -2  # what the server's own SUM says: wrapped
    transport = open_transport(tdengine_options)
    try:
        assert _revenue(transport, stable) == [(QUOTE, 2), (BASE, 2 * INT64_MAX)]
    finally:
        transport.close()
