"""Produce sample trades for the docker compose stack: a few thousand realistic ones, a few invalid.

Runs once inside the balance-sink image (Python plus confluent_kafka)::

    python produce_sample.py --bootstrap-servers kafka:9092 --topic trades --count 3000

The trades follow ``deploy/compose/fee_schedule.toml`` (symbols 1-3, VIP levels 0, 1, 2, 5)
and ``schemas/trade.schema.json``. Every ``--invalid-every``-th message is one of the contract's
rejections instead (bad JSON, a missing field, a wrong type, an unknown symbol, an unknown VIP
level, base == quote), so the dead-letter path and its metrics show up too. The output depends
only on ``--seed`` and ``--first-trade-id``: running it twice produces the same trades, which
the ledger's idempotent writes absorb.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final, NamedTuple

__all__ = ("INVALID_KINDS", "MARKETS", "main", "sample_trades")

USDT: Final = 2
USDT_UNIT: Final = 10**8
START_TS_US: Final = 1_751_328_000_000_000
"""2025-07-01T00:00:00Z: every symbol of the compose fee schedule is listed by then."""


class Market(NamedTuple):
    symbol_id: int
    base_asset_id: int
    qty_unit: int
    mid_price: int
    """USDT minor units (1e-8) per whole base coin."""
    min_qty: int
    max_qty: int


MARKETS: Final = (
    Market(1, 1, 10**8, 65_000 * USDT_UNIT, 10**4, 2 * 10**8),  # BTC/USDT, 0.0001-2 BTC
    Market(2, 3, 10**18, 3_400 * USDT_UNIT, 10**15, 9 * 10**18),  # ETH/USDT, 0.001-9 (qty<2^63)
    Market(3, 4, 10**9, 150 * USDT_UNIT, 10**8, 500 * 10**9),  # SOL/USDT, 0.1-500 SOL
)
MARKET_WEIGHTS: Final = (5, 3, 2)
VIP_LEVELS: Final = (0, 1, 2, 5)
VIP_WEIGHTS: Final = (80, 12, 6, 2)
USERS: Final = range(1001, 1201)

INVALID_KINDS: Final = (
    "invalid_json",
    "missing_field",
    "invalid_type",
    "unknown_symbol",
    "unknown_vip_level",
    "out_of_range",
)
"""The rejection each invalid sample provokes, in the order they are produced."""


def _trade(rng: random.Random, trade_id: int, ts: int, drift: dict[int, float]) -> dict[str, Any]:
    market = rng.choices(MARKETS, MARKET_WEIGHTS)[0]
    # A small random walk per market keeps prices plausible over a few thousand trades.
    drift[market.symbol_id] = max(-0.05, min(0.05, drift[market.symbol_id] + rng.gauss(0, 5e-4)))
    buyer, seller = rng.sample(USERS, 2)
    if rng.random() < 0.01:
        seller = buyer  # a self-trade: allowed by the contract
    trade: dict[str, Any] = {
        "trade_id": trade_id,
        "symbol_id": market.symbol_id,
        "ts": ts,
        "price": round(market.mid_price * (1 + drift[market.symbol_id])),
        "qty": rng.randint(market.min_qty, market.max_qty),
        "qty_unit": market.qty_unit,
        "base_asset_id": market.base_asset_id,
        "quote_asset_id": USDT,
        "buyer_user_id": buyer,
        "seller_user_id": seller,
        "taker_side": rng.choice(("buy", "sell")),
    }
    for side in ("buyer_vip", "seller_vip"):
        vip = rng.choices(VIP_LEVELS, VIP_WEIGHTS)[0]
        if vip:  # level 0 is the default: leave it out, as most producers do
            trade[side] = vip
    return trade


def _spoil(kind: str, trade: dict[str, Any]) -> bytes:
    """One message value that balance-sink must dead-letter with reason ``kind``."""
    if kind == "invalid_json":
        return json.dumps(trade).encode()[:-7]
    if kind == "missing_field":
        del trade["taker_side"]
    elif kind == "invalid_type":
        trade["qty"] = str(trade["qty"])
    elif kind == "unknown_symbol":
        trade["symbol_id"] = 99
    elif kind == "unknown_vip_level":
        trade["buyer_vip"] = 3
    elif kind == "out_of_range":
        trade["base_asset_id"] = trade["quote_asset_id"]
    else:
        raise ValueError(f"unknown invalid kind {kind!r}")
    return json.dumps(trade, separators=(",", ":")).encode()


def sample_trades(
    count: int, *, seed: int = 7, first_trade_id: int = 1_000_000, invalid_every: int = 500
) -> Iterator[tuple[bytes, bytes]]:
    """Yield ``count`` (key, value) messages; message ``i`` is invalid when
    ``(i + 1) % invalid_every == 0`` (``invalid_every`` 0: none), cycling through
    :data:`INVALID_KINDS`. Keys are the trade ids, which spreads trades over all partitions."""
    if count < 0 or invalid_every < 0:
        raise ValueError("count and invalid_every must not be negative")
    rng = random.Random(seed)
    drift = {market.symbol_id: 0.0 for market in MARKETS}
    ts = START_TS_US
    spoiled = 0
    for i in range(count):
        trade_id = first_trade_id + i
        ts += rng.randint(1_000, 50_000)  # 1-50 ms apart
        trade = _trade(rng, trade_id, ts, drift)
        if invalid_every and (i + 1) % invalid_every == 0:
            value = _spoil(INVALID_KINDS[spoiled % len(INVALID_KINDS)], trade)
            spoiled += 1
        else:
            value = json.dumps(trade, separators=(",", ":")).encode()
        yield str(trade_id).encode(), value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-servers", default="kafka:9092")
    parser.add_argument("--topic", default="trades")
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--first-trade-id", type=int, default=1_000_000)
    parser.add_argument("--invalid-every", type=int, default=500)
    parser.add_argument("--flush-timeout-s", type=float, default=60.0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Imported here: sample_trades() needs only the standard library.
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap_servers,
            "client.id": "balance-sink-sample-producer",
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 20,
        }
    )
    failures: list[str] = []

    def delivered(err: Any, msg: Any) -> None:
        if err is not None:
            failures.append(f"{msg.topic()} key={msg.key()!r}: {err}")

    produced = 0
    for key, value in sample_trades(
        args.count,
        seed=args.seed,
        first_trade_id=args.first_trade_id,
        invalid_every=args.invalid_every,
    ):
        _produce(producer, args.topic, key, value, delivered)
        produced += 1
    left = producer.flush(args.flush_timeout_s)
    if left or failures:
        for failure in failures[:10]:
            print(f"produce_sample: delivery failed: {failure}", file=sys.stderr)
        print(
            f"produce_sample: {len(failures)} failed, {left} undelivered of {produced}",
            file=sys.stderr,
        )
        return 1
    invalid = args.count // args.invalid_every if args.invalid_every else 0
    print(f"produce_sample: {produced} messages ({invalid} invalid) delivered to {args.topic}")
    return 0


def _produce(
    producer: Any, topic: str, key: bytes, value: bytes, delivered: Callable[[Any, Any], None]
) -> None:
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=delivered)
        except BufferError:  # the local queue is full: serve delivery reports, then retry
            producer.poll(0.5)
        else:
            producer.poll(0)
            return


if __name__ == "__main__":
    sys.exit(main())
