"""The stmt2 sender in a child process, without a server: the child uses a fake taos-ws-py.

Each test starts real child processes (``spawn``); the fake comes from
:mod:`tests.unit.fake_taosws_child`, whose hangs and crashes happen once per marker
file, so the restarted child answers normally.
"""

from __future__ import annotations

import enum
import errno
import functools
import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.unit.fake_taosws import FakeTaosws
from tests.unit.fake_taosws_child import ChildFake
from tests.unit.test_tdengine_sql import event, trade_events
from tests.unit.test_tdengine_stmt2 import sample_events
from tests.unit.test_tdengine_write_paths import Mismatches, NoTransport, groups
from worker.tdengine import stmt2 as stmt2_module
from worker.tdengine.errors import (
    FatalStoreError,
    OptionsError,
    PermanentStoreError,
    StoreError,
    TransientStoreError,
)
from worker.tdengine.options import DEFAULT_STMT2_SENDERS, TDengineOptions
from worker.tdengine.sender_pool import SenderPool
from worker.tdengine.stmt2 import BindBuilder, BindRequest, Stmt2Sender
from worker.tdengine.stmt2_process import Stmt2ProcessSender, _encode
from worker.tdengine.stmt2_views import BindData, ViewMaker
from worker.tdengine.write_paths import Stmt2Path
from worker.tdengine.writer import RowGroup, TDengineWriter

URL = "ws://td.example:6041"
SECRET = "s3cret-pw"
FAILING_AUTH = f"[0x0357] Internal error: `Authentication failure for ws://root:{SECRET}@td`"


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno != errno.ESRCH
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def process_sender(timeout_s: float = 20.0, **fake: Any) -> Stmt2ProcessSender:
    return Stmt2ProcessSender(
        URL,
        "root",
        SECRET,
        "ledger",
        timeout_s=timeout_s,
        taosws=functools.partial(ChildFake, **fake),
    )


@pytest.fixture
def senders() -> Iterator[list[Stmt2ProcessSender]]:
    """Senders to close at teardown, whatever the test did."""
    made: list[Stmt2ProcessSender] = []
    yield made
    for sender in made:
        sender.close()


def plain_request(events: list[Any] | None = None) -> BindRequest:
    (request,) = BindBuilder(make_views=False).build(events or sample_events())
    return request


# ------------------------------------------------------- plain data, same views


@pytest.mark.parametrize(("max_rows", "view_rows"), [(20_000, 32_767), (7, 32_767), (9, 4)])
def test_plain_requests_make_the_views_the_inline_builder_makes(
    monkeypatch: pytest.MonkeyPatch, max_rows: int, view_rows: int
) -> None:
    monkeypatch.setattr(stmt2_module, "MAX_VIEW_ROWS", view_rows)
    events = [event(event_id=4 * n, ts=1_700_000_000_000_000 + n) for n in range(25)]
    events += sample_events(trades=30)
    inline = BindBuilder(max_rows=max_rows, taosws=FakeTaosws()).build(events)
    plain = BindBuilder(max_rows=max_rows, make_views=False).build(events)
    child_views = ViewMaker(FakeTaosws())
    assert len(plain) == len(inline) > 0
    for ours, theirs in zip(plain, inline, strict=True):
        assert (ours.rows, ours.tables, ours.nbytes) == (theirs.rows, theirs.tables, theirs.nbytes)
        assert ours.row_keys() == theirs.row_keys()
        assert ours.distinct_rows() == theirs.distinct_rows()
        received = BindData(*pickle.loads(_encode(tuple(ours.data))))
        assert child_views.views_of(received) == theirs.params
    if max_rows == 7:
        assert [r.rows for r in plain] == [7] * 20 + [5]  # 25 + 4 * 30 rows


def test_a_request_has_either_views_or_plain_data() -> None:
    inline = BindBuilder(taosws=FakeTaosws()).build(sample_events())[0]
    with pytest.raises(ValueError, match="with views"):
        inline.data  # noqa: B018
    with pytest.raises(ValueError, match="without views"):
        plain_request().params  # noqa: B018


def test_int_subclasses_travel_as_plain_ints() -> None:
    class Kind(enum.IntEnum):  # local: pickle could not name it in the child
        SPOT = 2

    class Sly(int):
        pass

    events = [msgspec.structs.replace(e, account_type=Kind.SPOT) for e in sample_events(3)]
    events[0] = msgspec.structs.replace(events[0], fee=Sly(5), user_id=Sly(12))
    data = pickle.loads(_encode(tuple(plain_request(events).data)))
    values = [*data[0], *data[1], *(v for column in data[3] for v in column)]
    assert {type(v) for v in values} <= {int, bool, type(None)}
    assert 12 in data[0] and 5 in {v for column in data[3] for v in column}


# ------------------------------------------------------------ the child itself


def test_a_request_is_bound_and_executed_in_the_child(
    senders: list[Stmt2ProcessSender],
) -> None:
    sender = process_sender(affected_delta=-1)  # the fake's count, so it ran over there
    senders.append(sender)
    sender.open()
    pid = sender.pid
    assert pid is not None and pid != os.getpid() and alive(pid)
    request = plain_request()
    assert sender.execute(request) == request.distinct_rows() - 1
    assert sender.execute(request) == request.distinct_rows() - 1
    assert sender.pid == pid, "one child serves every request"


def test_an_inline_request_is_refused_before_sending(senders: list[Stmt2ProcessSender]) -> None:
    sender = process_sender()
    senders.append(sender)
    (inline,) = BindBuilder(taosws=FakeTaosws()).build(sample_events())
    with pytest.raises(ValueError, match="with views"):
        sender.execute(inline)
    assert sender.pid is None, "no child started for it"


@pytest.mark.parametrize(
    ("stage", "message", "kind", "code"),
    [
        ("connect", FAILING_AUTH, FatalStoreError, 0x0357),
        ("prepare", "[0x2603] Internal error: `Table does not exist`", TransientStoreError, 0x2603),
        ("bind", "[0x0236] Internal error: `bind number out of range`", FatalStoreError, 0x0236),
        (
            "execute",
            "[0x060B] Internal error: `Timestamp out of range`",
            PermanentStoreError,
            0x060B,
        ),
        ("execute", "[0x0117] Internal error: `Invalid pointer`", TransientStoreError, 0x0117),
        ("execute", "WebSocket closed: Connection reset", TransientStoreError, None),
        ("bind", "wrong column count", FatalStoreError, None),
    ],
)
def test_errors_come_back_classified_as_the_in_process_sender_raises_them(
    senders: list[Stmt2ProcessSender],
    stage: Any,
    message: str,
    kind: type[StoreError],
    code: int | None,
) -> None:
    failures = {stage: [message]}
    inline = Stmt2Sender(URL, "root", SECRET, "ledger", taosws=FakeTaosws(failures={**failures}))
    with pytest.raises(StoreError) as expected:
        inline.execute(BindBuilder(taosws=FakeTaosws()).build(sample_events())[0])
    sender = process_sender(failures={stage: [message]})
    senders.append(sender)
    request = plain_request()
    with pytest.raises(StoreError) as caught:
        sender.execute(request)
    error = caught.value
    assert type(error) is type(expected.value) is kind
    assert error.code == expected.value.code == code
    assert str(error) == str(expected.value)
    assert SECRET not in str(error)
    pid = sender.pid
    assert sender.execute(request) == request.distinct_rows(), "the same child goes on"
    assert sender.pid == pid


def test_the_child_prints_logs_and_warns_nothing(
    senders: list[Stmt2ProcessSender], capfd: pytest.CaptureFixture[str]
) -> None:
    """Every line the worker prints has the configured format: the child prints none."""
    sender = process_sender(noisy=True, failures={"execute": ["[0x0117] Invalid pointer"]})
    senders.append(sender)
    request = plain_request()
    with pytest.raises(TransientStoreError):
        sender.execute(request)  # an error in the child: reported here, not there
    assert sender.execute(request) == request.distinct_rows()
    sender.close()
    out, err = capfd.readouterr()
    assert "noise" not in out + err
    assert "Traceback" not in err


def test_start_up_fails_fast_with_the_classified_error(senders: list[Stmt2ProcessSender]) -> None:
    sender = process_sender(failures={"connect": [FAILING_AUTH]})
    senders.append(sender)
    with pytest.raises(FatalStoreError) as caught:
        sender.open()
    assert caught.value.code == 0x0357
    assert SECRET not in str(caught.value) and "***" in str(caught.value)
    sender.open()  # the script had one failure: connected and prepared now


def test_a_missing_taosws_module_is_fatal_and_named() -> None:
    sender = Stmt2ProcessSender(URL, "root", SECRET, "ledger", taosws="no_such_taosws_module")
    try:
        with pytest.raises(FatalStoreError, match=r"no_such_taosws_module.*taos-ws-py"):
            sender.open()
        assert sender.pid is None
    finally:
        sender.close()


# ------------------------------------------------------- deadlines and crashes


@pytest.mark.parametrize("stage", ["connect", "execute"])
def test_a_request_past_its_deadline_kills_the_child_and_the_next_starts_another(
    senders: list[Stmt2ProcessSender], tmp_path: Path, stage: Any
) -> None:
    sender = process_sender(timeout_s=1.0, stage=stage, hang_once=str(tmp_path / "hung"))
    senders.append(sender)
    request = plain_request()
    started = time.monotonic()
    with pytest.raises(TransientStoreError, match=r"timed out after 1 s.*request_timeout_s") as e:
        sender.execute(request)
    waited = time.monotonic() - started
    assert (tmp_path / "hung").exists(), "the child did hang"
    assert waited < 30, "bounded by the deadline (and the child's start), not the hang"
    assert e.value.code is None and SECRET not in str(e.value)
    assert sender.pid is None, "the hung child is gone"
    assert sender.execute(request) == request.distinct_rows()


def test_a_hung_child_is_really_killed(senders: list[Stmt2ProcessSender]) -> None:
    sender = process_sender(timeout_s=1.0, hang_always=True)
    senders.append(sender)
    sender.open()
    pid = sender.pid
    assert pid is not None
    with pytest.raises(TransientStoreError, match="timed out"):
        sender.execute(plain_request())
    assert not alive(pid)


_ORPHANING_PARENT = """
import functools, sys
from tests.unit.fake_taosws_child import ChildFake
from tests.unit.test_tdengine_stmt2_process import plain_request
from worker.tdengine.stmt2_process import Stmt2ProcessSender

if __name__ == "__main__":
    sender = Stmt2ProcessSender("ws://td.example:6041", "root", "pw", "ledger", timeout_s=600,
                                taosws=functools.partial(ChildFake, stage="execute",
                                                         hang_always=True))
    sender.open()
    print(sender.pid, flush=True)
    sender.execute(plain_request())  # hangs in the child until the test kills this process
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_child_hung_in_a_request_dies_with_its_parent(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(_ORPHANING_PARENT)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    command = [sys.executable, str(script)]
    with subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True, env=env) as parent:
        try:
            assert parent.stdout is not None
            child = int(parent.stdout.readline())
            time.sleep(0.5)  # the request reaches the child, which hangs in execute
            assert alive(child)
        finally:
            parent.kill()
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(child):
        os.kill(child, 9)
        pytest.fail("the child outlived its SIGKILLed parent")


def test_a_child_that_dies_is_a_transient_error_then_replaced(
    senders: list[Stmt2ProcessSender], tmp_path: Path
) -> None:
    sender = process_sender(crash_once=str(tmp_path / "crashed"))
    senders.append(sender)
    sender.open()
    first = sender.pid
    request = plain_request()
    with pytest.raises(TransientStoreError, match=r"died \(exit code 70\)"):
        sender.execute(request)
    assert sender.execute(request) == request.distinct_rows()
    assert sender.pid not in (None, first)


def test_a_child_that_died_between_requests_is_replaced_silently(
    senders: list[Stmt2ProcessSender],
) -> None:
    sender = process_sender()
    senders.append(sender)
    sender.open()
    first = sender.pid
    assert first is not None
    os.kill(first, 9)
    while alive(first):
        time.sleep(0.01)
    request = plain_request()
    assert sender.execute(request) == request.distinct_rows()
    assert sender.pid not in (None, first)


# ----------------------------------------------------------------------- close


def test_close_ends_the_child(senders: list[Stmt2ProcessSender]) -> None:
    sender = process_sender()
    senders.append(sender)
    sender.open()
    pid = sender.pid
    assert pid is not None
    sender.close()
    assert sender.pid is None and not alive(pid)
    sender.close()  # twice is fine
    request = plain_request()
    assert sender.execute(request) == request.distinct_rows(), "a later request reopens"


def test_close_while_a_request_hangs_returns_at_once_and_fails_that_request(
    senders: list[Stmt2ProcessSender],
) -> None:
    sender = process_sender(timeout_s=600.0, hang_always=True)
    senders.append(sender)
    sender.open()
    pid = sender.pid
    assert pid is not None
    outcome: list[BaseException] = []

    def request() -> None:
        try:
            sender.execute(plain_request())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=request)
    thread.start()
    while not sender._lock.locked():  # the request is under way
        time.sleep(0.01)
    started = time.monotonic()
    sender.close()
    assert time.monotonic() - started < 10, "close() is bounded"
    thread.join(30)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], TransientStoreError)
    assert not alive(pid)


# ------------------------------------------------------------ config and writer


def test_the_process_sender_is_the_default_for_stmt2() -> None:
    options = TDengineOptions(url=URL, password="taosdata", write_api="stmt2")
    assert options.stmt2_process is True
    path = Stmt2Path.of(options)
    assert isinstance(path._senders, SenderPool)
    assert path.parallel_sends == options.senders == DEFAULT_STMT2_SENDERS
    assert all(isinstance(s, Stmt2ProcessSender) for s in path._senders.senders)
    inline = Stmt2Path.of(msgspec.structs.replace(options, stmt2_process=False))
    (alone,) = inline._senders.senders  # a pool of one, sending in the calling thread
    assert isinstance(alone, Stmt2Sender)
    assert inline.parallel_sends == 1
    with pytest.raises(OptionsError, match=r"tdengine\.stmt2_process"):
        TDengineOptions(password="taosdata", stmt2_process="yes")  # type: ignore[arg-type]
    with pytest.raises(msgspec.ValidationError, match="stmt2_process"):
        msgspec.convert({"stmt2_process": "yes"}, TDengineOptions)


def process_writer(
    senders: list[Stmt2ProcessSender], observer: Any = None, **fake: Any
) -> TDengineWriter:
    options = TDengineOptions(url=URL, password=SECRET, retry_max_elapsed_s=0.0)
    sender = process_sender(**fake)
    senders.append(sender)
    path = Stmt2Path(BindBuilder(max_rows=1_000, make_views=False), sender)
    return TDengineWriter(NoTransport(), options, observer, path=path, sleep=lambda _: None)


def test_the_writer_isolates_a_refused_message_through_the_child(
    senders: list[Stmt2ProcessSender],
) -> None:
    refusal = "[0x060B] Internal error: `Timestamp data out of range`"
    writer = process_writer(senders, refused_tables={"u104_a1": refusal})
    result = writer.write(groups(8))
    assert [key for key, _ in result.rejected] == [("trades", 0, 4)]
    [(_, error)] = result.rejected
    assert isinstance(error, PermanentStoreError) and error.code == 0x060B
    assert result.rows_written == 7 * 4


def test_the_writer_reports_a_short_affected_count_through_the_child(
    senders: list[Stmt2ProcessSender],
) -> None:
    observer = Mismatches()
    process_writer(senders, observer, affected_delta=-1).write(groups(3))
    assert observer.seen == [(12, 11)]


def test_the_writer_retries_after_a_crashed_child(
    senders: list[Stmt2ProcessSender], tmp_path: Path
) -> None:
    options = TDengineOptions(url=URL, password=SECRET, retry_max_elapsed_s=60.0)
    sender = process_sender(crash_once=str(tmp_path / "crashed"))
    senders.append(sender)
    path = Stmt2Path(BindBuilder(make_views=False), sender)
    retries: list[StoreError] = []

    class Retries(Mismatches):
        def on_retry(self, error: StoreError) -> None:
            retries.append(error)

    writer = TDengineWriter(NoTransport(), options, Retries(), path=path, sleep=lambda _: None)
    batch = [RowGroup(("trades", 0, 1), trade_events(1, 1_750_000_000_000_000, 5, 6))]
    assert writer.write(batch).rows_written == 4
    assert len(retries) == 1 and "died" in str(retries[0])
