"""A paired comparison of the two stmt2 statement shapes on a real TDengine.

:mod:`bench.bench_write_paths` runs each path in its own process, minutes apart, so on
a shared machine its per-path medians carry the noise of whatever else ran meanwhile.
Here both shapes send the same pre-built requests, interleaved request by request
(which shape goes first alternates), each into its own fresh database: noise then
hits both alike, and the per-round ratio ``stable / subtable`` is what is reported.
Each round writes every request twice: ``first`` (subtables created) and ``existing``.

Run: ``TDENGINE_URL=... python -m bench.bench_stmt2_shapes [--rows N] [--rounds N]
[--spreads uniform-2000,...]``; JSON lines go to ``bench/out/stmt2_shapes.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.bench_write_paths import OUT, SPREADS, Server, sample_batches
from worker.tdengine.stmt2 import SHAPES, BindBuilder, BindRequest, Stmt2Sender


def one_round(
    server: Server, requests: Sequence[BindRequest], round_: int
) -> dict[str, dict[str, float]]:
    """Seconds per shape and write for one round (two fresh databases)."""
    databases = {shape: f"bench_{uuid.uuid4().hex[:12]}" for shape in SHAPES}
    seconds: dict[str, dict[str, float]] = {s: {"first": 0.0, "existing": 0.0} for s in SHAPES}
    senders: dict[str, Stmt2Sender] = {}
    try:
        for shape, database in databases.items():
            server.create_ledger(database)
            senders[shape] = Stmt2Sender(
                server.ws, server.user, server.password, database, shape=shape
            )
            senders[shape].open()
        for write in ("first", "existing"):
            for index, request in enumerate(requests):
                order = SHAPES if (index + round_) % 2 == 0 else SHAPES[::-1]
                for shape in order:
                    started = time.perf_counter()
                    affected = senders[shape].execute(request)
                    seconds[shape][write] += time.perf_counter() - started
                    if affected != request.rows:
                        raise RuntimeError(f"{shape}: affected {affected} != {request.rows}")
    finally:
        for sender in senders.values():
            sender.close()
        for database in databases.values():
            server.sql(f"DROP DATABASE IF EXISTS `{database}`")
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", default=os.environ.get("TDENGINE_URL", ""))
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch-rows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--spreads", default=",".join(SPREADS))
    parser.add_argument("--out", type=Path, default=OUT / "stmt2_shapes.jsonl")
    args = parser.parse_args(argv)
    if not args.url:
        print("bench_stmt2_shapes needs a real TDengine: set TDENGINE_URL", file=sys.stderr)
        return 2
    server = Server(args.url)
    version = server.version()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    lines: list[dict[str, Any]] = []
    with args.out.open("a") as out:
        for spread in (s for s in args.spreads.split(",") if s):
            batches = sample_batches(spread, args.rows, args.batch_rows)
            builder = BindBuilder()
            requests = [r for batch in batches for r in builder.build(batch)]
            rows = sum(r.rows for r in requests)
            for round_ in range(1, args.rounds + 1):
                seconds = one_round(server, requests, round_)
                for write in ("first", "existing"):
                    line: dict[str, Any] = {
                        "spread": spread,
                        "write": write,
                        "round": round_,
                        "rows": rows,
                        "server_version": version,
                    }
                    for shape in SHAPES:
                        line[f"{shape}_rows_per_s"] = round(rows / seconds[shape][write])
                    line["ratio"] = round(
                        seconds["subtable"][write] / seconds["stable"][write], 3
                    )  # > 1: the stable shape is faster
                    lines.append(line)
                    out.write(json.dumps(line) + "\n")
                    print(
                        f"  {spread:>15} round {round_} {write:>8}: subtable "
                        f"{line['subtable_rows_per_s']:>9,} stable "
                        f"{line['stable_rows_per_s']:>9,} rows/s, ratio {line['ratio']}",
                        flush=True,
                    )
    print(f"\nstmt2 shapes, TDengine {version}: medians over {args.rounds} paired rounds")
    print(f"{'spread':>15} {'write':>8} {'subtable':>10} {'stable':>10} {'stable/sub':>10} wins")
    for spread in dict.fromkeys(line["spread"] for line in lines):
        for write in ("first", "existing"):
            mine = [x for x in lines if x["spread"] == spread and x["write"] == write]
            sub = statistics.median(x["subtable_rows_per_s"] for x in mine)
            stb = statistics.median(x["stable_rows_per_s"] for x in mine)
            ratio = statistics.median(x["ratio"] for x in mine)
            wins = sum(x["ratio"] > 1 for x in mine)
            print(
                f"{spread:>15} {write:>8} {sub:>10,.0f} {stb:>10,.0f} {ratio:>10.3f} "
                f"{wins}/{len(mine)}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
