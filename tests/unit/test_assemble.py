"""The one place that assembles a worker, and ``run``'s driver of the engine."""

from __future__ import annotations

import logging

import pytest

from standins.samples import fee_schedule_text, trade_lines
from worker.commands.assemble import Worker, assemble_worker, group_consumer_config
from worker.core.deriver import Deriver
from worker.core.fee_schedule import parse_fee_schedule
from worker.engine.dead_letters import ListedDeadLetters
from worker.engine.engine import Engine
from worker.engine.sink import CountingSink
from worker.ops.config import KafkaSettings, Settings
from worker.ops.metrics import Metrics
from worker.tdengine.options import TDengineOptions

from .kafka_fakes import FakeConsumer, T, engine_settings, message

SETTINGS = Settings(
    fee_schedule="unused.toml",
    kafka=KafkaSettings(
        bootstrap_servers="127.0.0.1:9",
        topics=(T,),
        dead_letter_topic="dlq",
        client={"enable.auto.commit": True},
    ),
    tdengine=TDengineOptions(),
)


def test_the_group_consumer_reports_statistics_and_errors_and_never_auto_commits() -> None:
    metrics = Metrics()
    config = group_consumer_config(SETTINGS, metrics)
    assert config["stats_cb"] == metrics.observe_librdkafka_stats
    assert callable(config["error_cb"])
    assert config["logger"].name == "librdkafka.client"  # its lines go through our logging
    assert config["enable.auto.commit"] is False  # a pass-through property cannot turn it on
    assert config["partition.assignment.strategy"] == "cooperative-sticky"


def test_assembling_with_replaced_parts_connects_nothing() -> None:
    metrics = Metrics()
    worker = assemble_worker(
        SETTINGS, deriver=Deriver(parse_fee_schedule(fee_schedule_text())),
        sink=CountingSink(), metrics=metrics,
    )  # fmt: skip
    try:
        assert worker.metrics is metrics and worker.topics == (T,)
        assert worker.progress == {"messages": 0, "rows": 0, "dead": 0, "flushes": 0}
        assert worker.engine.health.readiness() == (False, "not yet assigned by the consumer group")
    finally:
        worker.engine.close()


def test_a_worker_subscribes_runs_until_stopped_and_leaves_the_group(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lines = trade_lines(3, seed=2, invalid_ratio=0.0)
    consumer = FakeConsumer([[], [message(0, o, lines[o]) for o in range(3)]])
    engine = Engine(
        consumer=consumer, deriver=Deriver(parse_fee_schedule(fee_schedule_text())),
        sink=CountingSink(), dead_letters=ListedDeadLetters(), metrics=Metrics(),
        settings=engine_settings(), clock=consumer.clock,
    )  # fmt: skip
    worker = Worker(engine, Metrics(), (T,), summary_interval_s=0.15, clock=consumer.clock)
    consumer.between_polls.extend(
        [lambda: consumer.rebalance("assign", 0), lambda: None, lambda: None, worker.stop]
    )
    with caplog.at_level(logging.INFO, logger="worker.commands.assemble"):
        worker.run()
    assert consumer.subscribed == [T] and consumer.closed
    assert consumer.commits == [[(T, 0, 3)]]
    assert worker.progress == {"messages": 3, "rows": 12, "dead": 0, "flushes": 1}
    messages = [r.getMessage() for r in caplog.records]
    assert "progress" in messages[:-2]  # a summary while running (every 0.15 s)
    assert messages[-2:] == ["progress", "stopped cleanly"]
