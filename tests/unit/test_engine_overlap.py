"""Overlapping writes: a batch is written on the writer thread while the next is read.

The sinks here hold their write until the test lets it go (a ``threading.Event``), so
what the engine does meanwhile is seen step by step; nothing is timed. Polls are fake
and take no real time, so a test waits for a write itself (``wait_for_write``) before
the step that should take it off.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future

import pytest

from worker.engine.batch import Batch
from worker.engine.dead_letters import DeadLetter
from worker.engine.engine import WAIT_BEFORE_PAUSE_S, Engine, EngineStopped
from worker.engine.sink import AllStored, MessageKey, MessageRows, SinkResult
from worker.engine.writes import InlineWrites, StoreJob, ThreadWrites, Written
from worker.ops.metrics import Metrics
from worker.tdengine.errors import FatalStoreError, TransientStoreError

from .engine_support import WRITE_WAIT_S, RecordingSink, make_engine, member, msgs, value
from .kafka_fakes import FakeClock, FakeConsumer, T

TRADE_ROWS = 4


class HeldSink(RecordingSink):
    """Holds each write until the test lets it go (:meth:`let_go`, or :meth:`open` for
    every write from then on); fails the first ``failures``.

    With ``clock``, simulated time passes while a write is held (0.5 s every 10 ms), as
    it would during a slow write.
    """

    def __init__(
        self,
        failures: int = 0,
        error: Exception | None = None,
        clock: FakeClock | None = None,
    ) -> None:
        super().__init__(failures, error)
        self.started = threading.Event()
        self.attempts: list[list[MessageKey]] = []
        """Every write's keys, failed ones included."""
        self.writing = False
        self._passes = threading.Semaphore(0)
        self._open = threading.Event()
        self._clock = clock

    def let_go(self) -> None:
        """Let one held write (or the next) go on."""
        self._passes.release()

    def open(self) -> None:
        """Hold no write any more."""
        self._open.set()
        self._passes.release()

    def write(self, batch: Sequence[MessageRows]) -> SinkResult:
        self.attempts.append([rows.key for rows in batch])
        self.writing = True
        self.started.set()
        while not self._open.is_set() and not self._passes.acquire(timeout=0.01):
            if self._clock is not None:
                self._clock.advance(0.5)
        try:
            return super().write(batch)
        finally:
            self.writing = False


def keys(partition: int, offsets: range) -> list[MessageKey]:
    return [MessageKey(T, partition, o) for o in offsets]


def started(sink: HeldSink) -> None:
    assert sink.started.wait(WRITE_WAIT_S), "the write did not start"
    sink.started.clear()


def let_one_go(sink: HeldSink, engine: Engine) -> None:
    """Let the held write go on, and wait until it ended (the next one is held)."""
    sink.let_go()
    assert engine.wait_for_write(WRITE_WAIT_S), "the write did not end"


# -- overlap ------------------------------------------------------------------------------


def test_consuming_and_deriving_go_on_while_a_batch_is_written() -> None:
    consumer = FakeConsumer([msgs(0, range(2)), msgs(0, range(2, 4))])
    sink = HeldSink()
    metrics = Metrics()
    engine = member(consumer, 0, sink=sink, metrics=metrics, max_rows=2 * TRADE_ROWS,
                    max_in_flight=1, writes_run=False)  # fmt: skip
    engine.step()  # two trades: due, handed to the writer, which holds them
    started(sink)
    engine.step()  # read and derived while the first batch is being written
    assert sink.writing and sink.batches == []
    assert engine.totals.messages == 4 and engine.in_flight == 1
    assert value(metrics, "balance_sink_buffered_rows") == 4 * TRADE_ROWS  # 2 written, 2 read
    assert value(metrics, "balance_sink_writes_in_flight") == 1
    assert consumer.commits == []  # nothing committed before its write ended
    let_one_go(sink, engine)
    engine.step()  # the first batch landed: committed; the second goes to the writer
    assert consumer.commits == [[(T, 0, 2)]]
    let_one_go(sink, engine)
    engine.step()
    assert sink.batches == [keys(0, range(2)), keys(0, range(2, 4))]
    assert consumer.commits == [[(T, 0, 2)], [(T, 0, 4)]]
    assert engine.in_flight == 0 and engine.buffered_messages == 0
    assert value(metrics, "balance_sink_writes_in_flight") == 0


class ManualWrites:
    """Writes the test ends itself, in any order (another kind behind ``Writes``)."""

    def __init__(self) -> None:
        self.pending: list[tuple[Batch, Future[Written]]] = []

    def submit(self, batch: Batch) -> Future[Written]:
        future: Future[Written] = Future()
        self.pending.append((batch, future))
        return future

    def end(self, index: int) -> None:
        batch, future = self.pending[index]
        future.set_result(Written(0.01, None, batch.row_count, tuple(batch.dead_letters)))

    def close(self) -> None:
        pass


def test_a_later_batch_is_never_committed_before_an_earlier_one() -> None:
    consumer = FakeConsumer([msgs(0, range(1)) + msgs(1, range(1, 2)), msgs(0, range(2, 3))])
    writes = ManualWrites()
    engine = make_engine(consumer, max_rows=TRADE_ROWS, max_in_flight=2, writes=writes,
                         writes_run=False)  # fmt: skip
    engine.subscribe([T])
    consumer.rebalance("assign", 0, 1)
    engine.step()
    engine.step()
    assert len(writes.pending) == 2  # two batches in flight
    writes.end(1)  # the later one ends first
    engine.step()
    assert consumer.commits == []  # its offsets wait for the earlier batch
    writes.end(0)
    engine.step()
    assert consumer.commits == [[(T, 0, 3), (T, 1, 2)]]  # both, in one commit


# -- backpressure ---------------------------------------------------------------------------


def test_at_the_in_flight_limit_nothing_is_read_then_partitions_pause_until_a_write_ends() -> None:
    polls = [msgs(0, range(o, o + 1)) for o in range(6)]
    consumer = FakeConsumer(polls)
    sink = HeldSink()
    metrics = Metrics()
    engine = member(consumer, 0, sink=sink, metrics=metrics, max_rows=TRADE_ROWS,
                    max_in_flight=2, writes_run=False)  # fmt: skip
    for _ in range(3):  # two batches in flight, a third one due
        engine.step()
    started(sink)
    assert engine.in_flight == 2 and engine.buffered_messages == 3
    polls_before = consumer.consumes
    for _ in range(3):
        engine.step()
    assert consumer.consumes == polls_before  # the due batch waits: nothing more is read
    assert engine.buffered_messages == 3 and not engine.paused
    consumer.clock.advance(WAIT_BEFORE_PAUSE_S)
    engine.step()
    assert engine.paused and consumer.paused == [(T, 0)]
    assert value(metrics, "balance_sink_paused") == 1
    engine.step()  # paused, it polls again (serving rebalances) without reading more
    assert consumer.consumes > polls_before and engine.buffered_messages == 3
    let_one_go(sink, engine)
    engine.step()  # the first write landed: room for the due batch, consumption resumes
    assert consumer.commits[0] == [(T, 0, 1)]
    assert consumer.resumed == [(T, 0)] and not engine.paused
    sink.open()
    consumer.writes_run = lambda _timeout: engine.wait_for_write(WRITE_WAIT_S)
    while consumer.polls or engine.buffered_messages:
        engine.step()
    assert consumer.commits[-1] == [(T, 0, 6)]
    assert [k for batch in sink.batches for k in batch] == keys(0, range(6))


# -- failures ---------------------------------------------------------------------------------


def test_a_transient_failure_in_flight_retries_that_batch_and_commits_nothing_past_it() -> None:
    consumer = FakeConsumer([msgs(0, range(2)), msgs(0, range(2, 4))])
    sink = HeldSink(failures=1)
    engine = member(consumer, 0, sink=sink, max_rows=2 * TRADE_ROWS, max_in_flight=1,
                    writes_run=False)  # fmt: skip
    engine.step()
    started(sink)
    engine.step()  # the next batch is read (and due) while the first is written
    let_one_go(sink, engine)  # the first write fails
    engine.step()
    assert engine.paused and consumer.paused == [(T, 0)]
    assert consumer.commits == [] and engine.in_flight == 1
    assert engine.health.failing_since is not None
    sink.open()
    consumer.writes_run = lambda _timeout: engine.wait_for_write(WRITE_WAIT_S)
    while len(consumer.commits) < 2:
        engine.step()
    assert sink.attempts[:2] == [keys(0, range(2)), keys(0, range(2))]  # the same batch again
    assert sink.batches == [keys(0, range(2)), keys(0, range(2, 4))]
    assert consumer.commits == [[(T, 0, 2)], [(T, 0, 4)]]
    assert consumer.resumed == [(T, 0)] and engine.health.failing_since is None
    assert engine.totals.dead == {}


def test_a_fatal_failure_of_the_batch_in_flight_stops_with_nothing_committed() -> None:
    consumer = FakeConsumer([msgs(0, range(2)), msgs(0, range(2, 4))])
    sink = HeldSink(failures=1, error=FatalStoreError("Authentication failure", code=0x357))
    engine = member(consumer, 0, sink=sink, max_rows=2 * TRADE_ROWS, max_in_flight=1,
                    writes_run=False)  # fmt: skip
    engine.step()
    started(sink)
    engine.step()
    let_one_go(sink, engine)
    with pytest.raises(EngineStopped, match="Authentication failure"):
        engine.run()
    engine.close()
    assert consumer.commits == [] and sink.batches == [] and sink.closed


# -- rebalances -------------------------------------------------------------------------------


def test_a_revoke_waits_for_the_write_in_flight_then_commits_the_revoked_partitions() -> None:
    consumer = FakeConsumer([msgs(0, range(1)) + msgs(1, range(1, 3))])
    sink = HeldSink()
    engine = member(consumer, 0, 1, sink=sink, max_rows=TRADE_ROWS, max_in_flight=1,
                    writes_run=False)  # fmt: skip
    engine.step()
    started(sink)

    def revoke() -> None:
        assert sink.writing  # the batch with partition 1 is being written
        threading.Timer(0.05, sink.open).start()
        consumer.rebalance("revoke", 1)
        assert not sink.writing and consumer.commits == [[(T, 0, 1), (T, 1, 3)]]

    consumer.between_polls.append(revoke)
    engine.step()
    assert engine.assigned == {(T, 0)} and engine.in_flight == 0


def test_a_revoke_gives_up_on_a_write_not_ended_within_the_budget_and_commits_none_of_it() -> None:
    clock = FakeClock()
    consumer = FakeConsumer([msgs(0, range(1)) + msgs(1, range(1, 2))], clock=clock)
    sink = HeldSink(clock=clock)  # simulated time passes while the write is held
    engine = member(consumer, 0, 1, sink=sink, max_rows=TRADE_ROWS, max_in_flight=1,
                    shutdown_timeout_s=2.0, writes_run=False)  # fmt: skip
    engine.step()
    started(sink)
    start = clock()
    consumer.rebalance("revoke", 1)  # waits up to shutdown_timeout_s, then gives up
    assert clock() - start >= 2.0 and sink.writing
    assert consumer.commits == [] and engine.assigned == {(T, 0)}
    let_one_go(sink, engine)
    engine.step()  # the write lands: only the partition still assigned is committed
    assert consumer.commits == [[(T, 0, 1)]]


@pytest.mark.parametrize("max_in_flight", [0, 1], ids=["inline", "thread"])
def test_a_write_failing_while_a_revoke_waits_pauses_consumption(max_in_flight: int) -> None:
    consumer = FakeConsumer([msgs(0, range(1)) + msgs(1, range(1, 2)), msgs(0, range(2, 3))])
    sink = RecordingSink(failures=1)
    engine = member(consumer, 0, 1, sink=sink, max_in_flight=max_in_flight)
    engine.step()  # buffered, not due
    consumer.rebalance("revoke", 1)  # written inside the revoke: the write fails
    assert engine.paused and consumer.paused == [(T, 0), (T, 1)] and consumer.commits == []
    while not consumer.commits:
        engine.step()
    assert sink.batches == [keys(0, range(1))]  # the retry leaves partition 1 to its next owner
    assert not engine.paused and consumer.commits == [[(T, 0, 1)]]


@pytest.mark.parametrize("max_in_flight", [0, 1], ids=["inline", "thread"])
def test_a_failed_write_stored_by_a_revoke_resumes_consumption(max_in_flight: int) -> None:
    consumer = FakeConsumer([msgs(0, range(1)) + msgs(1, range(1, 2)), msgs(0, range(2, 3))])
    sink = RecordingSink(failures=1)
    engine = member(consumer, 0, 1, sink=sink, max_rows=2 * TRADE_ROWS,
                    max_in_flight=max_in_flight, retry_initial_backoff_ms=60_000)  # fmt: skip
    engine.step()  # due; the write fails: paused, the retry a minute away
    while not engine.paused:
        engine.step()
    consumer.rebalance("revoke", 1)  # retried now, for partition 1, and stored
    assert consumer.commits == [[(T, 0, 1), (T, 1, 2)]]
    assert not engine.paused and consumer.resumed == [(T, 0), (T, 1)]
    engine.step()  # reading goes on
    assert engine.buffered_messages == 1


def test_lost_partitions_in_flight_are_dropped_uncommitted() -> None:
    consumer = FakeConsumer([msgs(0, range(1)) + msgs(1, range(1, 3))])
    sink = HeldSink()
    engine = member(consumer, 0, 1, sink=sink, max_rows=TRADE_ROWS, max_in_flight=1,
                    writes_run=False)  # fmt: skip
    engine.step()
    started(sink)
    consumer.rebalance("lost", 1)  # no wait, no commit
    assert sink.writing and consumer.commits == []
    let_one_go(sink, engine)
    engine.step()
    assert consumer.commits == [[(T, 0, 1)]]


# -- a sink that prepares on the engine's thread ------------------------------------------


class PreparingSink(RecordingSink):
    """Prepares (the keys) on one thread and sends on another; records both; ``send``
    fails the first ``failures`` times."""

    def __init__(self, failures: int = 0) -> None:
        super().__init__(failures)
        self.prepared_on: list[str] = []
        self.sent: list[tuple[str, object]] = []
        self.written: list[list[MessageKey]] = []

    def prepare(self, batch: Sequence[MessageRows]) -> object:
        self.prepared_on.append(threading.current_thread().name)
        return tuple(rows.key for rows in batch)

    def send(self, prepared: object) -> SinkResult:
        self.sent.append((threading.current_thread().name, prepared))
        if self.failures:
            self.failures -= 1
            raise self.error
        assert isinstance(prepared, tuple)
        return AllStored(len(prepared) * TRADE_ROWS)

    def write(self, batch: Sequence[MessageRows]) -> SinkResult:
        self.written.append([rows.key for rows in batch])
        return super().write(batch)


def test_a_preparing_sink_prepares_on_the_engines_thread_and_only_sends_on_the_writer() -> None:
    consumer = FakeConsumer([msgs(0, range(2)), msgs(0, range(2, 4))])
    sink = PreparingSink(failures=1)
    engine = member(consumer, 0, sink=sink, max_rows=2 * TRADE_ROWS, max_in_flight=1)
    while len(consumer.commits) < 2:
        engine.step()
    assert sink.prepared_on == [threading.current_thread().name] * 2  # once per batch
    first, second = tuple(keys(0, range(2))), tuple(keys(0, range(2, 4)))
    writer = "balance-sink-writer"
    assert sink.sent == [(writer, first), (writer, first), (writer, second)]  # a retry resends
    assert sink.written == [] and consumer.commits == [[(T, 0, 2)], [(T, 0, 4)]]
    assert engine.totals.rows == 4 * TRADE_ROWS


def test_a_prepared_batch_that_lost_partitions_is_written_not_sent() -> None:
    consumer = FakeConsumer([msgs(0, range(1)) + msgs(1, range(1, 2))])
    sink = PreparingSink(failures=1)
    engine = member(consumer, 0, 1, sink=sink, max_rows=2 * TRADE_ROWS, max_in_flight=1)
    while not engine.paused:  # prepared, sent, failed
        engine.step()
    consumer.rebalance("lost", 1)
    while not consumer.commits:
        engine.step()
    assert sink.written == [keys(0, range(1))]  # its prepared rows held partition 1's
    assert consumer.commits == [[(T, 0, 1)]]


# -- shutdown and health -----------------------------------------------------------------------


def test_shutdown_drains_the_write_in_flight_then_writes_and_commits_the_rest() -> None:
    consumer = FakeConsumer([msgs(0, range(2)), msgs(0, range(2, 3))])
    sink = HeldSink()
    engine = member(consumer, 0, sink=sink, max_rows=2 * TRADE_ROWS, max_in_flight=1,
                    writes_run=False)  # fmt: skip
    engine.step()
    started(sink)
    engine.step()  # one more message, buffered (not due)
    engine.stop()
    threading.Timer(0.05, sink.open).start()
    engine.run()  # waits for the write in flight, then writes what is buffered
    assert sink.batches == [keys(0, range(2)), keys(0, range(2, 3))]
    assert consumer.commits == [[(T, 0, 2)], [(T, 0, 3)]]
    assert engine.paused and engine.in_flight == 0 and engine.buffered_messages == 0


def test_a_write_that_does_not_end_makes_the_engine_not_alive() -> None:
    consumer = FakeConsumer([msgs(0, range(1))])
    sink = HeldSink()
    engine = member(consumer, 0, sink=sink, max_rows=TRADE_ROWS, max_in_flight=1,
                    writes_run=False)  # fmt: skip
    engine.step()
    started(sink)
    engine.step()
    assert engine.health.liveness() == (True, "ok")
    consumer.clock.advance(3600)
    engine.step()  # the loop iterates, but the write does not end
    alive, reason = engine.health.liveness()
    assert not alive and "a write has not ended" in reason
    let_one_go(sink, engine)
    engine.step()
    assert engine.health.liveness() == (True, "ok")


# -- the kinds of writes -----------------------------------------------------------------------


def _job(order: list[int], gate: threading.Event, running: threading.Event) -> StoreJob:
    def job(batch: Batch) -> tuple[int, list[DeadLetter]]:
        running.set()
        gate.wait(WRITE_WAIT_S)
        order.append(batch.row_count)
        if batch.row_count == 3:
            raise TransientStoreError("connection refused")
        return batch.row_count, []

    return job


def _batch(rows: int) -> Batch:
    batch = Batch()
    batch.row_count = rows
    return batch


def test_thread_writes_run_one_at_a_time_in_order_and_close_cancels_the_rest() -> None:
    order: list[int] = []
    gate, running = threading.Event(), threading.Event()
    writes = ThreadWrites(_job(order, gate, running))
    first, second, third = (writes.submit(_batch(n)) for n in (1, 2, 3))
    gate.set()
    assert first.result(WRITE_WAIT_S).rows_written == 1
    assert second.result(WRITE_WAIT_S).rows_written == 2
    failed = third.result(WRITE_WAIT_S)  # a job's error is the outcome, not raised
    assert isinstance(failed.error, TransientStoreError) and order == [1, 2, 3]
    gate.clear()
    running.clear()
    held = writes.submit(_batch(4))
    queued = writes.submit(_batch(5))
    assert running.wait(WRITE_WAIT_S)  # the first is being written, the second waits
    threading.Timer(0.05, gate.set).start()
    writes.close()
    assert held.result(WRITE_WAIT_S).rows_written == 4 and queued.cancelled()
    with pytest.raises(RuntimeError):
        writes.submit(_batch(6))


def test_inline_writes_have_ended_when_submit_returns() -> None:
    order: list[int] = []
    gate, running = threading.Event(), threading.Event()
    gate.set()
    future = InlineWrites(_job(order, gate, running)).submit(_batch(2))
    assert future.done() and future.result().rows_written == 2 and order == [2]
