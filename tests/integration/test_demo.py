"""``balance-sink demo`` as a new user runs it: exit 0, a summary read back through SQL."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from standins.samples import fee_schedule_text, trade_lines
from worker.core.deriver import Deriver
from worker.core.fee_schedule import parse_fee_schedule
from worker.core.rejections import Rejection

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


def test_demo_runs_end_to_end_and_reports_the_ledger(kafka_bootstrap: str) -> None:
    trades = 2000
    env = {**os.environ, "KAFKA_BOOTSTRAP": kafka_bootstrap, "COLUMNS": "120"}
    env.pop("TDENGINE_URL", None)  # the demo's own stand-in, labelled as such
    proc = subprocess.run(
        [sys.executable, "-m", "worker", "demo", "--trades", str(trades)],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "stand-in" in out and "NOT TDengine" in out
    deriver = Deriver(parse_fee_schedule(fee_schedule_text()))
    results = [deriver.derive(x) for x in trade_lines(trades, invalid_ratio=0.02)]
    valid = sum(not isinstance(r, Rejection) for r in results)
    rows = re.search(r"rows in balance_events\s*│\s*([\d,]+)", out)
    assert rows is not None, out
    assert int(rows.group(1).replace(",", "")) == valid * 4
    lag = re.search(r"consumer lag \(all partitions\)\s*│\s*(\d+)", out)
    assert lag is not None and lag.group(1) == "0"
    assert "fee revenue, asset 100" in out
    url = re.search(
        r"metrics endpoint \(while running\)\s*│\s*http://127\.0\.0\.1:(\d+)/metrics", out
    )
    assert url is not None and int(url.group(1)) > 0, out
