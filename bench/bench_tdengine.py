"""Benchmarks of the TDengine write path; prints figures, asserts nothing.

1. Statement building (pure, one core): rows/s of :class:`InsertBuilder` on generated
   trades with mixed users, with a cold and a warm header cache.
2. Writing to the in-repo REST double, started in this process: rows/s end to end
   through :class:`TDengineWriter` and the statement size used. The double parses
   and stores every row in SQLite in the same process (same GIL), so this measures
   the double at least as much as the writer; a real taosAdapter is another figure.
3. REST clients: requests/s of our keep-alive :class:`RestTransport` against
   ``taosrest.RestClient`` (a new connection per request) on small statements.

Run: ``.venv/bin/python -m bench.bench_tdengine [--rows N] [--users N] [--write-rows N]``.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from worker.core.events import BalanceEvent
from worker.tdengine.options import TDengineOptions
from worker.tdengine.sql import InsertBuilder
from worker.tdengine.transport import RestTransport, open_transport
from worker.tdengine.writer import RowGroup, TDengineWriter

__all__ = ("generate_trades", "main")

TS0 = 1_700_000_000_000_000


def generate_trades(trades: int, users: int, *, seed: int = 7) -> list[list[BalanceEvent]]:
    """Four rows per trade (buyer, seller, two platform fee rows), users drawn at random.

    Messages arrive in timestamp order, as from one Kafka partition.
    """
    rng = random.Random(seed)
    out: list[list[BalanceEvent]] = []
    for n in range(trades):
        trade_id = 1_000_000 + n
        ts = TS0 + n * 13
        buyer, seller = rng.randrange(1, users + 1), rng.randrange(1, users + 1)
        base_asset, quote_asset = rng.choice(((1, 2), (3, 2), (4, 1)))
        qty, price = rng.randrange(1, 10**8), rng.randrange(1, 10**6)
        notional = qty * price // 10_000
        buyer_fee, seller_fee = notional // 1_000, notional // 2_000
        maker_is_buyer = rng.random() < 0.5
        base = trade_id * 4
        out.append(
            [
                BalanceEvent(
                    ts, base, 1, trade_id, buyer, 1, quote_asset, notional, base_asset, qty,
                    buyer_fee, quote_asset, maker_is_buyer, None,
                ),
                BalanceEvent(
                    ts, base + 1, 1, trade_id, seller, 1, base_asset, qty, quote_asset, notional,
                    seller_fee, quote_asset, not maker_is_buyer, None,
                ),
                BalanceEvent(
                    ts, base + 2, 2, trade_id, 0, 1, None, None, quote_asset, buyer_fee, 0,
                    quote_asset, False, buyer,
                ),
                BalanceEvent(
                    ts, base + 3, 2, trade_id, 0, 1, None, None, quote_asset, seller_fee, 0,
                    quote_asset, False, seller,
                ),
            ]
        )  # fmt: skip
    return out


def _best(run: Callable[[], Any], repeat: int, clock: Callable[[], float]) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        started = clock()
        run()
        best = min(best, clock() - started)
    return best


def bench_build(rows: int, users: int, repeat: int) -> None:
    """Statement building rows/s, cold (new builder each time) and warm (reused)."""
    events = [e for trade in generate_trades(rows // 4, users) for e in trade]
    warm = InsertBuilder("ledger")
    statements = warm.build(events)
    # CPU time of this process: "one core", and fair on a shared machine.
    cold = _best(lambda: InsertBuilder("ledger").build(events), repeat, time.process_time)
    hot = _best(lambda: warm.build(events), repeat, time.process_time)
    sizes = [s.nbytes for s in statements]
    subtables = len({(e.user_id, e.account_type) for e in events})
    print(
        f"build  rows={len(events)} users={users} subtables={subtables}: "
        f"cold {len(events) / cold:,.0f} rows/s, warm {len(events) / hot:,.0f} rows/s "
        "(CPU time); "
        f"{len(statements)} statements, max {max(sizes):,} B, "
        f"{sum(sizes) / len(events):.0f} B/row"
    )


def _double_nodelay(on: bool) -> bool:
    """Set TCP_NODELAY on the double's connections; return the previous setting.

    The double writes response headers and body in two sends; without TCP_NODELAY,
    Nagle's algorithm on the server and delayed ACK on the client stall every response
    on a kept-alive connection by ~40 ms. taosAdapter (Go) sets TCP_NODELAY, so the
    "as a real server behaves" figures switch it on here.
    """
    from standins.tdengine_double import server

    handler: Any = server._Handler
    previous = bool(handler.disable_nagle_algorithm)
    handler.disable_nagle_algorithm = on
    return previous


def bench_write(rows: int, users: int, batch_rows: int) -> None:
    """End-to-end rows/s into the in-process REST double."""
    from standins.tdengine_double import TDengineDouble

    trades = generate_trades(rows // 4, users, seed=11)
    groups = [RowGroup(key=("trades", 0, i), events=t) for i, t in enumerate(trades)]
    per_batch = max(1, batch_rows // 4)
    batches: Sequence[Sequence[RowGroup]] = [
        groups[i : i + per_batch] for i in range(0, len(groups), per_batch)
    ]
    with TDengineDouble() as double:
        options = TDengineOptions(
            url=double.url, user=double.user, password=double.password, database="bench"
        )
        transport = open_transport(options)
        writer = TDengineWriter(transport, options)
        writer.ensure_schema()
        sizes: list[int] = []

        class Sizes:
            def on_statement(self, rows: int, nbytes: int, seconds: float) -> None:
                sizes.append(nbytes)

            def on_retry(self, error: object) -> None: ...
            def on_error(self, kind: object, code: object) -> None: ...
            def on_affected_mismatch(self, expected: int, actual: int) -> None: ...

        writer = TDengineWriter(transport, options, Sizes())
        started = time.perf_counter()
        written = sum(writer.write(batch).rows_written for batch in batches)
        elapsed = time.perf_counter() - started
        count = writer.query("SELECT COUNT(*) FROM `bench`.`balance_events`").rows[0][0]
        transport.close()
    print(
        f"write  rows={written} (stored {count}) batches={len(batches)} of ~{batch_rows} rows "
        f"to the in-process double (TCP_NODELAY on): {written / elapsed:,.0f} rows/s; "
        f"{len(sizes)} statements, mean {sum(sizes) / len(sizes):,.0f} B, max {max(sizes):,} B "
        f"(limit {options.max_statement_bytes:,} B)"
    )


def bench_clients(requests_count: int, *, nodelay: bool) -> None:
    """Requests/s: keep-alive RestTransport against taosrest.RestClient."""
    import taosrest

    from standins.tdengine_double import TDengineDouble

    previous = _double_nodelay(nodelay)
    with TDengineDouble() as double:
        ours = RestTransport(double.url, double.user, double.password, timeout_s=10)
        theirs = taosrest.RestClient(
            double.url, user=double.user, password=double.password, timeout=10
        )
        sql = "SELECT SERVER_VERSION()"
        ours.query(sql)
        theirs.sql(sql)
        ours_s = _best(
            lambda: [ours.query(sql) for _ in range(requests_count)], 3, time.perf_counter
        )
        theirs_s = _best(
            lambda: [theirs.sql(sql) for _ in range(requests_count)], 3, time.perf_counter
        )
        ours.close()
    _double_nodelay(previous)
    print(
        f"client {requests_count} small requests, double TCP_NODELAY={nodelay}: "
        "RestTransport (keep-alive Session) "
        f"{requests_count / ours_s:,.0f} req/s, taosrest.RestClient "
        f"{requests_count / theirs_s:,.0f} req/s"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmarks and print one line per figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=200_000, help="rows for statement building")
    parser.add_argument("--users", type=int, default=20_000, help="distinct users")
    parser.add_argument("--write-rows", type=int, default=40_000, help="rows written to the double")
    parser.add_argument("--batch-rows", type=int, default=20_000, help="rows per write() call")
    parser.add_argument("--requests", type=int, default=300, help="requests per client")
    parser.add_argument("--repeat", type=int, default=5, help="best of N for timings")
    args = parser.parse_args(argv)
    for users in (max(1, args.users // 10), args.users, args.users * 10):
        bench_build(args.rows, users, args.repeat)
    previous = _double_nodelay(True)
    bench_write(args.write_rows, args.users, args.batch_rows)
    _double_nodelay(previous)
    bench_clients(args.requests, nodelay=True)
    bench_clients(args.requests // 10, nodelay=previous)


if __name__ == "__main__":
    main()
