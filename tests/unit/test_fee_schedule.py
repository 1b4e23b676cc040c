"""Fee schedule loading: validation messages name the field; version selection."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.core.fee_schedule import load_fee_schedule, parse_fee_schedule
from worker.errors import FeeScheduleError

from .samples import SCHEDULE_TOML, V1_US, V2_US, schedule

VERSION = """
[[versions]]
effective_from = {when}
vip_discount_percent = {vip}
[[versions.symbols]]
symbol_id = {symbol}
maker_fee = {maker}
taker_fee = {taker}
"""


def one_version(**kw: object) -> str:
    values: dict[str, object] = {
        "when": "2025-06-15T00:00:00Z",
        "vip": '{ "0" = 100 }',
        "symbol": 1,
        "maker": 1000,
        "taker": 2000,
    }
    values.update(kw)
    return VERSION.format(**values)


def error_of(text: str) -> FeeScheduleError:
    with pytest.raises(FeeScheduleError) as info:
        parse_fee_schedule(text)
    return info.value


def test_sample_loads_and_orders_versions() -> None:
    loaded = schedule()
    assert [v.effective_from_us for v in loaded.versions] == [V1_US, V2_US]
    assert loaded.versions[0].vip_discount_percent == {0: 100, 1: 90, 5: 50}
    assert loaded.versions[1].symbols[1].maker_fee == 500


def test_versions_are_sorted_whatever_the_file_order() -> None:
    text = one_version(when="2026-01-01T00:00:00Z") + one_version(when="2025-01-01T00:00:00Z")
    starts = [v.effective_from.year for v in parse_fee_schedule(text).versions]
    assert starts == [2025, 2026]


def test_version_at_exactly_effective_from() -> None:
    loaded = schedule()
    assert loaded.version_at(V1_US - 1) is None
    assert loaded.version_at(V1_US) is loaded.versions[0]
    assert loaded.version_at(V2_US - 1) is loaded.versions[0]
    assert loaded.version_at(V2_US) is loaded.versions[1]
    assert loaded.version_at(10**30) is loaded.versions[1]


def test_datetime_without_offset_is_utc_and_offsets_convert() -> None:
    local = parse_fee_schedule(one_version(when="2025-06-15T00:00:00"))
    offset = parse_fee_schedule(one_version(when="2025-06-15T08:00:00+08:00"))
    assert local.versions[0].effective_from_us == V2_US
    assert offset.versions[0].effective_from_us == V2_US


def test_fractional_seconds_are_kept_in_microseconds() -> None:
    loaded = parse_fee_schedule(one_version(when="2025-06-15T00:00:00.000001Z"))
    assert loaded.versions[0].effective_from_us == V2_US + 1


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("", "versions", "at least one"),
        ("versions = []", "versions", "at least one"),
        ("versions = 3", "versions", "array of tables"),
        (one_version(maker=1_000_001), "versions[0].symbols[0].maker_fee", "1000001"),
        (one_version(taker=-1), "versions[0].symbols[0].taker_fee", "-1"),
        (one_version(maker=1.5), "versions[0].symbols[0].maker_fee", "integer"),
        (one_version(maker="true"), "versions[0].symbols[0].maker_fee", "integer"),
        (one_version(vip='{ "0" = 101 }'), 'versions[0].vip_discount_percent."0"', "101"),
        (one_version(vip='{ "0" = -1 }'), 'versions[0].vip_discount_percent."0"', "-1"),
        (one_version(vip='{ "0" = 50.0 }'), 'versions[0].vip_discount_percent."0"', "integer"),
        (one_version(vip='{ "256" = 50 }'), 'versions[0].vip_discount_percent."256"', "256"),
        (one_version(vip='{ "gold" = 50 }'), 'versions[0].vip_discount_percent."gold"', "VIP"),
        (one_version(vip='{ "01" = 50 }'), 'versions[0].vip_discount_percent."01"', "VIP"),
        (one_version(vip="7"), "versions[0].vip_discount_percent", "table"),
        (one_version(when="2025-06-15"), "versions[0].effective_from", "date without a time"),
        (one_version(when='"2025-06-15T00:00:00Z"'), "versions[0].effective_from", "datetime"),
        (one_version(symbol='"BTC"'), "versions[0].symbols[0].symbol_id", "integer"),
        (one_version() + one_version(), "versions[1].effective_from", "versions[0]"),
        (one_version(when="2025-06-15T08:00:00+08:00") + one_version(),
         "versions[1].effective_from", "versions[0]"),
        ("[[versions]]\nvip_discount_percent = {}\nsymbols = []", "versions[0].effective_from",
         "missing"),
        ("[[versions]]\neffective_from = 2025-01-01T00:00:00Z\nsymbols = []",
         "versions[0].vip_discount_percent", "missing"),
        ("[[versions]]\neffective_from = 2025-01-01T00:00:00Z\nvip_discount_percent = {}",
         "versions[0].symbols", "missing"),
        ("versions = [", "<fee schedule>", "TOML"),
    ],
)  # fmt: skip
def test_validation_names_the_exact_field(text: str, field: str, words: str) -> None:
    error = error_of(text)
    assert error.field == field
    assert words in str(error)
    assert str(error).startswith(field)


def test_duplicate_symbol_within_a_version() -> None:
    text = one_version() + "[[versions.symbols]]\nsymbol_id = 1\nmaker_fee = 1\ntaker_fee = 1\n"
    error = error_of(text)
    assert error.field == "versions[0].symbols[1].symbol_id"


def test_same_symbol_in_two_versions_is_fine() -> None:
    text = one_version() + one_version(when="2026-01-01T00:00:00Z")
    assert len(parse_fee_schedule(text).versions) == 2


def test_boundary_rates_and_percents_are_accepted() -> None:
    loaded = parse_fee_schedule(one_version(maker=0, taker=1_000_000, vip='{ "255" = 0 }'))
    version = loaded.versions[0]
    assert version.symbols[1].taker_fee == 1_000_000
    assert version.vip_discount_percent == {255: 0}


def test_load_from_file_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "fees.toml"
    path.write_text(SCHEDULE_TOML)
    assert len(load_fee_schedule(path).versions) == 2
    with pytest.raises(FeeScheduleError, match="cannot read"):
        load_fee_schedule(tmp_path / "absent.toml")


def test_example_schedule_in_repo_loads() -> None:
    root = Path(__file__).resolve().parents[2]
    assert len(load_fee_schedule(root / "examples" / "fee_schedule.toml").versions) == 2
