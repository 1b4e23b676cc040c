"""schemas/trade.schema.json and the msgspec Trade Struct say the same thing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest

from worker.core.messages import Trade, decode_trade
from worker.core.rejections import Rejection

from .samples import trade

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "trade.schema.json"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(loaded)
    return loaded


def test_schema_matches_struct_generated_schema(schema: dict[str, Any]) -> None:
    generated = msgspec.json.schema(Trade)["$defs"]["Trade"]
    assert schema["required"] == generated["required"]
    assert list(schema["properties"]) == list(generated["properties"])
    for name, spec in generated["properties"].items():
        mine = {k: v for k, v in schema["properties"][name].items() if k != "description"}
        assert mine == spec, name


SAMPLES: list[dict[str, Any]] = [
    trade(),
    trade(buyer_vip=255, account_type=127, extra="ignored"),
    trade(trade_id=0),
    trade(trade_id=2**61),
    trade(qty=-5),
    trade(taker_side="BUY"),
    trade(buyer_vip=256),
    trade(account_type=0),
    trade(price="100"),
    trade(buyer_vip=None),
    trade(qty=True),
    trade(ts=...),
    trade(base_asset_id=2**31),
]


@pytest.mark.parametrize("sample", SAMPLES)
def test_schema_and_decoder_agree_on_samples(
    schema: dict[str, Any], sample: dict[str, Any]
) -> None:
    by_schema = jsonschema.Draft202012Validator(schema).is_valid(sample)
    by_decoder = not isinstance(decode_trade(json.dumps(sample).encode()), Rejection)
    assert by_schema == by_decoder
