"""The consumer's batch: flush triggers, commit marks, dropping revoked partitions."""

from __future__ import annotations

import time

from worker.core.deriver import Deriver
from worker.engine.batch import ROW_SQL_BYTES, Batch
from worker.engine.dead_letters import DeadLetter, dead_letter_headers
from worker.engine.sink import MessageKey, MessageRows

from .samples import line, schedule


def rows(topic: str, partition: int, offset: int) -> MessageRows:
    events = Deriver(schedule()).derive(line(trade_id=offset + 1))
    assert isinstance(events, tuple)
    return MessageRows(MessageKey(topic, partition, offset), events)


def reject(topic: str, partition: int, offset: int) -> DeadLetter:
    key = MessageKey(topic, partition, offset)
    return DeadLetter(key, b"k", b"{bad", 1700000000000, [("trace", b"1")], "invalid_json", "x")


def test_high_offsets_cover_rows_and_rejects_of_each_partition() -> None:
    batch = Batch()
    batch.add_consumed([rows("t", 0, 5), rows("t", 1, 9)], [reject("t", 0, 6)], 8,
                       {("t", 0): 6, ("t", 1): 9})  # fmt: skip
    assert batch.high_offsets == {("t", 0): 6, ("t", 1): 9}
    assert len(batch) == 3 and batch.row_count == 8
    batch.add_consumed([], [reject("t", 1, 10)], 0, {("t", 1): 10})
    assert batch.high_offsets[("t", 1)] == 10


def test_flush_is_due_at_rows_bytes_or_age() -> None:
    batch = Batch()
    assert not batch.is_due(max_rows=1, max_bytes=1, linger_s=0)  # empty: never due
    batch.add_consumed([rows("t", 0, 1)], [], 4, {("t", 0): 1})
    assert batch.is_due(max_rows=4, max_bytes=10**9, linger_s=60)
    assert not batch.is_due(max_rows=5, max_bytes=10**9, linger_s=60)
    assert batch.is_due(max_rows=5, max_bytes=4 * ROW_SQL_BYTES, linger_s=60)
    batch.created = time.monotonic() - 2
    assert batch.is_due(max_rows=5, max_bytes=10**9, linger_s=1)


def test_dropping_revoked_partitions_keeps_the_others() -> None:
    batch = Batch()
    batch.add_consumed([rows("t", 0, 1), rows("t", 1, 2)], [reject("t", 1, 3)], 8,
                       {("t", 0): 1, ("t", 1): 3})  # fmt: skip
    assert batch.drop_partitions({("t", 1)}) == 2
    assert batch.high_offsets == {("t", 0): 1}
    assert batch.row_count == 4
    assert [r.key.partition for r in batch.rows] == [0]
    assert batch.drop_partitions({("t", 7)}) == 0


def test_dead_letter_headers_keep_the_original_and_add_context() -> None:
    headers = dead_letter_headers(reject("trades", 2, 41))
    assert headers[0] == ("trace", b"1")
    named = dict(headers[1:])
    assert named["reason"] == b"invalid_json"
    assert named["source_topic"] == b"trades"
    assert (named["source_partition"], named["source_offset"]) == (b"2", b"41")
    assert named["worker_version"]
