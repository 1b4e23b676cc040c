"""The server's own ceiling per write path: a plain writer of pre-built requests.

Against a real TDengine (``TDENGINE_URL``), on the same rows, for each path:

* ``rest-sql``: INSERT text from :class:`~worker.tdengine.sql.InsertBuilder`, encoded
  once, POSTed to ``/rest/sql`` on one keep-alive ``requests`` session;
* ``ws-sql``: the same INSERT text through ``taosws`` ``Connection.execute``;
* ``stmt2-subtable`` and ``stmt2-stable``: :class:`~worker.tdengine.stmt2.BindBuilder`
  requests through :class:`~worker.tdengine.stmt2.Stmt2Sender` in either shape.

Rows come from :func:`standins.samples.trade_lines` through the worker's
:class:`~worker.core.deriver.Deriver`, cut into batches of ``--batch-rows`` (whole
trades). Each (spread, path) runs in a fresh process: it builds every request first
(timed apart: the Python-side cost, cold caches and warm), opens the connection, then
times only the sending, into a fresh database (``first`` write: every subtable is
created) and again with the same requests (``existing``: tables exist, rows are
overwritten). Affected rows and the final row count are checked. Peak RSS is the
process's high-water mark. Every measurement is a JSON line in ``--out``; the printed
tables give the median of ``--repeats`` runs (paths run interleaved, so noise from
other work on the machine spreads over all of them).

Run: ``TDENGINE_URL=http://root:taosdata@host:6041 python -m bench.bench_write_paths``
``[--rows N] [--batch-rows N] [--repeats N] [--spreads uniform-2000,...] [--paths ...]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import requests

from standins.samples import UserSpread, fee_schedule_text, trade_lines
from worker.core.events import BalanceEvent
from worker.tdengine.stmt2 import Shape

OUT = Path(__file__).resolve().parent / "out"
PATHS = ("rest-sql", "ws-sql", "stmt2-subtable", "stmt2-stable")
SPREADS = ("uniform-2000", "zipf-2000", "uniform-200000", "zipf-200000")
CEILING_BIND_ROWS = 20_000
CEILING_BIND_VIEWS = 5_000
"""stmt2 request size of the plain writer (the ceiling): the fastest measured send-only."""
MARKET_MAKER_SHARE = 0.5
"""Skewed spreads: half of all trades have one of 20 market makers on one side."""


def spread_of(label: str) -> UserSpread:
    kind, users = label.split("-")
    if kind == "zipf":
        return UserSpread(users=int(users), kind="zipf", market_maker_share=MARKET_MAKER_SHARE)
    if kind == "uniform":
        return UserSpread(users=int(users), kind="uniform")
    raise ValueError(f"unknown spread {label!r}: use uniform-N or zipf-N")


def sample_batches(label: str, rows: int, batch_rows: int) -> list[list[BalanceEvent]]:
    """Derived rows of ``rows // 4`` trades, in batches of whole trades."""
    lines = trade_lines(rows // 4, spread=spread_of(label), invalid_ratio=0.0)
    return derived_batches(lines, batch_rows)


def derived_batches(lines: Iterable[bytes], batch_rows: int) -> list[list[BalanceEvent]]:
    """The rows of the accepted trades, in batches of whole trades (at most ``batch_rows``)."""
    from worker.core.deriver import Deriver
    from worker.core.fee_schedule import parse_fee_schedule
    from worker.core.rejections import Rejection

    derive = Deriver(parse_fee_schedule(fee_schedule_text())).derive
    events: list[BalanceEvent] = []
    for line in lines:
        derived = derive(line)
        if not isinstance(derived, Rejection):
            events.extend(derived)
    step = batch_rows - batch_rows % 4 or 4
    return [events[i : i + step] for i in range(0, len(events), step)]


def rss_mib() -> float:
    for row in Path("/proc/self/status").read_text().splitlines():
        if row.startswith("VmHWM:"):
            return int(row.split()[1]) / 1024
    return 0.0


class Server:
    """REST access for set-up and checks, and the URLs of both APIs."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        self.user = unquote(parts.username or os.environ.get("TDENGINE_USER", "root"))
        self.password = unquote(parts.password or os.environ.get("TDENGINE_PASSWORD", "taosdata"))
        host_port = f"{parts.hostname or 'localhost'}:{parts.port or 6041}"
        secure = parts.scheme in ("https", "wss")
        self.http = f"{'https' if secure else 'http'}://{host_port}"
        self.ws = f"{'wss' if secure else 'ws'}://{host_port}"
        user, password = quote(self.user, safe=""), quote(self.password, safe="")
        self.ws_dsn = f"{'wss' if secure else 'ws'}://{user}:{password}@{host_port}"
        self.session = requests.Session()
        self.session.auth = (self.user, self.password)

    def sql(self, statement: str | bytes) -> dict[str, Any]:
        body = statement if isinstance(statement, bytes) else statement.encode()
        reply = self.session.post(f"{self.http}/rest/sql", data=body, timeout=120)
        answer: dict[str, Any] = reply.json()
        if answer.get("code", 0) != 0:
            raise RuntimeError(f"TDengine: {answer.get('desc')} (code {answer.get('code')})")
        return answer

    def version(self) -> str:
        return str(self.sql("SELECT SERVER_VERSION()")["data"][0][0])

    def create_ledger(self, database: str) -> None:
        from worker.tdengine.options import TDengineOptions
        from worker.tdengine.schema import (
            composite_key_keyword,
            create_database_sql,
            create_stable_sql,
            parse_server_version,
        )

        keyword = composite_key_keyword(parse_server_version(self.version()))
        self.sql(create_database_sql(TDengineOptions(database=database)))
        self.sql(create_stable_sql(database, keyword))


def build_requests(
    path: str, database: str, server: Server, batches: Sequence[Sequence[BalanceEvent]]
) -> tuple[Callable[[], list[Any]], Callable[[], Callable[[Any], int]], Callable[[], None]]:
    """(build every request, open a sender, close it) for ``path``."""
    if path in ("rest-sql", "ws-sql"):
        from worker.tdengine.sql import InsertBuilder

        builder = InsertBuilder(database)
        if path == "rest-sql":

            def build_rest() -> list[Any]:
                return [s.sql.encode() for b in batches for s in builder.build(b)]

            def post(body: Any) -> int:
                return int(server.sql(body)["data"][0][0])

            return build_rest, lambda: post, lambda: None
        import taosws

        connection: list[Any] = []

        def open_ws() -> Callable[[Any], int]:
            connection.append(taosws.connect(server.ws_dsn))
            return lambda sql: int(connection[0].execute(sql))

        def build_text() -> list[Any]:
            return [s.sql for b in batches for s in builder.build(b)]

        return build_text, open_ws, lambda: connection[0].close()
    from worker.tdengine.stmt2 import BindBuilder, Stmt2Sender

    # The server's best request size, whatever the worker's defaults are: 20,000 rows
    # (617,000 rows/s send-only at 2,000 users, 447,000 at 5,000) and 5,000 views.
    binder = BindBuilder(max_rows=CEILING_BIND_ROWS, max_views=CEILING_BIND_VIEWS)
    shape: Shape = "subtable" if path == "stmt2-subtable" else "stable"
    sender = Stmt2Sender(server.ws, server.user, server.password, database, shape=shape)

    def open_stmt2() -> Callable[[Any], int]:
        sender.open()
        return sender.execute

    def build_bind() -> list[Any]:
        return [r for b in batches for r in binder.build(b)]

    return build_bind, open_stmt2, sender.close


def child(args: argparse.Namespace) -> None:
    """One (spread, path) in this fresh process; prints one JSON line per write."""
    server = Server(args.url)
    batches = sample_batches(args.spread, args.rows, args.batch_rows)
    rows = sum(map(len, batches))
    subtables = len({(e.user_id, e.account_type) for b in batches for e in b})
    per_batch = statistics.mean(len({(e.user_id, e.account_type) for e in b}) for b in batches)
    database = f"bench_{uuid.uuid4().hex[:12]}"
    build, open_sender, close = build_requests(args.path, database, server, batches)
    started = time.perf_counter()
    build()  # cold: the builders' name and tag caches are empty
    build_cold = time.perf_counter() - started
    started = time.perf_counter()
    requests_ = build()  # warm, as in a long-running worker; these are sent
    build_warm = time.perf_counter() - started
    server.create_ledger(database)
    common = {
        "path": args.path,
        "spread": args.spread,
        "rows": rows,
        "batches": len(batches),
        "requests": len(requests_),
        "subtables": subtables,
        "subtables_per_batch": round(per_batch, 1),
        "build_cold_s": round(build_cold, 4),
        "build_warm_s": round(build_warm, 4),
        "server_version": server.version(),
        "repeat": args.repeat,
    }
    try:
        send = open_sender()
        for write in ("first", "existing"):
            started = time.perf_counter()
            affected = sum(send(request) for request in requests_)
            seconds = time.perf_counter() - started
            if affected != rows:
                raise RuntimeError(f"{args.path}: affected rows {affected} != {rows} sent")
            line = {**common, "write": write, "seconds": round(seconds, 4)}
            line["rows_per_s"] = round(rows / seconds)
            line["peak_rss_mib"] = round(rss_mib(), 1)
            print(json.dumps(line), flush=True)
        close()
        counted = server.sql(f"SELECT COUNT(*) FROM `{database}`.`balance_events`")
        if counted["data"][0][0] != rows:
            raise RuntimeError(f"{args.path}: {counted['data'][0][0]} rows stored, {rows} sent")
    finally:
        server.sql(f"DROP DATABASE IF EXISTS `{database}`")


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as out:
        for repeat in range(1, args.repeats + 1):
            for spread in args.spreads:
                # Rotate the path order each repeat: no path always runs first.
                shift = (repeat - 1) % len(args.paths)
                for path in [*args.paths[shift:], *args.paths[:shift]]:
                    command = [
                        sys.executable, "-m", "bench.bench_write_paths", "--child",
                        "--url", args.url, "--spread", spread, "--path", path,
                        "--rows", str(args.rows), "--batch-rows", str(args.batch_rows),
                        "--repeat", str(repeat),
                    ]  # fmt: skip
                    done = subprocess.run(command, capture_output=True, text=True, check=False)
                    if done.returncode != 0:
                        sys.stderr.write(done.stderr)
                        raise SystemExit(f"{path} at {spread} failed (exit {done.returncode})")
                    for text in done.stdout.splitlines():
                        line = json.loads(text)
                        results.append(line)
                        out.write(text + "\n")
                        print(
                            f"  repeat {repeat} {spread:>15} {path:>15} {line['write']:>8}: "
                            f"{line['rows_per_s']:>9,} rows/s",
                            flush=True,
                        )
    return results


def report(results: Sequence[dict[str, Any]], paths: Sequence[str]) -> str:
    """Medians: send-only rows/s per path, then build rows/s and peak RSS per path."""

    def median(spread: str, path: str, write: str, field: str) -> float:
        values = [
            r[field]
            for r in results
            if r["spread"] == spread and r["path"] == path and r["write"] == write
        ]
        return statistics.median(values) if values else float("nan")

    spreads = list(dict.fromkeys(r["spread"] for r in results))
    version = results[0]["server_version"] if results else "?"
    repeats = len({r["repeat"] for r in results})
    lines = [
        f"Server ceiling, TDengine {version}: rows/s sending pre-built requests "
        f"(median of {repeats})",
        f"{'spread':>15} {'write':>8} {'subtables':>9} " + " ".join(f"{p:>15}" for p in paths),
    ]
    for spread in spreads:
        subtables = next(r["subtables"] for r in results if r["spread"] == spread)
        for write in ("first", "existing"):
            row = " ".join(f"{median(spread, p, write, 'rows_per_s'):>15,.0f}" for p in paths)
            lines.append(f"{spread:>15} {write:>8} {subtables:>9,} {row}")
    lines += ["", "Python-side build, rows/s (cold caches / warm), and peak RSS MiB (median)"]
    lines.append(f"{'spread':>15} " + " ".join(f"{p:>23}" for p in paths))
    for spread in spreads:
        cells: list[str] = []
        for p in paths:
            rows = median(spread, p, "first", "rows")
            cold = rows / median(spread, p, "first", "build_cold_s")
            warm = rows / median(spread, p, "first", "build_warm_s")
            rss = median(spread, p, "existing", "peak_rss_mib")
            cells.append(f"{cold:>8,.0f}/{warm:>8,.0f} {rss:>5.0f}")
        lines.append(f"{spread:>15} " + " ".join(f"{c:>23}" for c in cells))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", default=os.environ.get("TDENGINE_URL", ""))
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch-rows", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--spreads", default=",".join(SPREADS))
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--out", type=Path, default=OUT / "write_paths.jsonl")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--spread", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.url:
        print("bench_write_paths needs a real TDengine: set TDENGINE_URL", file=sys.stderr)
        return 2
    if args.child:
        child(args)
        return 0
    args.spreads = [s for s in args.spreads.split(",") if s]
    args.paths = [p for p in args.paths.split(",") if p]
    for spread in args.spreads:
        spread_of(spread)
    unknown = set(args.paths) - set(PATHS)
    if unknown:
        parser.error(f"unknown paths {sorted(unknown)}: choose from {', '.join(PATHS)}")
    print(f"{args.rows:,} rows per spread, batches of {args.batch_rows:,}; JSON lines: {args.out}")
    results = run(args)
    print(report(results, args.paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
