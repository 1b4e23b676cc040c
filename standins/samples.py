"""Realistic generated input: mixed symbols and VIP levels, a few percent invalid."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Final

FEE_SCHEDULE: Final = """
[[versions]]
effective_from = 2025-01-01T00:00:00Z
vip_discount_percent = { "0" = 100, "1" = 90, "2" = 80, "3" = 70, "4" = 60, "5" = 50 }
{symbols_v1}
[[versions]]
effective_from = 2025-06-15T00:00:00Z
vip_discount_percent = { "0" = 100, "1" = 85, "2" = 75, "3" = 65, "4" = 55, "5" = 40 }
{symbols_v2}
"""

SYMBOLS: Final = 50
START_US: Final = 1_740_000_000_000_000  # 2025-02-19, so both versions are used
SPAN_US: Final = 200 * 86_400 * 1_000_000


def fee_schedule_text() -> str:
    def block(maker: int, taker: int) -> str:
        return "".join(
            f"[[versions.symbols]]\nsymbol_id = {s}\n"
            f"maker_fee = {maker + s}\ntaker_fee = {taker + s}\n"
            for s in range(1, SYMBOLS + 1)
        )

    return FEE_SCHEDULE.replace("{symbols_v1}", block(1000, 2000)).replace(
        "{symbols_v2}", block(800, 1800)
    )


def trade_lines(count: int, *, invalid_ratio: float = 0.03, seed: int = 7) -> list[bytes]:
    """``count`` JSON lines; about ``invalid_ratio`` of them are rejected for varied reasons."""
    rng = random.Random(seed)
    lines: list[bytes] = []
    for i in range(1, count + 1):
        buyer = rng.randrange(1, 200_000)
        doc: dict[str, object] = {
            "trade_id": i,
            "symbol_id": rng.randrange(1, SYMBOLS + 1),
            "ts": START_US + i * SPAN_US // count,
            "price": rng.randrange(1_000_000, 7_000_000_000_000),
            "qty": rng.randrange(1, 5_000_000_000),
            "qty_unit": 100_000_000,
            "base_asset_id": rng.randrange(1, 40),
            "quote_asset_id": 100,
            "buyer_user_id": buyer,
            "seller_user_id": rng.randrange(1, 200_000),
            "taker_side": "buy" if rng.random() < 0.5 else "sell",
            "buyer_vip": rng.choice((0, 0, 0, 1, 2, 5)),
            "seller_vip": rng.choice((0, 0, 0, 1, 3, 4)),
            "venue": "spot",
        }
        if rng.random() < 0.2:
            doc["account_type"] = rng.choice((1, 2, 3))
        if rng.random() < invalid_ratio:
            kind = rng.randrange(5)
            if kind == 0:
                lines.append(b'{"trade_id": ' + str(i).encode() + b", oops")
                continue
            if kind == 1:
                doc["qty"] = str(doc["qty"])
            elif kind == 2:
                del doc["price"]
            elif kind == 3:
                doc["symbol_id"] = 9999
            else:
                doc["buyer_vip"] = 9
        lines.append(json.dumps(doc, separators=(",", ":")).encode())
    return lines


def write_input(path: Path, count: int) -> Path:
    """Write ``count`` trade lines to ``path`` (reused when already there)."""
    if path.exists() and path.stat().st_size > 0:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as out:
        for chunk_start in range(0, count, 100_000):
            chunk = trade_lines(min(100_000, count - chunk_start), seed=chunk_start)
            out.write(b"\n".join(chunk) + b"\n")
    tmp.rename(path)
    return path
