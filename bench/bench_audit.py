"""Audit benchmark: ``balance-sink audit`` over 1,000,000 trades (4,000,000 rows).

Loading (not timed): the core derives the rows of generated trades (no invalid
ones); the database and super table are created with SQL through the TDengine
double's :class:`~standins.tdengine_double.Engine`, and the rows go straight into the
engine's SQLite storage with ``executemany`` (bypassing its INSERT parser, which is
not what is measured here), in a file. Timed: the double serves that file as its own
process, and ``balance-sink audit`` runs as another process against its REST API,
exactly as an operator runs it.

Run: ``python -m bench.bench_audit [--trades N] [--window-rows N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from standins.samples import fee_schedule_text, trade_lines
from standins.tdengine_double import Engine
from worker.core.deriver import Deriver
from worker.core.fee_schedule import parse_fee_schedule
from worker.core.rejections import Rejection
from worker.tdengine.options import TDengineOptions
from worker.tdengine.schema import create_database_sql, create_stable_sql
from worker.tdengine.sql import STABLE_NAME, subtable_name

DATABASE = "ledger"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def load(db_file: Path, trades: int) -> tuple[int, float]:
    """Write the rows of ``trades`` generated trades into a double database file."""
    started = time.perf_counter()
    deriver = Deriver(parse_fee_schedule(fee_schedule_text()))
    engine = Engine(db_file=str(db_file))
    engine.execute(create_database_sql(TDengineOptions(database=DATABASE)))
    engine.execute(create_stable_sql(DATABASE, "COMPOSITE KEY"))
    stable = engine.databases[DATABASE].stables[STABLE_NAME]
    width = 3 + len(stable.columns)
    insert = f'INSERT INTO "{stable.storage}" VALUES ({", ".join("?" * width)})'
    subtables: dict[str, tuple[int, int]] = {}
    rows = 0
    chunk = 100_000
    conn = engine.conn
    for first in range(0, trades, chunk):
        batch: list[tuple[object, ...]] = []
        # trade_lines numbers trades 1..n; shift them so every chunk's ids are distinct.
        for line in trade_lines(min(chunk, trades - first), seed=first, invalid_ratio=0.0):
            result = deriver.derive(line)
            if isinstance(result, Rejection):
                continue
            for e in result:
                name = subtable_name(e.user_id, e.account_type)
                subtables[name] = (e.user_id, e.account_type)
                trade_id = e.trade_id + first
                batch.append((
                    name, e.user_id, e.account_type, e.ts, trade_id * 4 + e.event_id % 4,
                    e.event_type, trade_id, e.debit_asset, e.debit_amt, e.credit_asset,
                    e.credit_amt, e.fee, e.fee_asset, int(e.is_maker), e.from_user,
                ))  # fmt: skip
        conn.execute("BEGIN")
        conn.executemany(insert, batch)
        conn.execute("COMMIT")
        rows += len(batch)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT OR IGNORE INTO _td_subtable VALUES (?, ?, ?, ?)",
        [(DATABASE, n, STABLE_NAME, json.dumps(list(t))) for n, t in subtables.items()],
    )
    conn.execute("COMMIT")
    engine.close()
    return rows, time.perf_counter() - started


def _wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(
                url + "/rest/sql", data=b"SELECT SERVER_VERSION()", method="POST",
                headers={"Authorization": "Basic cm9vdDp0YW9zZGF0YQ=="},
            )  # fmt: skip
            with urllib.request.urlopen(request, timeout=5):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"the double at {url} did not answer")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=1_000_000)
    parser.add_argument("--window-rows", type=int, default=200_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        work = Path(tmp)
        db_file = work / "double.sqlite"
        rows, load_s = load(db_file, args.trades)
        print(f"loaded {rows:,} rows ({args.trades:,} trades) in {load_s:.1f} s (not timed)")
        port = _free_port()
        double = subprocess.Popen(
            [sys.executable, "-m", "standins.tdengine_double", "--port", str(port),
             "--db-file", str(db_file)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_ready(url)
            schedule = work / "fee_schedule.toml"
            schedule.write_text(fee_schedule_text())
            config = work / "config.toml"
            config.write_text(
                f'fee_schedule = "{schedule}"\n[kafka]\nbootstrap_servers = "127.0.0.1:9"\n'
                f'[tdengine]\nurl = "{url}"\npassword = "taosdata"\n'
                f'database = "{DATABASE}"\nrequest_timeout_s = 120\n'
                '[log]\nlevel = "WARNING"\n'
            )
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "worker", "audit", "--config", str(config),
                 "--from", "2025-01-01T00:00:00Z", "--to", "2026-01-01T00:00:00Z",
                 "--format", "json", "--window-rows", str(args.window_rows)],
                capture_output=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
            elapsed = time.perf_counter() - started
        finally:
            double.terminate()
            double.wait(30)
        if done.returncode != 0:
            print(done.stdout.decode()[-2000:], done.stderr.decode()[-2000:], file=sys.stderr)
            return 1
        report = json.loads(done.stdout)
        print(
            f"audit: {report['trades_checked']:,} trades, {report['rows_checked']:,} rows, "
            f"{report['windows']} windows, passed={report['passed']}: {elapsed:.1f} s wall "
            f"({report['trades_checked'] / elapsed:,.0f} trades/s)"
        )
        return 0 if report["passed"] and report["trades_checked"] == args.trades else 1


if __name__ == "__main__":
    sys.exit(main())
