"""The offset tracker: the +1, the assigned-partition filter, owed offsets, their order."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from worker.engine.offsets import OffsetOrderError, OffsetTracker

from .kafka_fakes import FakeConsumer, T, kafka_exception


def test_a_stored_batch_owes_each_assigned_partition_its_highest_offset_plus_one() -> None:
    tracker = OffsetTracker()
    tracker.assign([(T, 0), (T, 1)])
    tracker.stored({(T, 0): 41, (T, 1): 7, (T, 5): 3})  # partition 5 is not assigned
    consumer = FakeConsumer()
    result = tracker.commit(consumer)
    assert consumer.commits == [[(T, 0, 42), (T, 1, 8)]]
    assert [(tp.partition, tp.offset) for tp in result.accepted] == [(0, 42), (1, 8)]
    assert not tracker.owes()


def test_a_failed_commit_leaves_everything_owed() -> None:
    tracker = OffsetTracker()
    tracker.assign([(T, 0)])
    tracker.stored({(T, 0): 9})
    consumer = FakeConsumer()
    consumer.commit_failures.append(kafka_exception(KafkaError.REBALANCE_IN_PROGRESS))
    with pytest.raises(Exception, match="REBALANCE_IN_PROGRESS"):
        tracker.commit(consumer)
    assert tracker.owes() and tracker.owes({(T, 0)}) and not tracker.owes({(T, 1)})
    tracker.commit(consumer)
    assert consumer.commits == [[(T, 0, 10)]]


def test_offsets_only_increase_within_an_assignment() -> None:
    tracker = OffsetTracker()
    tracker.assign([(T, 0)])
    tracker.stored({(T, 0): 9})
    tracker.commit(FakeConsumer())
    with pytest.raises(OffsetOrderError, match=r"trades\[0\]: offset 10 to commit is not above 10"):
        tracker.stored({(T, 0): 9})
    with pytest.raises(OffsetOrderError, match="not above 10"):
        tracker.owe_next({(T, 0): 4})
    tracker.stored({(T, 0): 12})  # owed 13, not committed yet
    with pytest.raises(OffsetOrderError, match="not above 13"):
        tracker.stored({(T, 0): 11})


def test_a_released_partition_forgets_what_it_owed_and_may_start_lower_when_reassigned() -> None:
    tracker = OffsetTracker()
    tracker.assign([(T, 0), (T, 1)])
    tracker.stored({(T, 0): 9, (T, 1): 9})
    tracker.release([(T, 1)])
    assert tracker.assigned == {(T, 0)}
    consumer = FakeConsumer()
    tracker.commit(consumer)
    assert consumer.commits == [[(T, 0, 10)]]
    tracker.assign([(T, 1)])
    tracker.stored({(T, 1): 3})  # the next owner committed less: read again from there
    tracker.commit(consumer)
    assert consumer.commits[-1] == [(T, 1, 4)]
