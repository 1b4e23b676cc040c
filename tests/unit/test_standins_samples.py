"""The sample generator: uniform and skewed user spreads, trade ids, validity."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from standins.samples import UserSpread, fee_schedule_text, trade_lines
from worker.core.deriver import Deriver
from worker.core.fee_schedule import parse_fee_schedule
from worker.core.rejections import Rejection


def _pairs(lines: list[bytes]) -> list[tuple[int, int]]:
    docs = [json.loads(line) for line in lines]
    return [(d["buyer_user_id"], d["seller_user_id"]) for d in docs]


def test_same_seed_same_lines_and_ids_start_where_asked() -> None:
    a = trade_lines(50, seed=3, first_trade_id=1_000)
    assert a == trade_lines(50, seed=3, first_trade_id=1_000)
    lines = trade_lines(50, invalid_ratio=0.0, first_trade_id=1_000)
    ids = [json.loads(line)["trade_id"] for line in lines]
    assert ids == list(range(1_000, 1_050))


def test_uniform_users_cover_the_whole_range() -> None:
    users = [u for pair in _pairs(trade_lines(4000, invalid_ratio=0.0)) for u in pair]
    assert min(users) >= 1 and max(users) < 200_000
    assert len(set(users)) > 7000  # almost every draw is a different user


def test_zipf_concentrates_trades_on_few_users() -> None:
    spread = UserSpread(users=2000, kind="zipf")
    counts = Counter(u for p in _pairs(trade_lines(5000, invalid_ratio=0.0, spread=spread))
                     for u in p)  # fmt: skip
    assert all(1 <= u < 2000 for u in counts)
    top10 = sum(n for _, n in counts.most_common(10))
    assert top10 > 0.3 * 10_000  # uniform would give about 0.5 %
    assert counts.most_common(1)[0][0] == 1


def test_market_makers_take_their_share_of_trades() -> None:
    spread = UserSpread(users=200_000, kind="zipf", market_maker_share=0.6, market_makers=5)
    pairs = _pairs(trade_lines(5000, invalid_ratio=0.0, spread=spread))
    with_maker = sum(1 for b, s in pairs if b <= 5 or s <= 5)
    assert 0.55 * len(pairs) < with_maker < 0.65 * len(pairs)
    assert any(b <= 5 for b, _ in pairs) and any(s <= 5 for _, s in pairs)


def test_every_valid_sample_derives_in_every_spread() -> None:
    deriver = Deriver(parse_fee_schedule(fee_schedule_text()))
    for spread in (UserSpread(), UserSpread(users=2000, kind="zipf", market_maker_share=0.5)):
        results = [deriver.derive(x) for x in trade_lines(500, invalid_ratio=0.0, spread=spread)]
        assert not [r for r in results if isinstance(r, Rejection)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"users": 2}, "users must be at least 3"),
        ({"market_maker_share": 1.5}, "market_maker_share must be in"),
        ({"kind": "zipf", "market_makers": 0}, "market_makers must be in"),
    ],
)
def test_bad_spreads_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        UserSpread(**kwargs)  # type: ignore[arg-type]
