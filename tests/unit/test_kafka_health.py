"""Kafka reachability: the bounded start-up wait and the running broker watch."""

from __future__ import annotations

import json
import logging

import pytest
from confluent_kafka import KafkaError

from worker.ops.kafka_health import BrokerWatch, KafkaUnreachable, log_client_error, wait_for_kafka


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def stats(*states: str) -> str:
    """A librdkafka statistics document with brokers in ``states``."""
    brokers = {f"b{i}:9092/{i}": {"state": s, "nodeid": i} for i, s in enumerate(states)}
    return json.dumps({"name": "rdkafka#consumer-1", "brokers": brokers})


ALL_DOWN = KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down")
TRANSPORT = KafkaError(KafkaError._TRANSPORT, "b0:9092/0: Connection refused")


def watch_messages(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [
        (r.levelname, r.getMessage()) for r in caplog.records if r.name == "worker.ops.kafka_health"
    ]


def test_all_brokers_down_fails_liveness_after_the_limit_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    watch = BrokerWatch(60, bootstrap="b0:9092", clock=clock)
    watch.on_stats(stats("UP"))
    assert watch.liveness() == (True, "ok")
    watch.on_error(ALL_DOWN)
    clock.now += 60
    assert watch.liveness() == (True, "ok")  # not beyond the limit yet
    clock.now += 1
    alive, reason = watch.liveness()
    assert not alive
    assert reason == "no Kafka broker reachable for 61 s"
    for _ in range(5):  # errors, statistics and probes keep coming: one line only
        watch.on_error(ALL_DOWN)
        watch.on_stats(stats("DOWN"))
        clock.now += 5
        assert not watch.liveness()[0]
    (line,) = watch_messages(caplog)
    assert line[0] == "ERROR"
    assert line[1].startswith("no Kafka broker reachable for 61 s")


def test_a_broker_up_again_clears_the_outage_and_the_next_one_is_logged_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    watch = BrokerWatch(10, clock=clock)
    watch.on_error(ALL_DOWN)
    clock.now += 11
    assert not watch.liveness()[0]
    watch.on_stats(stats("DOWN", "UP"))
    assert watch.liveness() == (True, "ok")
    assert watch.down_since is None
    watch.on_error(ALL_DOWN)
    clock.now += 11
    watch.on_stats(stats("DOWN"))  # the outage is noticed without a liveness probe too
    levels = [level for level, _ in watch_messages(caplog)]
    assert levels == ["ERROR", "INFO", "ERROR"]
    assert "reachable again after 11 s" in watch_messages(caplog)[1][1]


def test_a_short_outage_is_neither_fatal_nor_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    watch = BrokerWatch(30, clock=clock)
    watch.on_error(ALL_DOWN)
    clock.now += 20
    watch.on_stats(stats("UP"))
    clock.now += 100
    assert watch.liveness() == (True, "ok")
    assert watch_messages(caplog) == []


def test_transport_errors_count_only_while_no_broker_is_up() -> None:
    clock = Clock()
    watch = BrokerWatch(10, clock=clock)
    watch.on_stats(stats("UP", "UP"))
    watch.on_error(TRANSPORT)  # one broker of several dropped a connection: not an outage
    clock.now += 100
    assert watch.liveness() == (True, "ok")
    watch.on_stats(stats("DOWN", "CONNECT"))  # statistics: nobody up
    clock.now += 11
    assert not watch.liveness()[0]

    fresh = BrokerWatch(10, clock=clock)  # before any statistics: unknown, so it counts
    fresh.on_error(TRANSPORT)
    clock.now += 11
    assert not fresh.liveness()[0]


def test_unusable_statistics_change_nothing() -> None:
    watch = BrokerWatch(1, clock=Clock())
    for document in ("not json", "[]", json.dumps({"brokers": {}})):
        watch.on_stats(document)
    assert watch.down_since is None


def test_error_callback_feeds_the_watch_and_logs_only_fatal_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    watch = BrokerWatch(10, clock=clock)
    callback = log_client_error(watch)
    callback(ALL_DOWN)
    callback(TRANSPORT)
    assert watch.down_since == clock.now
    assert watch_messages(caplog) == []  # librdkafka logged these itself
    callback(KafkaError(KafkaError._FENCED, "fenced", fatal=True))
    assert watch_messages(caplog) == [("ERROR", "fatal Kafka client error: fenced")]


def test_wait_for_an_unreachable_cluster_ends_naming_the_address_and_the_error() -> None:
    with pytest.raises(KafkaUnreachable) as caught:
        wait_for_kafka(
            {"bootstrap.servers": "127.0.0.1:1", "group.id": "g"},
            timeout_s=1.5,
            sleep=lambda s: None,
        )
    text = str(caught.value)
    assert text.startswith("Kafka at 127.0.0.1:1 did not answer within 1.5 s; last error: ")
    assert "Connection refused" in text
