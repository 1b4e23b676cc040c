"""Core throughput (decode + validate + derive), ``derive`` end to end, decode baseline.

Run: ``python -m bench.bench_core [--trades N]``. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import msgspec

from standins.samples import fee_schedule_text, write_input
from worker.core.deriver import Deriver
from worker.core.fee_schedule import parse_fee_schedule
from worker.core.rejections import Rejection

OUT = Path(__file__).resolve().parent / "out"


class PlainTrade(msgspec.Struct):
    """The same fields as worker.core.messages.Trade, without bounds: the decode baseline."""

    trade_id: int
    symbol_id: int
    ts: int
    price: int
    qty: int
    qty_unit: int
    base_asset_id: int
    quote_asset_id: int
    buyer_user_id: int
    seller_user_id: int
    taker_side: str
    buyer_vip: int = 0
    seller_vip: int = 0
    account_type: int = 1


def best_of(runs: int, fn: object) -> float:
    assert callable(fn)
    return min(_timed(fn) for _ in range(runs))


def _timed(fn: object) -> float:
    assert callable(fn)
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_derive(fees: Path, data: Path) -> tuple[float, float, int]:
    """Run the real command over ``data``: (seconds, peak RSS in MiB, exit status).

    Peak RSS is the child's own VmHWM, polled while it runs (ru_maxrss of children
    would count the benchmark's pages the child held between fork and exec).
    """
    start = time.perf_counter()
    with data.open("rb") as stdin:
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker", "derive", "--fee-schedule", str(fees)],
            stdin=stdin,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        peak_kib = 0
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                for row in status.read_text().splitlines():
                    if row.startswith("VmHWM:"):
                        peak_kib = max(peak_kib, int(row.split()[1]))
            except (OSError, ValueError):
                pass
            time.sleep(0.02)
    return time.perf_counter() - start, peak_kib / 1024, proc.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trades", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    count: int = args.trades
    data = write_input(OUT / f"trades-{count}.jsonl", count)
    fees = OUT / "fee_schedule.toml"
    fees.write_text(fee_schedule_text())
    lines = data.read_bytes().splitlines()
    deriver = Deriver(parse_fee_schedule(fee_schedule_text()))
    rejected = sum(isinstance(deriver.derive(x), Rejection) for x in lines[:100_000])

    def core() -> None:
        derive = deriver.derive
        for x in lines:
            derive(x)

    def baseline() -> None:
        decode = msgspec.json.Decoder(PlainTrade).decode
        for x in lines:
            try:  # noqa: SIM105 - a with-block per line would slow the baseline down
                decode(x)
            except msgspec.DecodeError:
                pass

    core_s = best_of(3, core)
    base_s = best_of(3, baseline)
    e2e_s, rss_mib, code = run_derive(fees, data)
    small = OUT / "trades-head-100000.jsonl"
    small.write_bytes(b"\n".join(lines[:100_000]) + b"\n")
    _, small_rss_mib, _ = run_derive(fees, small)
    print(f"input: {count:,} trades, {data.stat().st_size / 2**20:.0f} MiB, "
          f"{rejected / 1000:.1f} % rejected (first 100k)")  # fmt: skip
    print(f"(a) core decode+validate+derive: {count / core_s:,.0f} trades/s")
    print(f"(b) derive end to end:           {count / e2e_s:,.0f} lines/s (exit {code}, "
          f"peak RSS {rss_mib:.0f} MiB; {small_rss_mib:.0f} MiB on 100k lines)")  # fmt: skip
    print(f"(c) msgspec decode baseline:     {count / base_s:,.0f} trades/s")
    print(f"core / baseline ratio:           {base_s / core_s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
