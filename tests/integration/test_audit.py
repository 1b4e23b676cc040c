"""``balance-sink audit`` end to end: the CLI against the TDengine double (or TDENGINE_URL).

A correct ledger (written by ``replay`` from a real topic) passes; a ledger with one
row missing, one amount altered, or one stray row fails with a message naming the
trade. Broken ledgers are written through the worker's own sink, then changed with
plain SQL through the REST endpoint.
"""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest

from worker.core.deriver import Deriver
from worker.core.events import BalanceEvent
from worker.core.fee_schedule import parse_fee_schedule
from worker.core.rejections import Rejection
from worker.engine.sink import MessageKey, MessageRows
from worker.tdengine.options import TDengineOptions
from worker.tdengine.sink import TDengineSink
from worker.tdengine.sql import build_insert_statements

from .replay_support import ReplayEnv
from .worker_support import sample_lines, worker_config, write_schedule

ALL_TIME = ("--from", "1", "--to", "4102444800000")  # 1970 .. 2100


def derived(lines: list[bytes], schedule_text: str) -> list[tuple[BalanceEvent, ...]]:
    deriver = Deriver(parse_fee_schedule(schedule_text))
    out: list[tuple[BalanceEvent, ...]] = []
    for line in lines:
        result = deriver.derive(line)
        if not isinstance(result, Rejection):
            out.append(result)
    return out


def write_events(options: TDengineOptions, trades: list[tuple[BalanceEvent, ...]]) -> None:
    sink = TDengineSink.connect(options)
    try:
        sink.write([MessageRows(MessageKey("t", 0, i), ev) for i, ev in enumerate(trades)])
    finally:
        sink.close()


def insert(tdengine_sql: Any, database: str, events: list[BalanceEvent]) -> None:
    for statement in build_insert_statements(database, events):
        result = tdengine_sql(statement.sql)
        assert result["code"] == 0, result


class Ledger:
    """A database filled with the rows of sample trades, and an audit config for it."""

    def __init__(self, tmp_path: Path, endpoint: Any, database: str, options: Any) -> None:
        self.schedule_path, self.schedule_text = write_schedule(tmp_path)
        self.trades = derived(sample_lines(2000, seed=31), self.schedule_text)
        self.database = database
        self.options = options
        self.config = tmp_path / "audit.toml"
        self.config.write_text(worker_config(
            bootstrap="127.0.0.1:9", topic="unused", dead_letter_topic="unused-dlq",
            group="unused", schedule_path=self.schedule_path, tdengine=endpoint,
            database=database,
        ))  # fmt: skip

    def audit(self, *args: str) -> tuple[int, str, str]:
        """Run the CLI: exit code, stdout (the report), and stdout plus stderr."""
        done = subprocess.run(
            [sys.executable, "-m", "worker", "audit", "--config", str(self.config), *args],
            capture_output=True, timeout=120,
        )  # fmt: skip
        out = done.stdout.decode()
        return done.returncode, out, out + done.stderr.decode()


@pytest.fixture
def ledger(
    tmp_path: Path, tdengine_endpoint: Any, tdengine_database: str, tdengine_options: Any
) -> Ledger:
    return Ledger(tmp_path, tdengine_endpoint, tdengine_database, tdengine_options)


pytestmark = [pytest.mark.tdengine, pytest.mark.timeout(300)]


@pytest.mark.kafka
def test_audit_passes_on_a_ledger_written_by_replay_and_matches_its_topic(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_factory: Any,
    tdengine_endpoint: Any,
    tdengine_database: str,
    tdengine_options: Any,
    produce_messages: Any,
    tdengine_sql: Any,
) -> None:
    env = ReplayEnv(tmp_path, kafka_bootstrap, topic_factory, tdengine_endpoint,
                    tdengine_database, partitions=2)  # fmt: skip
    lines = sample_lines(2500, seed=32, invalid_ratio=0.04)
    produce_messages(env.topic, lines)
    assert env.replay("--from-beginning").code == 0
    trades = derived(lines, env.schedule_text)

    run = env.audit(*ALL_TIME, "--format", "json")
    assert run.code == 0, run.output
    report = run.summary
    assert report is not None and report["passed"] is True
    assert report["trades_checked"] == len(trades)
    assert report["rows_checked"] == 4 * len(trades)
    revenue: Counter[int] = Counter()
    fee_rows: Counter[int] = Counter()
    for events in trades:
        for e in events[2:]:
            revenue[e.credit_asset] += e.credit_amt
            fee_rows[e.credit_asset] += 1
    assert {t["asset"]: t["fee_revenue"] for t in report["totals"]} == dict(revenue)
    assert {t["asset"]: t["fee_rows"] for t in report["totals"]} == dict(fee_rows)

    table = env.audit(*ALL_TIME, "--against-topic", "--window-rows", "1500")
    assert table.code == 0, table.output
    assert "RESULT: PASS" in table.output and "topic" in table.output

    user = trades[10][0].user_id
    mine = [t for t in trades if user in (t[0].user_id, t[1].user_id)]
    by_user = env.audit(*ALL_TIME, "--user-id", str(user), "--format", "json", "--against-topic")
    assert by_user.code == 0, by_user.output
    assert by_user.summary is not None and by_user.summary["trades_checked"] == len(mine)
    kind = trades[0][0].account_type
    of_kind = [t for t in trades if t[0].account_type == kind]
    by_kind = env.audit(*ALL_TIME, "--account-type", str(kind), "--format", "json")
    assert by_kind.summary is not None and by_kind.summary["trades_checked"] == len(of_kind)

    # A valid trade on the topic without rows, and rows of a trade that is not on it.
    late = sample_lines(2600, seed=32, invalid_ratio=0.0)[2555]
    produce_messages(env.topic, [late])
    late_id = derived([late], env.schedule_text)[0][0].trade_id
    alien = msgspec.structs.replace
    ghost = [alien(e, trade_id=900_000_001, event_id=900_000_001 * 4 + k)
             for k, e in enumerate(trades[0])]  # fmt: skip
    insert(tdengine_sql, tdengine_database, ghost)
    mismatch = env.audit(*ALL_TIME, "--against-topic", "--format", "json")
    assert mismatch.code == 1, mismatch.output
    assert mismatch.summary is not None
    topic_failures = {f["trade_id"]: f["message"] for f in mismatch.summary["failures"]
                      if f["check"] == "topic"}  # fmt: skip
    assert set(topic_failures) == {late_id, 900_000_001}
    assert "has no rows" in topic_failures[late_id]
    assert "not a valid trade in the topic range" in topic_failures[900_000_001]


def test_audit_names_the_trade_with_a_missing_row(ledger: Ledger) -> None:
    victim = ledger.trades[123]
    trade_id = victim[0].trade_id
    trades = [t if t is not victim else t[:2] + t[3:] for t in ledger.trades]  # k=2 not written
    write_events(ledger.options, trades)
    code, out, _ = ledger.audit(*ALL_TIME)
    assert code == 1, out
    assert f"trade {trade_id}: 3 of 4 rows" in out
    assert "RESULT: FAIL" in out
    assert re.search(r"completeness +FAIL +1 failure", out), out
    assert re.search(r"conservation +PASS", out), out  # an incomplete trade is not checked further


def test_audit_names_the_trade_with_an_altered_amount(ledger: Ledger, tdengine_sql: Any) -> None:
    write_events(ledger.options, ledger.trades)
    assert ledger.audit(*ALL_TIME)[0] == 0
    fee_row = ledger.trades[77][2]  # FeeReceived, k=2
    altered = msgspec.structs.replace(fee_row, credit_amt=fee_row.credit_amt + 1)
    insert(tdengine_sql, ledger.database, [altered])  # overwrites the row in place
    code, out, _ = ledger.audit(*ALL_TIME, "--format", "csv")
    assert code == 1, out
    failures = [r for r in csv.DictReader(io.StringIO(out)) if r["record"] == "failure"]
    assert {(r["check"], r["trade_id"]) for r in failures} == {
        ("conservation", str(fee_row.trade_id)),
        ("fee_consistency", str(fee_row.trade_id)),
    }
    fee = next(r for r in failures if r["check"] == "fee_consistency")
    assert f"credits {altered.credit_amt} of asset {fee_row.credit_asset}" in fee["message"]
    assert f"charged a fee of {fee_row.credit_amt}" in fee["message"]


def test_audit_names_stray_rows(ledger: Ledger, tdengine_sql: Any) -> None:
    write_events(ledger.options, ledger.trades)
    host = ledger.trades[500]
    # A copy of the seller's settlement in a third user's subtable: five rows for one trade.
    stray_in_trade = msgspec.structs.replace(host[1], user_id=424_242)
    # One row of a trade that does not otherwise exist.
    lone = msgspec.structs.replace(host[3], trade_id=777_777_777, event_id=777_777_777 * 4 + 3)
    insert(tdengine_sql, ledger.database, [stray_in_trade, lone])
    code, out, _ = ledger.audit(*ALL_TIME, "--format", "json")
    assert code == 1, out
    report = msgspec.json.decode(out)
    named = {f["trade_id"]: f["message"] for f in report["failures"]}
    assert set(named) == {host[0].trade_id, 777_777_777}
    assert "5 rows, expected 4" in named[host[0].trade_id]
    assert "1 of 4 rows" in named[777_777_777]
    assert report["failures_by_check"]["completeness"] == 2


def test_audit_usage_errors_exit_2(ledger: Ledger) -> None:
    code, _, out = ledger.audit("--from", "2025-06-15T00:00:00", "--to", "1")
    assert code == 2 and "no time zone" in out
    code, _, out = ledger.audit("--from", "5000", "--to", "1000")
    assert code == 2 and "--from must be before --to" in out


def test_audit_of_a_missing_database_cannot_complete(ledger: Ledger) -> None:
    code, _, out = ledger.audit(*ALL_TIME)
    assert code == 3, out
    assert "could not complete" in out
