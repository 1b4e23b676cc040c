"""deploy/compose/produce_sample.py: realistic trades the worker accepts, and a few it must not."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, Final

import jsonschema
import pytest

from tests.deploy.files import DEPLOY, REPO
from worker.core.deriver import Deriver
from worker.core.fee_schedule import load_fee_schedule
from worker.core.rejections import REASONS, Rejection

SCRIPT: Final = DEPLOY / "compose" / "produce_sample.py"


@pytest.fixture(scope="module")
def producer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("produce_sample", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def deriver() -> Deriver:
    return Deriver(load_fee_schedule(DEPLOY / "compose" / "fee_schedule.toml"))


def test_default_run_is_mostly_valid_with_one_of_each_invalid_kind(
    producer: ModuleType, deriver: Deriver
) -> None:
    messages = list(producer.sample_trades(3000))
    assert len(messages) == 3000
    assert len({key for key, _ in messages}) == 3000, "keys (trade ids) are unique"
    outcomes: Counter[str] = Counter()
    for _, value in messages:
        result = deriver.derive(value)
        outcomes[result.reason if isinstance(result, Rejection) else "ok"] += 1
    expected_invalid = dict.fromkeys(producer.INVALID_KINDS, 1)
    assert set(producer.INVALID_KINDS) <= set(REASONS)
    assert outcomes == Counter({"ok": 3000 - len(expected_invalid), **expected_invalid})


def test_invalid_messages_sit_where_documented(producer: ModuleType, deriver: Deriver) -> None:
    for index, (_, value) in enumerate(producer.sample_trades(1200, invalid_every=400)):
        rejected = isinstance(deriver.derive(value), Rejection)
        assert rejected == ((index + 1) % 400 == 0), index


def test_valid_trades_follow_the_published_schema(producer: ModuleType) -> None:
    schema = json.loads((REPO / "schemas" / "trade.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    for _, value in producer.sample_trades(500, invalid_every=0):
        trade = json.loads(value)
        validator.validate(trade)
        assert trade["base_asset_id"] != trade["quote_asset_id"]


def test_trades_are_realistic(producer: ModuleType) -> None:
    trades = [json.loads(value) for _, value in producer.sample_trades(2000, invalid_every=0)]
    assert {trade["symbol_id"] for trade in trades} == {1, 2, 3}
    assert {trade["taker_side"] for trade in trades} == {"buy", "sell"}
    timestamps = [trade["ts"] for trade in trades]
    assert timestamps == sorted(timestamps) and len(set(timestamps)) == len(timestamps)
    btc = [trade["price"] / 10**8 for trade in trades if trade["symbol_id"] == 1]
    assert min(btc) > 60_000 and max(btc) < 70_000, "BTC/USDT around 65k USDT"
    assert any("buyer_vip" in trade or "seller_vip" in trade for trade in trades)


def test_output_depends_only_on_the_seed(producer: ModuleType) -> None:
    assert list(producer.sample_trades(50)) == list(producer.sample_trades(50))
    assert list(producer.sample_trades(50, seed=1)) != list(producer.sample_trades(50, seed=2))
    ids = [int(key) for key, _ in producer.sample_trades(5, first_trade_id=42)]
    assert ids == [42, 43, 44, 45, 46]


class _Message:
    def __init__(self, topic: str, key: bytes) -> None:
        self._topic, self._key = topic, key

    def topic(self) -> str:
        return self._topic

    def key(self) -> bytes:
        return self._key


class _FakeProducer:
    """Stands in for confluent_kafka.Producer: a local queue of 100 messages; like a broker
    that needs time, deliveries are reported only by a waiting poll() or by flush()."""

    instances: list[_FakeProducer] = []  # noqa: RUF012 - test double bookkeeping
    fail_keys: frozenset[bytes] = frozenset()

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.queued: list[tuple[str, bytes, bytes, Callable[[Any, Any], None]]] = []
        self.delivered: list[tuple[str, bytes, bytes]] = []
        self.buffer_errors = 0
        _FakeProducer.instances.append(self)

    def produce(
        self, topic: str, *, value: bytes, key: bytes, on_delivery: Callable[[Any, Any], None]
    ) -> None:
        if len(self.queued) >= 100:
            self.buffer_errors += 1
            raise BufferError("Local: Queue full")
        self.queued.append((topic, key, value, on_delivery))

    def poll(self, timeout: float) -> int:
        return self._serve() if timeout > 0 else 0

    def _serve(self) -> int:
        served = 0
        while self.queued:
            topic, key, value, callback = self.queued.pop(0)
            error = "Broker: boom" if key in self.fail_keys else None
            if error is None:
                self.delivered.append((topic, key, value))
            callback(error, _Message(topic, key))
            served += 1
        return served

    def flush(self, timeout: float) -> int:
        self._serve()
        return len(self.queued)


@pytest.fixture
def fake_kafka(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_FakeProducer]]:
    module = ModuleType("confluent_kafka")
    module.Producer = _FakeProducer  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "confluent_kafka", module)
    _FakeProducer.instances = []
    _FakeProducer.fail_keys = frozenset()
    yield _FakeProducer


def test_main_delivers_every_message_through_a_full_queue(
    producer: ModuleType, fake_kafka: type[_FakeProducer], capsys: pytest.CaptureFixture[str]
) -> None:
    code = producer.main(["--bootstrap-servers", "k:9092", "--topic", "t", "--count", "1000"])
    assert code == 0
    (instance,) = fake_kafka.instances
    assert instance.config["bootstrap.servers"] == "k:9092"
    assert instance.config["enable.idempotence"] is True
    assert instance.buffer_errors > 0, "the test must exercise the full-queue path"
    assert [key for _, key, _ in instance.delivered] == [
        key for key, _ in producer.sample_trades(1000)
    ]
    assert "1000 messages (2 invalid) delivered to t" in capsys.readouterr().out


def test_main_fails_when_a_delivery_fails(
    producer: ModuleType, fake_kafka: type[_FakeProducer], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_kafka.fail_keys = frozenset({b"1000003"})
    assert producer.main(["--count", "10"]) == 1
    err = capsys.readouterr().err
    assert "delivery failed: trades key=b'1000003': Broker: boom" in err
    assert "1 failed, 0 undelivered of 10" in err
