"""``balance-sink demo`` as a new user runs it: exit 0, a summary read back through SQL."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import pytest

from standins.samples import fee_schedule_text, trade_lines
from tests.fixtures.tdengine import TDengineEndpoint
from worker.core.deriver import Deriver
from worker.core.fee_schedule import parse_fee_schedule
from worker.core.rejections import Rejection

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]
HUMAN_LOG_LINE = re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+ ")


def run_demo(env: dict[str, str], trades: int) -> subprocess.CompletedProcess[str]:
    """Run the demo with ``env`` over this process's environment, without its
    TDENGINE_URL unless ``env`` sets one (a run against the suite's real server sets it)."""
    inherited = {k: v for k, v in os.environ.items() if k != "TDENGINE_URL"}
    proc = subprocess.run(
        [sys.executable, "-m", "worker", "demo", "--trades", str(trades)],
        capture_output=True,
        text=True,
        env={**inherited, "COLUMNS": "120", **env},
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # Nothing raw from librdkafka (e.g. its %4|...|GETPID| line at start-up).
    for line in proc.stderr.splitlines():
        assert HUMAN_LOG_LINE.match(line), proc.stderr[-3000:]
    return proc


def valid_trades(trades: int) -> int:
    deriver = Deriver(parse_fee_schedule(fee_schedule_text()))
    results = [deriver.derive(x) for x in trade_lines(trades, invalid_ratio=0.02)]
    return sum(not isinstance(r, Rejection) for r in results)


def rows_reported(out: str) -> int:
    rows = re.search(r"rows in balance_events\s*│\s*([\d,]+)", out)
    assert rows is not None, out
    return int(rows.group(1).replace(",", ""))


def test_demo_runs_end_to_end_and_reports_the_ledger(kafka_bootstrap: str) -> None:
    trades = 2000
    proc = run_demo({"KAFKA_BOOTSTRAP": kafka_bootstrap}, trades)  # its own stand-in
    out = proc.stdout
    assert "stand-in" in out and "NOT TDengine" in out
    assert rows_reported(out) == valid_trades(trades) * 4
    lag = re.search(r"consumer lag \(all partitions\)\s*│\s*(\d+)", out)
    assert lag is not None and lag.group(1) == "0"
    assert "fee revenue, asset 100" in out
    url = re.search(
        r"metrics endpoint \(while running\)\s*│\s*http://127\.0\.0\.1:(\d+)/metrics", out
    )
    assert url is not None and int(url.group(1)) > 0, out


@pytest.mark.tdengine
def test_with_tdengine_url_each_run_counts_only_its_own_rows(
    kafka_bootstrap: str, tdengine_endpoint: TDengineEndpoint, tdengine_sql: Any
) -> None:
    env = {
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "TDENGINE_URL": tdengine_endpoint.url,
        "TDENGINE_USER": tdengine_endpoint.user,
        "TDENGINE_PASSWORD": tdengine_endpoint.password,
    }
    runs: list[subprocess.CompletedProcess[str]] = []
    try:
        runs.append(run_demo(env, 600))
        runs.append(run_demo(env, 400))  # other trades' timestamps: other rows
    finally:
        for run in runs:  # each run leaves its database for the operator to read
            named = re.search(r"its own database (\w+)", run.stdout)
            if named:
                tdengine_sql(f"DROP DATABASE IF EXISTS `{named.group(1)}`")
    first, second = runs
    assert rows_reported(first.stdout) == valid_trades(600) * 4
    assert rows_reported(second.stdout) == valid_trades(400) * 4
    databases = [re.search(r"its own database (\w+)", p.stdout) for p in (first, second)]
    assert all(databases) and len({d.group(1) for d in databases if d}) == 2
