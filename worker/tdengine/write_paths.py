"""How the writer's rows reach TDengine: SQL text over a transport, or stmt2 binding.

A write path builds requests from events and sends them, one or several at a time; the
:class:`~worker.tdengine.writer.TDengineWriter` around it owns retries, isolation of
refused rows and the affected-rows check, so both paths keep every guarantee:

* ``sql``: INSERT statements (:class:`~worker.tdengine.sql.InsertBuilder`) sent over
  the configured transport (REST or WebSocket SQL). The simple path and the fallback.
  Over REST, several connections (``tdengine.sql_senders``) send a batch's statements
  side by side.
* ``stmt2``: parameter binding over taosAdapter's WebSocket API
  (:mod:`worker.tdengine.stmt2`). Cheaper on the server where a write creates
  subtables; its Python-side build costs more per subtable. Sent from a child process
  by default (``tdengine.stmt2_process``, :mod:`worker.tdengine.stmt2_process`): the
  writer thread then waits with the GIL released, and a request has a deadline. Several
  children (``tdengine.stmt2_senders``) send a batch's requests side by side.

Both keep their senders in a :class:`~worker.tdengine.sender_pool.SenderPool`, and
:meth:`WritePath.send_all` hands it a batch's requests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Final, Generic, Protocol, TypeVar

from worker.core.events import BalanceEvent
from worker.tdengine.options import WRITE_APIS, TDengineOptions, WriteApi
from worker.tdengine.sender_pool import SenderPool, SendOutcome
from worker.tdengine.sql import InsertBuilder, InsertStatement, RowKey
from worker.tdengine.stmt2 import BindBuilder, BindRequest, Stmt2Sender
from worker.tdengine.stmt2_process import Stmt2ProcessSender
from worker.tdengine.transport import RestTransport, Transport, open_transport

__all__ = (
    "WRITE_APIS",
    "BindSender",
    "SqlPath",
    "StatementSender",
    "Stmt2Path",
    "WriteApi",
    "WritePath",
    "WriteRequest",
    "open_write_path",
)


class WriteRequest(Protocol):
    """One request of a path: the rows it carries, for checks and isolation."""

    @property
    def rows(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    def row_keys(self) -> list[RowKey]: ...
    def distinct_rows(self) -> int: ...


_R = TypeVar("_R", bound=WriteRequest)


class WritePath(Protocol[_R]):
    """Builds requests from events and sends them; errors are classified StoreErrors."""

    @property
    def name(self) -> WriteApi: ...
    def build(self, events: Iterable[BalanceEvent]) -> Sequence[_R]: ...
    def open(self) -> None:
        """Connect what the path needs now, so start-up fails fast."""
        ...

    def send(self, request: _R) -> int:
        """Send one request; the server's affected-row count."""
        ...

    @property
    def parallel_sends(self) -> int:
        """How many requests :meth:`send_all` has in flight at once (1: one by one)."""
        ...

    def send_all(self, requests: Sequence[_R]) -> list[SendOutcome]:
        """Send every request once, no retry; one outcome each, in order."""
        ...

    def close(self) -> None: ...


class BindSender(Protocol):
    """Sends stmt2 requests: :class:`Stmt2Sender` in-process, or
    :class:`Stmt2ProcessSender` from a child process."""

    def open(self) -> None: ...
    def execute(self, request: BindRequest) -> int: ...
    def close(self) -> None: ...


class _PooledPath(Generic[_R]):
    """Requests from ``build`` sent through a :class:`SenderPool` (both paths are one)."""

    def __init__(
        self, build: Callable[[Iterable[BalanceEvent]], list[_R]], senders: SenderPool
    ) -> None:
        self._build = build
        self._senders = senders

    def build(self, events: Iterable[BalanceEvent]) -> list[_R]:
        return self._build(events)

    def open(self) -> None:
        self._senders.open()

    def send(self, request: _R) -> int:
        return self._senders.execute(request)

    @property
    def parallel_sends(self) -> int:
        return self._senders.size

    def send_all(self, requests: Sequence[_R]) -> list[SendOutcome]:
        return self._senders.execute_all(requests)

    def close(self) -> None:
        self._senders.close()


class StatementSender:
    """A transport as a pooled sender of INSERT statements; closes it only if ``owned``."""

    def __init__(self, transport: Transport, *, owned: bool) -> None:
        self._transport = transport
        self._owned = owned

    def __repr__(self) -> str:
        return f"StatementSender({self._transport!r}, owned={self._owned})"

    def open(self) -> None:
        pass  # a transport connects on first use

    def execute(self, request: InsertStatement) -> int:
        return self._transport.execute(request.sql)

    def close(self) -> None:
        if self._owned:
            self._transport.close()


class SqlPath(_PooledPath[InsertStatement]):
    """INSERT statements over the caller's transport (which the caller closes) and, to
    send a batch's statements side by side, ``extra`` transports of its own (closed by
    :meth:`close`)."""

    name: Final = "sql"

    def __init__(
        self,
        transport: Transport,
        database: str,
        max_statement_bytes: int,
        extra: Sequence[Transport] = (),
    ) -> None:
        super().__init__(
            InsertBuilder(database, max_statement_bytes=max_statement_bytes).build,
            SenderPool(
                [
                    StatementSender(transport, owned=False),
                    *(StatementSender(other, owned=True) for other in extra),
                ]
            ),
        )

    @classmethod
    def of(cls, options: TDengineOptions, transport: Transport) -> SqlPath:
        """The path for ``options``: ``transport`` and, when it is REST, another
        ``options.sql_sender_count - 1`` REST connections to the same URL (any other
        transport sends alone)."""
        extra: list[Transport] = []
        if isinstance(transport, RestTransport):
            extra = [open_transport(options) for _ in range(options.sql_sender_count - 1)]
        return cls(transport, options.database, options.max_statement_bytes, extra)

    def open(self) -> None:
        pass  # the transport is opened (and the schema checked) by the writer


class Stmt2Path(_PooledPath[BindRequest]):
    """stmt2 binding over its own WebSocket connection (opened on first use).

    The builder must match the sender: views made here (``make_views=True``) for
    :class:`Stmt2Sender`, plain values (``make_views=False``) for
    :class:`Stmt2ProcessSender` (alone or in a :class:`SenderPool`). A lone sender
    is kept as a pool of one, which sends in the calling thread.
    """

    name: Final = "stmt2"

    def __init__(self, builder: BindBuilder, sender: BindSender | SenderPool) -> None:
        super().__init__(
            builder.build, sender if isinstance(sender, SenderPool) else SenderPool([sender])
        )

    @classmethod
    def of(cls, options: TDengineOptions) -> Stmt2Path:
        """The path for ``options`` (``http(s)`` URLs map to ``ws(s)`` on the same port),
        sent from ``options.senders`` child processes when ``options.stmt2_process``."""
        settings = (options.url, options.user, options.password, options.database)
        if options.stmt2_process:
            sender: BindSender | SenderPool = SenderPool(
                [
                    Stmt2ProcessSender(*settings, timeout_s=options.request_timeout_s)
                    for _ in range(options.senders)
                ]
            )
            builder = BindBuilder(max_rows=options.bind_max_rows, make_views=False)
        else:
            sender = Stmt2Sender(*settings)
            builder = BindBuilder(max_rows=options.bind_max_rows)
        return cls(builder, sender)


def open_write_path(options: TDengineOptions, transport: Transport) -> SqlPath | Stmt2Path:
    """The path ``options.write_api`` names; ``sql`` goes over ``transport``."""
    if options.write_api == "stmt2":
        return Stmt2Path.of(options)
    return SqlPath.of(options, transport)
