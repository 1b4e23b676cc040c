"""Realistic generated input: mixed symbols and VIP levels, a few percent invalid.

Users are spread uniformly by default (every trade between two random users of
200,000: the worst case for TDengine, whose cost is per subtable). A skewed
:class:`UserSpread` draws users from a Zipf distribution and puts a market maker on
one side of a configurable share of trades, as real exchange flow does.
"""

from __future__ import annotations

import bisect
import itertools
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

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


@dataclass(frozen=True, slots=True)
class UserSpread:
    """How trades spread over users (user ids ``1..users - 1``; 0 is the platform)."""

    users: int = 200_000
    kind: Literal["uniform", "zipf"] = "uniform"
    zipf_exponent: float = 1.1
    """Weight of the user of rank ``k`` is ``1 / k ** zipf_exponent`` (``zipf`` only)."""
    market_maker_share: float = 0.0
    """Share of trades with a market maker on one side (``zipf`` only)."""
    market_makers: int = 20
    """Users ``1..market_makers`` are the market makers."""

    def __post_init__(self) -> None:
        if self.users < 3:
            raise ValueError(f"users must be at least 3, got {self.users}")
        if not 0.0 <= self.market_maker_share <= 1.0:
            raise ValueError(f"market_maker_share must be in [0, 1], got {self.market_maker_share}")
        if self.kind == "zipf" and not 0 < self.market_makers < self.users - 1:
            raise ValueError(f"market_makers must be in 1..{self.users - 2}")

    @property
    def label(self) -> str:
        """A short name for reports, e.g. ``zipf-2000``."""
        return f"{self.kind}-{self.users}"


UNIFORM: Final = UserSpread()


class _UserPicker:
    """Draws (buyer, seller) pairs for a :class:`UserSpread`."""

    def __init__(self, spread: UserSpread, rng: random.Random) -> None:
        self._spread = spread
        self._rng = rng
        self._cumulative: list[float] = []
        if spread.kind == "zipf":
            # Ranks after the market makers, so the makers' own share stays as configured.
            first = spread.market_makers + 1 if spread.market_maker_share else 1
            self._first = first
            weights = (1.0 / k**spread.zipf_exponent for k in range(1, spread.users - first + 1))
            self._cumulative = list(itertools.accumulate(weights))

    def _zipf_user(self) -> int:
        rng = self._rng
        rank = bisect.bisect_left(self._cumulative, rng.random() * self._cumulative[-1])
        return self._first + rank

    def pair(self) -> tuple[int, int]:
        spread, rng = self._spread, self._rng
        if spread.kind == "uniform":
            return rng.randrange(1, spread.users), rng.randrange(1, spread.users)
        other = self._zipf_user()
        if rng.random() < spread.market_maker_share:
            maker = rng.randrange(1, spread.market_makers + 1)
            return (maker, other) if rng.random() < 0.5 else (other, maker)
        return other, self._zipf_user()


def trade_lines(
    count: int,
    *,
    invalid_ratio: float = 0.03,
    seed: int = 7,
    spread: UserSpread = UNIFORM,
    first_trade_id: int = 1,
) -> list[bytes]:
    """``count`` JSON lines with trade ids from ``first_trade_id``; about ``invalid_ratio``
    of them are rejected for varied reasons."""
    rng = random.Random(seed)
    picker = _UserPicker(spread, rng)
    lines: list[bytes] = []
    for i in range(first_trade_id, first_trade_id + count):
        buyer, seller = picker.pair()
        doc: dict[str, object] = {
            "trade_id": i,
            "symbol_id": rng.randrange(1, SYMBOLS + 1),
            "ts": START_US + (i - first_trade_id + 1) * SPAN_US // count,
            "price": rng.randrange(1_000_000, 7_000_000_000_000),
            "qty": rng.randrange(1, 5_000_000_000),
            "qty_unit": 100_000_000,
            "base_asset_id": rng.randrange(1, 40),
            "quote_asset_id": 100,
            "buyer_user_id": buyer,
            "seller_user_id": seller,
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
