"""stmt2 sent from a child process: the writer thread waits on a pipe, the GIL released.

taos-ws-py 0.7 never releases the GIL and has no request timeout, so a stmt2 call made
in the worker's process stops every other thread for as long as it runs, and a server
that never answers freezes the process. :class:`Stmt2ProcessSender` has the
:class:`~worker.tdengine.stmt2.Stmt2Sender` methods (``open``, ``execute``,
``close``) and hands each request to a child process, which owns the WebSocket
connection and a ``Stmt2Sender``:

* The parent builds requests with ``BindBuilder(make_views=False)``: rows checked once
  and kept as plain values (:class:`~worker.tdengine.stmt2_views.BindData`). It sends
  them pickled (protocol 5, int subclasses as ints) with ``Connection.send_bytes`` and
  waits with ``Connection.poll``, which releases the GIL.
* The child makes the bind views (:class:`~worker.tdengine.stmt2_views.ViewMaker`),
  binds, executes and answers the affected-row count, or the classified error (kind,
  message, code: the same ``StoreError`` the in-process sender raises, its message
  already scrubbed of the password).
* Each request waits at most ``timeout_s`` (``tdengine.request_timeout_s``). Past it
  the child is killed (SIGTERM, then SIGKILL) and :class:`TransientStoreError` is
  raised; a child that dies is a transient error too. The next request starts a new
  child. A request never retries: the writer does.
* The child is started with the ``spawn`` method (the worker has librdkafka threads:
  never fork), ignores SIGINT (the parent decides when it ends), logs nothing and
  writes nothing: its stdout and stderr go to ``/dev/null``, so every log line the
  worker prints has the configured format. It exits when the parent closes it, or when
  its pipe reaches end-of-file (the parent died); on Linux the kernel also kills it
  when the parent dies mid-request (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import importlib
import io
import logging
import math
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Final
from urllib.parse import urlsplit

from worker.tdengine.errors import (
    FatalStoreError,
    PermanentStoreError,
    StoreError,
    TransientStoreError,
)
from worker.tdengine.stmt2 import DEFAULT_SHAPE, BindRequest, Shape, Stmt2Sender, insert_sql
from worker.tdengine.stmt2_views import DEFAULT_TAG_CACHE_SIZE, BindData, ViewMaker

__all__ = ("Stmt2ProcessSender", "TaoswsSource")

logger = logging.getLogger(__name__)

TaoswsSource = str | Callable[[], Any]
"""Where the child gets taos-ws-py: a module name (``"taosws"``), or a picklable
callable returning a module-like object (tests pass a fake's factory)."""

_START_TIMEOUT_S: Final = 30.0
"""Most time for a new child to import its modules and answer: an interpreter start and
the worker's imports take about a second on a loaded 2-core machine; no server call."""
_STOP_WAIT_S: Final = 2.0
"""How long :meth:`Stmt2ProcessSender.close` waits for the child to close its connection
and exit before it is killed."""
_KILL_WAIT_S: Final = 2.0
"""How long to wait for the child to exit after SIGTERM, then after SIGKILL."""

_PR_SET_PDEATHSIG: Final = 1
"""prctl(2) option: the signal the child gets when the thread that started it ends."""

_OPEN: Final = "open"
_SEND: Final = "send"
_CLOSE: Final = "close"
_OK: Final = "ok"
_ERROR: Final = "error"
_KINDS: Final[dict[str, type[StoreError]]] = {
    "transient": TransientStoreError,
    "permanent": PermanentStoreError,
    "fatal": FatalStoreError,
}


@dataclass(frozen=True)
class _Settings:
    """What the child needs to open its sender (pickled to it once, at start)."""

    url: str
    user: str
    password: str = field(repr=False)
    database: str
    shape: Shape
    taosws: TaoswsSource
    tag_cache_size: int


class _PlainPickler(pickle.Pickler):
    """Pickles int subclasses (IntEnum, or any a caller passed) as plain ints."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, int) and type(obj) is not bool:
            return int, (int(obj),)
        return NotImplemented


def _encode(message: tuple[Any, ...]) -> memoryview:
    buffer = io.BytesIO()
    _PlainPickler(buffer, protocol=5).dump(message)
    return buffer.getbuffer()


class _Child:
    """One child process and the parent's end of its pipe."""

    __slots__ = ("conn", "process")

    def __init__(self, process: BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn

    def signal_kill(self) -> None:
        """SIGKILL the child, from any thread (does not wait for it)."""
        with suppress(OSError, ValueError):  # already reaped or closed
            self.process.kill()

    def stop(self) -> None:
        """Ask the child to close and exit (bounded), then make sure it is gone."""
        try:
            self.conn.send_bytes(_encode((_CLOSE,)))
            if self.conn.poll(_STOP_WAIT_S):
                self.conn.recv_bytes()
        except (EOFError, OSError):
            pass  # the child is gone already: end() reaps it
        self.process.join(_STOP_WAIT_S)
        self.end()

    def end(self) -> int | None:
        """Terminate, then kill, the child if still running; close the pipe; its exit code."""
        process = self.process
        for stop in (process.terminate, process.kill):
            if process.exitcode is not None:
                break
            with suppress(OSError, ValueError):
                stop()
            process.join(_KILL_WAIT_S)
        code = process.exitcode
        if code is None:
            logger.warning("tdengine stmt2 child did not exit after SIGKILL pid=%s", process.pid)
        else:
            process.close()
        self.conn.close()
        return code


class Stmt2ProcessSender:
    """Sends :class:`~worker.tdengine.stmt2.BindRequest` s (built with
    ``make_views=False``) through a child process; see the module docstring.

    Parameters
    ----------
    url, user, password, database, shape:
        As for :class:`~worker.tdengine.stmt2.Stmt2Sender` (the child's sender).
    timeout_s:
        Most time one request (open, or bind and execute) may take.
    taosws:
        Where the child gets taos-ws-py (see :data:`TaoswsSource`).
    tag_cache_size:
        Most subtables whose name and tag views the child keeps.
    """

    def __init__(
        self,
        url: str,
        user: str,
        password: str,
        database: str,
        *,
        shape: Shape = DEFAULT_SHAPE,
        timeout_s: float = 10.0,
        taosws: TaoswsSource = "taosws",
        tag_cache_size: int = DEFAULT_TAG_CACHE_SIZE,
    ) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        self._sql = insert_sql(database, shape)  # checks the name and the shape now
        self._settings = _Settings(url, user, password, database, shape, taosws, tag_cache_size)
        parts = urlsplit(url)
        self._where = f"{parts.hostname or 'localhost'}:{parts.port or 6041}"
        self._timeout_s = timeout_s
        self._child: _Child | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Stmt2ProcessSender(url={self._where!r}, shape={self._settings.shape!r})"

    @property
    def shape(self) -> Shape:
        """The statement shape in use."""
        return self._settings.shape

    @property
    def sql(self) -> str:
        """The prepared statement's text."""
        return self._sql

    @property
    def pid(self) -> int | None:
        """The running child's process id (``None`` when there is none)."""
        child = self._child
        return None if child is None else child.process.pid

    def open(self) -> None:
        """Start the child and have it connect and prepare: fail fast at start-up.

        Raises the same classified errors as :meth:`execute`.
        """
        with self._lock:
            self._call((_OPEN,))

    def execute(self, request: BindRequest) -> int:
        """Send ``request`` to the child; return the server's affected-row count.

        Raises
        ------
        TransientStoreError, PermanentStoreError, FatalStoreError
            The child's classified error; or transient when the request timed out (the
            child is killed) or the child died (the next request starts another).
        ValueError
            ``request`` carries views, not plain data (built with ``make_views=True``).
        """
        data = request.data
        with self._lock:
            return self._call((_SEND, *data))

    def close(self) -> None:
        """Stop the child (bounded: it is killed if it does not exit); never blocks long.

        When a request is running on another thread, the child is killed at once: that
        request then fails as a transient error.
        """
        child, self._child = self._child, None
        if child is None:
            return
        if self._lock.acquire(blocking=False):
            try:
                child.stop()
            finally:
                self._lock.release()
        else:
            child.signal_kill()  # the requesting thread sees end-of-file and cleans up

    # ------------------------------------------------------------------ parent side

    def _call(self, message: tuple[Any, ...]) -> int:
        child = self._running()
        payload = _encode(message)
        timeout = self._timeout_s if math.isfinite(self._timeout_s) else None
        # send_bytes blocks while the pipe is full: a child that stopped reading would
        # hold it forever, so a timer kills the child at the deadline (the send then fails).
        guard = threading.Timer(timeout, child.signal_kill) if timeout is not None else None
        deadline = time.monotonic() + (timeout or 0.0)
        try:
            if guard is not None:
                guard.daemon = True
                guard.start()
            child.conn.send_bytes(payload)
            left = None if timeout is None else max(0.0, deadline - time.monotonic())
            if not child.conn.poll(left):
                raise self._lost(child, timed_out=True)
            reply = pickle.loads(child.conn.recv_bytes())
        except (EOFError, OSError):
            timed_out = timeout is not None and time.monotonic() >= deadline
            raise self._lost(child, timed_out=timed_out) from None
        finally:
            if guard is not None:
                guard.cancel()
        return _result(reply)

    def _running(self) -> _Child:
        child = self._child
        if child is not None and child.process.is_alive():
            return child
        if child is not None:
            self._forget(child)
            code = child.end()
            logger.info("tdengine stmt2 child had exited code=%s url=%s", code, self._where)
        child = self._start()
        self._child = child
        return child

    def _start(self) -> _Child:
        context = multiprocessing.get_context("spawn")
        parent_end, child_end = context.Pipe(duplex=True)
        process = context.Process(
            target=_serve, args=(child_end, self._settings), name="balance-sink-stmt2", daemon=True
        )
        try:
            process.start()
        except BaseException:
            parent_end.close()
            raise
        finally:
            child_end.close()
        child = _Child(process, parent_end)
        try:
            if not parent_end.poll(_START_TIMEOUT_S):
                child.end()
                raise TransientStoreError(
                    f"TDengine stmt2 child process did not start within {_START_TIMEOUT_S:g} s "
                    f"url={self._where}"
                )
            reply = pickle.loads(parent_end.recv_bytes())
        except (EOFError, OSError):
            code = child.end()
            raise TransientStoreError(
                f"TDengine stmt2 child process exited at start (exit code {code}) url={self._where}"
            ) from None
        if reply[0] != _OK:
            child.end()
            _result(reply)
        logger.info("tdengine stmt2 child started pid=%s url=%s", process.pid, self._where)
        return child

    def _forget(self, child: _Child) -> None:
        if self._child is child:
            self._child = None

    def _lost(self, child: _Child, *, timed_out: bool) -> TransientStoreError:
        self._forget(child)
        code = child.end()
        if timed_out:
            logger.warning(
                "tdengine stmt2 request timed out timeout_s=%g url=%s: child killed",
                self._timeout_s,
                self._where,
            )
            return TransientStoreError(
                f"TDengine stmt2 request timed out after {self._timeout_s:g} s "
                f"(tdengine.request_timeout_s) url={self._where}; its child process was "
                "killed, the next request starts another"
            )
        logger.warning("tdengine stmt2 child process died code=%s url=%s", code, self._where)
        return TransientStoreError(
            f"TDengine stmt2 child process died (exit code {code}) url={self._where}; "
            "the next request starts another"
        )


def _result(reply: tuple[Any, ...]) -> int:
    """The affected-row count of an ``ok`` reply; raise the error of an ``error`` one."""
    if reply[0] == _OK:
        return int(reply[1])
    _, kind, desc, code = reply
    raise _KINDS[kind](desc, code=code)


# -------------------------------------------------------------------- child side


def _die_with_parent() -> None:
    """Linux: have the kernel SIGKILL the child when the parent dies, even while the
    child is stuck in a driver call (a closed pipe is seen only between requests)."""
    parent = multiprocessing.parent_process()
    if not sys.platform.startswith("linux") or parent is None:
        return
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent.pid:  # the parent died before prctl took effect
        os._exit(0)


def _quiet() -> None:
    """No log lines, warnings or tracebacks from the child: the parent reports."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)


def _load(source: TaoswsSource) -> Any:
    if callable(source):
        return source()
    try:
        return importlib.import_module(source)
    except ImportError as exc:
        raise FatalStoreError(
            f"the stmt2 write path needs taos-ws-py ({source!r} not importable: {exc}): "
            "pip install 'taos-ws-py>=0.7'"
        ) from None


def _error_reply(exc: BaseException, password: str) -> tuple[Any, ...]:
    if isinstance(exc, StoreError):
        return (_ERROR, exc.kind, exc.desc, exc.code)
    text = f"{type(exc).__name__}: {exc}"
    if password:
        text = text.replace(password, "***")
    return (_ERROR, "fatal", f"TDengine stmt2 child process failed: {text}", None)


def _serve(conn: Connection, settings: _Settings) -> None:
    """The child's loop: one request, one reply, until closed or the pipe ends."""
    _die_with_parent()
    _quiet()
    try:
        module = _load(settings.taosws)
        views = ViewMaker(module, tag_cache_size=settings.tag_cache_size)
        sender = Stmt2Sender(
            settings.url,
            settings.user,
            settings.password,
            settings.database,
            shape=settings.shape,
            taosws=module,
        )
    except Exception as exc:
        conn.send_bytes(_encode(_error_reply(exc, settings.password)))
        return
    conn.send_bytes(_encode((_OK, 0)))
    try:
        while True:
            try:
                message = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError):
                return  # the parent closed its end, or died
            reply: tuple[Any, ...]
            try:
                if message[0] == _SEND:
                    reply = (_OK, sender.execute_views(views.views_of(BindData(*message[1:]))))
                elif message[0] == _OPEN:
                    sender.open()
                    reply = (_OK, 0)
                else:
                    sender.close()
                    conn.send_bytes(_encode((_OK, 0)))
                    return
            except Exception as exc:
                reply = _error_reply(exc, settings.password)
            try:
                conn.send_bytes(_encode(reply))
            except OSError:
                return  # the parent went away
    finally:
        sender.close()
