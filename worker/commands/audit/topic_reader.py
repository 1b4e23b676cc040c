"""``--against-topic``: the valid trades of a topic range, read through the core."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from worker.commands.audit.errors import AuditError
from worker.commands.audit.ledger_reader import Selection
from worker.commands.audit.report import TopicCheck
from worker.core.events import EVENTS_PER_TRADE, PLATFORM_USER_ID

if TYPE_CHECKING:
    from worker.commands.audit.command import AuditRequest

__all__ = ("TopicTrades", "read_topic")


class TopicTrades:
    """Valid trades read from the topic: all ids, and those the audit must find."""

    def __init__(self, selection: Selection) -> None:
        self._selection = selection
        self.known: set[int] = set()
        self.expected: dict[int, tuple[str, int, int]] = {}
        """trade_id -> (topic, partition, offset) of trades whose rows must be there."""

    def add(self, trade_id: int, ts: int, account_type: int, users: set[int], where: Any) -> None:
        self.known.add(trade_id)
        s = self._selection
        if not s.from_us <= ts < s.to_us:
            return
        if s.account_type is not None and account_type != s.account_type:
            return
        if s.user_id is not None and s.user_id not in users:
            return
        self.expected[trade_id] = (where.topic, where.partition, where.offset)


def read_topic(settings: Any, request: AuditRequest, trades: TopicTrades) -> TopicCheck:
    """Read the topic range through the core (as ``replay --dry-run`` does) into ``trades``."""
    from confluent_kafka import Consumer

    from worker.commands.replay import ListedDeadLetters, Replayer, ReplayRequest, resolve_ranges
    from worker.core.deriver import Deriver
    from worker.core.fee_schedule import load_fee_schedule
    from worker.engine.sink import MessageRows, SinkResult
    from worker.ops.kafka_logs import kafka_client_config

    class _Collect:
        def write(self, batch: Sequence[MessageRows]) -> SinkResult:
            for rows in batch:
                e = rows.events[0]
                users = {ev.user_id for ev in rows.events} | {PLATFORM_USER_ID}
                trades.add(e.trade_id, e.ts, e.account_type, users, rows.key)
            return SinkResult(len(batch) * EVENTS_PER_TRADE, [])

        def close(self) -> None:
            pass

    topic_request = ReplayRequest(
        config=request.config, from_offset=request.topic_from_offset,
        from_timestamp_ms=request.topic_from_timestamp_ms,
        from_beginning=request.topic_from_offset is None
        and request.topic_from_timestamp_ms is None,
        to_offset=request.topic_to_offset, to_timestamp_ms=request.topic_to_timestamp_ms,
    )  # fmt: skip
    config = dict(settings.consumer_config())
    config.update({"group.id": f"balance-sink-audit-{uuid.uuid4().hex[:12]}",
                   "enable.partition.eof": True, "auto.offset.reset": "error"})  # fmt: skip
    config.pop("statistics.interval.ms", None)
    consumer = Consumer(kafka_client_config(config))
    try:
        ranges = resolve_ranges(consumer, settings.kafka.topics, topic_request)
        loop = settings.loop
        replayer = Replayer(
            consumer=consumer, ranges=ranges,
            deriver=Deriver(load_fee_schedule(request.fee_schedule or settings.fee_schedule)),
            sink=_Collect(), dead_letters=ListedDeadLetters(), commit=False,
            max_rows=loop.max_rows, max_bytes=loop.max_bytes, linger_s=loop.linger_ms / 1000,
            poll_timeout_s=loop.poll_timeout_ms / 1000, dead_letter_timeout_s=1.0,
            max_retry_s=0.0,
        )  # fmt: skip
        replayer.run()
        if not replayer.complete:
            raise AuditError("the topic range was not read to its end")
    finally:
        consumer.close()
    return TopicCheck(
        messages=replayer.totals.messages,
        valid_trades=len(trades.known),
        trades_in_range=len(trades.expected),
        partitions=[f"{r.topic}[{r.partition}] {r.start}..{r.end}" for r in ranges],
    )
