"""Engine test helpers: a recording sink, and an engine over fakes on simulated time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from confluent_kafka import Message

from standins.samples import fee_schedule_text, trade_lines
from worker.core.deriver import Deriver
from worker.core.fee_schedule import parse_fee_schedule
from worker.engine.dead_letters import ListedDeadLetters
from worker.engine.engine import Engine
from worker.engine.sink import CountingSink, MessageKey, MessageRows, SinkResult
from worker.engine.writes import Writes
from worker.ops.metrics import Metrics
from worker.tdengine.errors import TransientStoreError

from .kafka_fakes import FakeConsumer, T, engine_settings, message

__all__ = ("LINES", "WRITE_WAIT_S", "RecordingSink", "make_engine", "member", "msgs", "value")

LINES = trade_lines(60, seed=7, invalid_ratio=0.0)
WRITE_WAIT_S = 10.0
"""A fake poll lets a running write end within this (real seconds; a safety cap)."""


class RecordingSink(CountingSink):
    """Counts rows; fails the first ``failures`` writes with ``error``; records each batch."""

    def __init__(self, failures: int = 0, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or TransientStoreError("connection refused")
        self.batches: list[list[MessageKey]] = []
        self.closed = False

    def write(self, batch: Sequence[MessageRows]) -> SinkResult:
        if self.failures:
            self.failures -= 1
            raise self.error
        self.batches.append([rows.key for rows in batch])
        return super().write(batch)

    def close(self) -> None:
        self.closed = True


def make_engine(
    consumer: FakeConsumer,
    *,
    sink: CountingSink | None = None,
    dead_letters: ListedDeadLetters | None = None,
    metrics: Metrics | None = None,
    give_up_after_s: float | None = None,
    writes: Writes | None = None,
    writes_run: bool = True,
    **settings: Any,
) -> Engine:
    """An engine over ``consumer``; with ``writes_run`` each fake poll lets a write on
    the writer thread end (off when a test holds a write and waits for it itself)."""
    engine = Engine(
        consumer=consumer, deriver=Deriver(parse_fee_schedule(fee_schedule_text())),
        sink=sink or RecordingSink(), dead_letters=dead_letters or ListedDeadLetters(),
        metrics=metrics or Metrics(), settings=engine_settings(**settings),
        give_up_after_s=give_up_after_s, clock=consumer.clock, writes=writes,
    )  # fmt: skip
    if writes_run:
        consumer.writes_run = lambda _timeout: engine.wait_for_write(WRITE_WAIT_S)
    return engine


def member(consumer: FakeConsumer, *partitions: int, **kw: Any) -> Engine:
    """An engine subscribed to ``T`` and assigned ``partitions``."""
    engine = make_engine(consumer, **kw)
    engine.subscribe([T])
    consumer.rebalance("assign", *partitions)
    return engine


def msgs(partition: int, offsets: range) -> list[Message]:
    return [message(partition, o, LINES[o]) for o in offsets]


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0
