"""Several stmt2 senders side by side: the pool, and the writer's use of a path's
``send_all`` (first attempts side by side, then each failure through the retrier).

Concurrency is shown with barriers (a call that needs another in flight at once to
pass), never with timing.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.unit.fake_taosws_child import ChildFake
from tests.unit.test_tdengine_stmt2_process import SECRET, URL
from tests.unit.test_tdengine_write_paths import Mismatches, NoTransport, groups
from worker.tdengine.errors import (
    FatalStoreError,
    OptionsError,
    PermanentStoreError,
    StoreError,
    TransientStoreError,
)
from worker.tdengine.options import DEFAULT_STMT2_SENDERS, MAX_STMT2_SENDERS, TDengineOptions
from worker.tdengine.sender_pool import SenderPool, SendOutcome
from worker.tdengine.sql import InsertStatement
from worker.tdengine.stmt2 import BindBuilder
from worker.tdengine.stmt2_process import Stmt2ProcessSender
from worker.tdengine.write_paths import SqlPath, Stmt2Path
from worker.tdengine.writer import TDengineWriter

WAIT_S = 20.0
"""How long a barrier waits for its partner: far past any scheduling delay."""


class FakeSender:
    """Answers ``len(request)``; fails as scripted per request; can meet a barrier."""

    def __init__(
        self,
        barrier: threading.Barrier | None = None,
        errors: dict[str, Exception] | None = None,
        ended: list[str] | None = None,
    ) -> None:
        self.barrier = barrier
        self.errors = errors or {}
        self.ended = ended if ended is not None else []
        self.opened = self.closed = 0
        self.threads: set[str] = set()

    def open(self) -> None:
        if self.barrier is not None:
            self.barrier.wait(WAIT_S)
        self.opened += 1
        if "open" in self.errors:
            raise self.errors["open"]

    def execute(self, request: str) -> int:
        self.threads.add(threading.current_thread().name)
        try:
            if self.barrier is not None:
                self.barrier.wait(WAIT_S)
            if request in self.errors:
                raise self.errors[request]
            return len(request)
        finally:
            self.ended.append(request)

    def close(self) -> None:
        self.closed += 1


def test_requests_go_out_side_by_side_and_outcomes_keep_their_order() -> None:
    barrier = threading.Barrier(2)  # passes only with two requests in flight at once
    senders = [FakeSender(barrier), FakeSender(barrier)]
    pool = SenderPool(senders)
    try:
        outcomes = pool.execute_all(["a", "bb", "ccc", "dddd"])
    finally:
        pool.close()
    assert [o.affected for o in outcomes] == [1, 2, 3, 4]
    assert all(o.error is None and o.seconds >= 0 for o in outcomes)
    assert all(s.threads and s.closed == 1 for s in senders)


def test_a_store_error_is_its_requests_outcome() -> None:
    refused = PermanentStoreError("refused", code=0x060B)
    lost = TransientStoreError("lost")
    script: dict[str, Exception] = {"b": refused, "d": lost}
    pool = SenderPool([FakeSender(errors=script), FakeSender(errors=script)])
    try:
        outcomes = pool.execute_all(["a", "b", "c", "d"])
    finally:
        pool.close()
    assert [(o.affected, o.error) for o in outcomes] == [
        (1, None),
        (None, refused),
        (1, None),
        (None, lost),
    ]


def test_any_other_error_is_raised_once_every_request_has_ended() -> None:
    ended: list[str] = []
    barrier = threading.Barrier(2)
    script: dict[str, Exception] = {"a": ValueError("bug")}
    senders = [FakeSender(barrier, script, ended), FakeSender(barrier, script, ended)]
    pool = SenderPool(senders)
    try:
        with pytest.raises(ValueError, match="bug"):
            pool.execute_all(["a", "b"])
    finally:
        pool.close()
    assert sorted(ended) == ["a", "b"]


def test_one_sender_or_one_request_runs_in_the_calling_thread() -> None:
    me = threading.current_thread().name
    single = FakeSender()
    assert SenderPool([single]).execute_all(["a", "b"]) == [
        SendOutcome(1, None, pytest.approx(0, abs=60)),  # type: ignore[arg-type]
        SendOutcome(1, None, pytest.approx(0, abs=60)),  # type: ignore[arg-type]
    ]
    pair = [FakeSender(), FakeSender()]
    pool = SenderPool(pair)
    assert [o.affected for o in pool.execute_all(["abc"])] == [3]
    assert pool.execute("ab") == 2
    assert single.threads == {me} and set().union(*(s.threads for s in pair)) == {me}


def test_open_opens_every_sender_side_by_side_and_raises_a_failure() -> None:
    barrier = threading.Barrier(2)
    senders = [FakeSender(barrier), FakeSender(barrier)]
    SenderPool(senders).open()
    assert [s.opened for s in senders] == [1, 1]
    refused = FatalStoreError("authentication failure")
    failing = SenderPool([FakeSender(), FakeSender(errors={"open": refused})])
    with pytest.raises(FatalStoreError, match="authentication"):
        failing.open()


class HeldSender(FakeSender):
    """Holds each request until closed; a request held then ends as a killed child's."""

    def __init__(self, busy: threading.Semaphore) -> None:
        super().__init__()
        self.busy = busy
        self.released = threading.Event()

    def execute(self, request: str) -> int:
        self.busy.release()
        if not self.released.wait(WAIT_S):
            raise AssertionError("never closed")
        self.ended.append(request)
        raise TransientStoreError("child killed")

    def close(self) -> None:
        super().close()
        self.released.set()


def test_close_cancels_the_requests_not_started() -> None:
    busy = threading.Semaphore(0)
    senders = [HeldSender(busy), HeldSender(busy)]
    pool = SenderPool(senders)
    outcomes: list[SendOutcome] = []
    sending = threading.Thread(target=lambda: outcomes.extend(pool.execute_all(list("abcd"))))
    sending.start()
    assert busy.acquire(timeout=WAIT_S) and busy.acquire(timeout=WAIT_S)  # both senders held
    pool.close()
    sending.join(WAIT_S)
    assert not sending.is_alive()
    errors = [str(o.error) for o in outcomes]
    assert errors.count("child killed") == 2
    assert errors.count("TDengine sender pool closed before the request was sent") == 2
    assert all(isinstance(o.error, TransientStoreError) for o in outcomes)
    assert sorted(request for s in senders for request in s.ended) == ["a", "b"]


def test_a_pool_needs_a_sender() -> None:
    with pytest.raises(ValueError, match="at least one sender"):
        SenderPool([])


# ------------------------------------------------------------------ options


def test_senders_default_to_two_children_and_one_in_process() -> None:
    assert TDengineOptions(password="taosdata").senders == DEFAULT_STMT2_SENDERS == 2
    assert TDengineOptions(password="taosdata", stmt2_process=False).senders == 1
    assert TDengineOptions(password="taosdata", stmt2_senders=3).senders == 3
    one = TDengineOptions(password="taosdata", stmt2_process=False, stmt2_senders=1)
    assert one.senders == 1


@pytest.mark.parametrize("value", [0, MAX_STMT2_SENDERS + 1, -1, True])
def test_senders_out_of_range_name_the_field(value: Any) -> None:
    with pytest.raises(OptionsError, match=rf"tdengine\.stmt2_senders.*1\.\.{MAX_STMT2_SENDERS}"):
        TDengineOptions(password="taosdata", stmt2_senders=value)


def test_several_senders_need_the_child_process() -> None:
    with pytest.raises(OptionsError, match=r"tdengine\.stmt2_senders.*stmt2_process = true"):
        TDengineOptions(password="taosdata", stmt2_process=False, stmt2_senders=2)
    with pytest.raises(msgspec.ValidationError, match="stmt2_senders"):
        msgspec.convert({"stmt2_senders": "2"}, TDengineOptions)


# ------------------------------------------- the writer, first attempts side by side


class CountingTransport(NoTransport):
    """SQL transport answering each statement's row count; counts what it was sent."""

    def __init__(self) -> None:
        self.rows_of: dict[str, int] = {}
        self.sent: list[str] = []

    def execute(self, sql: str) -> int:
        self.sent.append(sql)
        return self.rows_of[sql]


class ScriptedParallelPath(SqlPath):
    """SQL path claiming two senders: ``send_all`` answers scripted first attempts."""

    parallel_sends = 2

    def __init__(self, transport: CountingTransport, first_errors: dict[int, StoreError]) -> None:
        super().__init__(transport, "ledger", max_statement_bytes=4_096)
        self.counting = transport
        self.first_errors = first_errors
        self.send_alls: list[int] = []

    def build(self, events: Any) -> list[InsertStatement]:
        statements = super().build(events)
        for statement in statements:
            self.counting.rows_of[statement.sql] = statement.rows
        return statements

    def send_all(self, requests: Sequence[InsertStatement]) -> list[SendOutcome]:
        self.send_alls.append(len(requests))
        base = sum(self.send_alls[:-1])
        outcomes = []
        for number, request in enumerate(requests, start=base):
            error = self.first_errors.pop(number, None)
            if error is None:
                outcomes.append(SendOutcome(self.send(request), None, 0.001))
            else:
                outcomes.append(SendOutcome(None, error, 0.001))
        return outcomes


class Retries(Mismatches):
    def __init__(self) -> None:
        super().__init__()
        self.retries: list[StoreError] = []
        self.statements = 0

    def on_retry(self, error: StoreError) -> None:
        self.retries.append(error)

    def on_statement(self, rows: int, nbytes: int, seconds: float) -> None:
        self.statements += 1


def scripted_writer(
    first_errors: dict[int, StoreError], observer: Any = None
) -> tuple[TDengineWriter, ScriptedParallelPath]:
    options = TDengineOptions(url=URL, password=SECRET, retry_max_elapsed_s=60.0)
    path = ScriptedParallelPath(CountingTransport(), first_errors)
    writer = TDengineWriter(NoTransport(), options, observer, path=path, sleep=lambda _: None)
    return writer, path


def test_a_transient_first_attempt_is_retried_alone() -> None:
    observer = Retries()
    writer, path = scripted_writer({1: TransientStoreError("connection reset")}, observer)
    result = writer.write(groups(40))
    statements = path.send_alls[0]
    assert statements > 2 and result.rows_written == 160 and not result.rejected
    assert len(path.counting.sent) == statements  # each once; the failed one by its retry
    assert [str(e) for e in observer.retries] == ["connection reset"]
    assert observer.statements == statements


def test_a_permanent_first_attempt_is_isolated_without_a_retry() -> None:
    refusal = PermanentStoreError("[0x060B] Timestamp data out of range", code=0x060B)
    observer = Retries()
    writer, path = scripted_writer({0: refusal}, observer)
    result = writer.write(groups(40))
    assert not observer.retries
    assert len(path.send_alls) > 1, "the refused statement's groups were bisected"
    # Bisection re-sends them; the script refused only the first attempt, so all pass.
    assert result.rows_written == 160 and not result.rejected


def test_a_fatal_first_attempt_stops_the_write() -> None:
    writer, path = scripted_writer({2: FatalStoreError("database dropped")})
    with pytest.raises(FatalStoreError, match="database dropped"):
        writer.write(groups(40))
    assert len(path.send_alls) == 1


# ------------------------------------------------ the writer through child processes


@pytest.fixture
def pools() -> Iterator[list[SenderPool]]:
    made: list[SenderPool] = []
    yield made
    for pool in made:
        pool.close()


def pooled_writer(
    pools: list[SenderPool], observer: Any = None, retry_s: float = 0.0, **fake: Any
) -> TDengineWriter:
    options = TDengineOptions(url=URL, password=SECRET, retry_max_elapsed_s=retry_s)
    factory = functools.partial(ChildFake, **fake)
    pool = SenderPool(
        [
            Stmt2ProcessSender(URL, "root", SECRET, "ledger", timeout_s=20.0, taosws=factory)
            for _ in range(2)
        ]
    )
    pools.append(pool)
    path = Stmt2Path(BindBuilder(max_rows=8, make_views=False), pool)
    return TDengineWriter(NoTransport(), options, observer, path=path, sleep=lambda _: None)


def test_two_children_isolate_a_refused_message(pools: list[SenderPool]) -> None:
    refusal = "[0x060B] Internal error: `Timestamp data out of range`"
    writer = pooled_writer(pools, refused_tables={"u105_a1": refusal})
    result = writer.write(groups(8))
    assert [key for key, _ in result.rejected] == [("trades", 0, 5)]
    assert result.rows_written == 7 * 4
    children = [s.pid for s in pools[0].senders if isinstance(s, Stmt2ProcessSender)]
    assert len(children) == 2 and None not in children


def test_two_children_report_each_short_affected_count(pools: list[SenderPool]) -> None:
    observer = Mismatches()
    pooled_writer(pools, observer, affected_delta=-1).write(groups(6))
    assert observer.seen == [(8, 7), (8, 7), (8, 7)]


def test_a_crashed_child_is_retried_alone(pools: list[SenderPool], tmp_path: Path) -> None:
    observer = Retries()
    writer = pooled_writer(pools, observer, retry_s=60.0, crash_once=str(tmp_path / "crashed"))
    assert writer.write(groups(8)).rows_written == 32
    assert len(observer.retries) == 1 and "died" in str(observer.retries[0])
