"""``--against-topic``: the valid trades of a topic range, read through the engine.

The engine reads the range with ``assign()`` (as ``replay --dry-run`` does, committing
nothing) and hands every batch's rows to :class:`TopicTrades`, its sink.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from worker.commands.audit.errors import AuditError
from worker.commands.audit.ledger_reader import Selection
from worker.commands.audit.report import TopicCheck
from worker.core.events import PLATFORM_USER_ID
from worker.engine.sink import AllStored, MessageKey, MessageRows, SinkResult

if TYPE_CHECKING:
    from worker.commands.audit.command import AuditRequest
    from worker.ops.config import Settings

__all__ = ("TopicTrades", "read_topic")


class TopicTrades:
    """Valid trades read from the topic: all ids, and those the audit must find.

    A sink of the engine: each write records its trades and stores nothing.
    """

    def __init__(self, selection: Selection) -> None:
        self._selection = selection
        self.known: set[int] = set()
        self.expected: dict[int, tuple[str, int, int]] = {}
        """trade_id -> (topic, partition, offset) of trades whose rows must be there."""

    def add(
        self, trade_id: int, ts: int, account_type: int, users: set[int], where: MessageKey
    ) -> None:
        self.known.add(trade_id)
        s = self._selection
        if not s.from_us <= ts < s.to_us:
            return
        if s.account_type is not None and account_type != s.account_type:
            return
        if s.user_id is not None and s.user_id not in users:
            return
        self.expected[trade_id] = (where.topic, where.partition, where.offset)

    def write(self, batch: Sequence[MessageRows]) -> SinkResult:
        rows = 0
        for message in batch:
            events = message.events
            first = events[0]
            users = {e.user_id for e in events} | {PLATFORM_USER_ID}
            self.add(first.trade_id, first.ts, first.account_type, users, message.key)
            rows += len(events)
        return AllStored(rows)

    def close(self) -> None:
        pass


def read_topic(settings: Settings, request: AuditRequest, trades: TopicTrades) -> TopicCheck:
    """Read the topic range through the engine into ``trades``."""
    from confluent_kafka import Consumer

    from worker.commands.replay import ReplayRequest, resolve_ranges
    from worker.core.deriver import Deriver
    from worker.core.fee_schedule import load_fee_schedule
    from worker.engine.dead_letters import ListedDeadLetters
    from worker.engine.engine import Engine
    from worker.engine.kafka import range_consumer_config
    from worker.engine.ranges import RangeBounds
    from worker.ops.kafka_logs import kafka_client_config
    from worker.ops.metrics import Metrics

    topic_request = ReplayRequest(
        config=request.config, from_offset=request.topic_from_offset,
        from_timestamp_ms=request.topic_from_timestamp_ms,
        from_beginning=request.topic_from_offset is None
        and request.topic_from_timestamp_ms is None,
        to_offset=request.topic_to_offset, to_timestamp_ms=request.topic_to_timestamp_ms,
    )  # fmt: skip
    group = f"balance-sink-audit-{uuid.uuid4().hex[:12]}"
    consumer = Consumer(
        kafka_client_config(range_consumer_config(settings.consumer_config(), group))
    )
    engine = Engine(
        consumer=consumer,
        deriver=Deriver(load_fee_schedule(request.fee_schedule or settings.fee_schedule)),
        sink=trades, dead_letters=ListedDeadLetters(), metrics=Metrics(),
        settings=settings.loop, give_up_after_s=0.0,
    )  # fmt: skip
    try:
        bounds = RangeBounds(resolve_ranges(consumer, settings.kafka.topics, topic_request))
        engine.assign_ranges(bounds, commit=False)
        engine.run()
        if bounds.reading or engine.buffered_messages:
            raise AuditError("the topic range was not read to its end")
    finally:
        engine.close()
    return TopicCheck(
        messages=engine.totals.messages,
        valid_trades=len(trades.known),
        trades_in_range=len(trades.expected),
        partitions=[f"{r.topic}[{r.partition}] {r.start}..{r.end}" for r in bounds.ranges.values()],
    )
