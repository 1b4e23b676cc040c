"""The stmt2 write path: BalanceEvents bound as parameters over taosAdapter's WebSocket.

Two halves with the shapes of the SQL path, so the writer's retries, isolation and
affected-rows check can drive either one:

* :class:`BindBuilder` ``.build(events) -> list[BindRequest]`` mirrors
  :meth:`InsertBuilder.build <worker.tdengine.sql.InsertBuilder.build>`; a
  :class:`BindRequest` has the :class:`~worker.tdengine.sql.InsertStatement` members
  the writer uses (``rows``, ``nbytes``, ``row_keys()``, ``distinct_rows()``).
* :class:`Stmt2Sender` ``.execute(request) -> int`` mirrors
  :meth:`Transport.execute <worker.tdengine.transport.Transport.execute>`: it sends
  one request and returns the server's affected-row count, or raises a classified
  :class:`~worker.tdengine.errors.StoreError` (transient, permanent or fatal). It
  never retries.

Rows keep the SQL path's identity: subtable ``u{user_id}_a{account_type}`` (built from
validated integers only), tags ``(user_id, account_type)``, the composite key
``(ts, event_id)``; re-sending a request overwrites its rows with the same values.
Values are never rendered as text: they are checked once per batch
(:mod:`worker.tdengine.stmt2_rows`) and handed to taos-ws-py's column builders.

stmt2 binds rows per subtable (one bind view: table name, tags, 12 columns), in both
statement shapes (:data:`SHAPES`); the server takes at most 32,767 rows of one table
in one view, so longer runs are split into several views of the same table. The views
are made by :class:`~worker.tdengine.stmt2_views.ViewMaker`, here or, for a sender in a
child process (:mod:`worker.tdengine.stmt2_process`), in that process from the plain
values a :class:`BindRequest` then carries instead (``make_views=False``).
"""

from __future__ import annotations

import logging
import re
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from itertools import chain, repeat
from operator import sub
from typing import Any, Final, Literal
from urllib.parse import quote, urlsplit

from worker.tdengine.errors import (
    FatalStoreError,
    StoreError,
    TransientStoreError,
    make_store_error,
)
from worker.tdengine.sql import COLUMNS, STABLE_NAME, TAGS, RowKey, quote_identifier
from worker.tdengine.stmt2_rows import ColumnBatch, columns_of
from worker.tdengine.stmt2_views import DEFAULT_TAG_CACHE_SIZE, BindData, ViewMaker, load_taosws

__all__ = (
    "DEFAULT_MAX_ROWS",
    "DEFAULT_SHAPE",
    "MAX_VIEW_ROWS",
    "SHAPES",
    "STMT2_CODE_CLASSES",
    "BindBuilder",
    "BindData",
    "BindRequest",
    "Shape",
    "Stage",
    "Stmt2Sender",
    "classify_driver_error",
    "insert_sql",
    "load_taosws",
)

logger = logging.getLogger(__name__)

Shape = Literal["subtable", "stable"]
Stage = Literal["connect", "prepare", "bind", "execute"]
SHAPES: Final[tuple[Shape, ...]] = ("subtable", "stable")
"""``subtable``: ``INSERT INTO ? USING db.balance_events TAGS (?,?) VALUES (...)``;
``stable``: ``INSERT INTO db.balance_events (tbname, user_id, account_type, ...) VALUES
(...)``. Both bind the same views (table name, tags, columns per subtable): taos-ws-py
0.7 has no row-wise ``tbname`` column (a view without a table name is refused with
"table name is empty"), so only the server's handling of the statement differs."""

DEFAULT_SHAPE: Final[Shape] = "stable"
"""The faster shape on TDengine 3.3.6.13, though narrowly: in paired, interleaved runs
(``bench.bench_stmt2_shapes``) ``stable`` was 3-7 % faster on first writes at three of
four spreads and even with tables existing; ``bench.bench_write_paths`` agrees."""

MAX_VIEW_ROWS: Final = 32_767
"""Most rows of one table in one bind view: TDengine 3.3.6 answers 0x0236 "bind number
out of range" from 32,768 on."""

DEFAULT_MAX_ROWS: Final = 10_000
"""Rows per request by default. One request alone goes faster the larger it is (against
3.3.6.13, 2,000 uniform users: 617,000 rows/s send-only at 20,000 rows a request,
447,000 at 5,000), but two senders (``tdengine.stmt2_senders``) share a batch's
requests: at 10,000 a 50,000-row batch makes five to share, and each child's peak
memory is smaller. With two children the write chain (views made in them) did 266,000
rows/s at 10,000 rows and 2,500 views a request against 237,000 at 20,000 and 5,000
(2,000 uniform users), and the worker end to end stayed under 300 MiB only so."""

DEFAULT_MAX_VIEWS: Final = 2_500
"""Views (subtable runs) per request by default. taos-ws-py's bind views of one request
are the sender's peak memory, about 14 objects each: at 200,000 uniform users a request
of 20,000 rows holds 20,000 views and took the sender to 177 MiB peak RSS, 107 MiB at
5,000, at the same rate (TDengine's cost is per subtable block, not per request). At
2,500 a child peaked at 70 MiB, 89 MiB at 5,000."""

_ROW_BYTES: Final = 90
"""Approximate bytes of one row in a stmt2 bind message (78 bytes of values, one null
flag per column); :attr:`BindRequest.nbytes` is an estimate for metrics, not a limit."""
_VIEW_BYTES: Final = 260
"""Approximate bytes of one view's table name, tags and column headers."""

_CODE: Final = re.compile(r"\[0x([0-9A-Fa-f]{1,8})\]")

STMT2_CODE_CLASSES: Final[Mapping[int, Literal["transient", "fatal"]]] = {
    # Codes only the stmt2 path meets; everything else goes through errors.classify.
    0x0117: "transient",  # Invalid pointer: a statement used after it failed; re-prepared
    0x022B: "transient",  # Table does not exist (super table missing at prepare), as 0x2603
    0x0236: "fatal",  # bind number out of range or not match: our view shape is wrong
}
"""Classes of stmt2-only codes (masked to 16 bits), checked before ``CODE_CLASSES``."""


def insert_sql(database: str, shape: Shape) -> str:
    """The statement to prepare for ``shape``; the database name is checked and quoted."""
    stable = f"{quote_identifier(database)}.`{STABLE_NAME}`"
    tags = ", ".join(name for name, _ in TAGS)
    columns = ", ".join(name for name, _ in COLUMNS)
    marks = ", ".join("?" * len(COLUMNS))
    if shape == "subtable":
        return f"INSERT INTO ? USING {stable} ({tags}) TAGS (?, ?) ({columns}) VALUES ({marks})"
    if shape == "stable":
        every = ", ".join("?" * (1 + len(TAGS) + len(COLUMNS)))
        return f"INSERT INTO {stable} (tbname, {tags}, {columns}) VALUES ({every})"
    raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")


class BindRequest:
    """One bind-and-execute: the views of some subtables and the rows they carry.

    Attributes
    ----------
    params:
        taos-ws-py bind views (``stmt2_bind_param_view``), one per subtable run; only
        when the builder makes views (``ValueError`` otherwise).
    data:
        The same rows as plain values, for a sender in a child process; only when the
        builder does not make views (``ValueError`` otherwise).
    rows:
        Number of rows bound.
    tables:
        Number of views (a subtable with more than :data:`MAX_VIEW_ROWS` rows has more).
    nbytes:
        Estimated size of the bind message, for metrics.
    """

    __slots__ = ("_batch", "_data", "_end", "_params", "_start", "nbytes", "rows", "tables")

    def __init__(
        self,
        params: list[Any] | None,
        batch: ColumnBatch,
        start: int,
        end: int,
        *,
        data: BindData | None = None,
    ) -> None:
        if params is not None and data is None:
            self.tables = len(params)
        elif data is not None and params is None:
            self.tables = len(data.users)
        else:
            raise ValueError("a BindRequest carries either views (params) or plain data")
        self._params = params
        self._data = data
        self.rows = end - start
        self.nbytes = self.rows * _ROW_BYTES + self.tables * _VIEW_BYTES
        self._batch = batch
        self._start = start
        self._end = end

    @property
    def params(self) -> list[Any]:
        """The bind views (see the class docstring)."""
        if self._params is None:
            raise ValueError("this request was built without views (make_views=False)")
        return self._params

    @property
    def data(self) -> BindData:
        """The rows as plain values (see the class docstring)."""
        if self._data is None:
            raise ValueError("this request was built with views, not plain data")
        return self._data

    def row_keys(self) -> list[RowKey]:
        """Identities (user_id, account_type, ts, event_id) of the rows, in bind order."""
        return self._batch.row_keys(self._start, self._end)

    def distinct_rows(self) -> int:
        """Number of distinct row identities: what TDengine reports as affected rows."""
        return len(set(self.row_keys()))

    def __repr__(self) -> str:
        return f"BindRequest(rows={self.rows}, tables={self.tables}, nbytes~{self.nbytes})"


class BindBuilder:
    """Builds :class:`BindRequest` s from BalanceEvents; keeps each subtable's name and tags.

    Parameters
    ----------
    max_rows:
        Most rows in one request (1.. any; split at subtable runs, or inside a run).
    max_views:
        Most views (subtable runs) in one request; a request is also cut where it
        reaches them.
    taosws:
        The taos-ws-py module (tests pass a fake); imported when omitted.
    tag_cache_size:
        Most subtables whose (name, tag views) are kept between calls.
    make_views:
        Make the bind views here (:attr:`BindRequest.params`, for :class:`Stmt2Sender`);
        when false, requests carry their rows as plain values (:attr:`BindRequest.data`)
        for a sender in a child process, and taos-ws-py is not imported here.
    """

    __slots__ = ("_max_rows", "_max_views", "_views")

    def __init__(
        self,
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_views: int = DEFAULT_MAX_VIEWS,
        taosws: Any = None,
        tag_cache_size: int = DEFAULT_TAG_CACHE_SIZE,
        make_views: bool = True,
    ) -> None:
        if type(max_rows) is not int or max_rows < 1:
            raise ValueError(f"max_rows must be an int >= 1, got {max_rows!r}")
        if type(max_views) is not int or max_views < 1:
            raise ValueError(f"max_views must be an int >= 1, got {max_views!r}")
        self._max_rows = max_rows
        self._max_views = max_views
        self._views = ViewMaker(taosws, tag_cache_size=tag_cache_size) if make_views else None

    @property
    def max_rows(self) -> int:
        """Most rows in one request."""
        return self._max_rows

    def build(self, events: Iterable[object]) -> list[BindRequest]:
        """Build the requests that write ``events``.

        Returns
        -------
        list[BindRequest]
            In order; empty when there are no events. Together they hold every row once,
            grouped by subtable, rows by (ts, event_id) within a subtable.

        Raises
        ------
        RowValueError
            A value is missing, of the wrong type or out of range (nothing is built).
        FatalStoreError
            taos-ws-py refused a column that passed our checks (a bug, never data).
        """
        batch = columns_of(events)
        total = len(batch)
        if not total:
            return []
        cuts = self._view_starts(batch.starts, total)
        users, accounts = batch.tags_at(cuts)
        params = None
        if self._views is not None:
            params = self._views.views(users, accounts, batch.data, cuts, [*cuts[1:], total])
        requests: list[BindRequest] = []
        for (view_low, view_high), (row_low, row_high) in self._requests(cuts, total):
            if params is not None:
                views = params[view_low:view_high]
                requests.append(BindRequest(views, batch, row_low, row_high))
            else:
                views_at, rows_at = (view_low, view_high), (row_low, row_high)
                data = _plain(batch, cuts, users, accounts, views_at, rows_at)
                requests.append(BindRequest(None, batch, row_low, row_high, data=data))
        return requests

    def _requests(
        self, cuts: list[int], total: int
    ) -> Iterator[tuple[tuple[int, int], tuple[int, int]]]:
        """(views, rows) of each request: rows cut every ``max_rows`` (a view starts at
        every such border), then cut again every ``max_views`` views."""
        limit, most = self._max_rows, self._max_views
        view_low = 0
        for row_low in range(0, total, limit):
            row_high = min(total, row_low + limit)
            view_high = bisect_left(cuts, row_high, view_low)
            for first in range(view_low, view_high, most):
                last = min(first + most, view_high)
                yield (first, last), (cuts[first], cuts[last] if last < view_high else row_high)
            view_low = view_high

    def _view_starts(self, starts: list[int], total: int) -> list[int]:
        """First row of every view: subtable runs, cut at request borders and MAX_VIEW_ROWS."""
        limit = self._max_rows
        cuts = starts[:-1]
        if total <= limit and total <= MAX_VIEW_ROWS:
            return cuts
        for border in range(limit, total, limit):  # request borders: few
            at = bisect_left(cuts, border)
            if at == len(cuts) or cuts[at] != border:
                cuts.insert(at, border)
        ends = [*cuts[1:], total]
        if max(map(sub, ends, cuts)) <= MAX_VIEW_ROWS:
            return cuts
        # A view holds at most MAX_VIEW_ROWS: longer pieces are cut every MAX_VIEW_ROWS.
        return list(chain.from_iterable(map(range, cuts, ends, repeat(MAX_VIEW_ROWS))))


def _plain(
    batch: ColumnBatch,
    cuts: list[int],
    users: list[int],
    accounts: list[int],
    views: tuple[int, int],
    rows: tuple[int, int],
) -> BindData:
    """Views ``views[0]:views[1]``, which hold rows ``rows[0]:rows[1]``, as plain values."""
    low, high = views
    row_low, row_high = rows
    return BindData(
        # Plain ints (ColumnBatch.tags_at): the child process builds names from these.
        users=users[low:high],
        accounts=accounts[low:high],
        starts=[*map(sub, cuts[low:high], repeat(row_low)), row_high - row_low],
        columns=tuple(column[row_low:row_high] for column in batch.data),
    )


class Stmt2Sender:
    """Sends :class:`BindRequest` s over one WebSocket connection; see the module docstring.

    The connection (to ``ws(s)://host:port/<database>``: stmt2 resolves the ``?`` table
    name in the connection's database) and the prepared statement are opened on first
    use and kept. After any error the statement is discarded (a failed stmt2 cannot be
    used again); after an error without a server code, or a transient one, the
    connection is dropped too. The next call opens what it needs.

    Parameters
    ----------
    url:
        ``ws(s)://host:port`` of taosAdapter (``http(s)`` is mapped to ``ws(s)``).
    user, password:
        Credentials, passed in the DSN; the password is never logged and is scrubbed
        from driver messages.
    database:
        The ledger database (a checked identifier).
    shape:
        The statement shape, see :data:`SHAPES` (:data:`DEFAULT_SHAPE` by default).
    taosws:
        The taos-ws-py module (tests pass a fake); imported when omitted.
    """

    def __init__(
        self,
        url: str,
        user: str,
        password: str,
        database: str,
        *,
        shape: Shape = DEFAULT_SHAPE,
        taosws: Any = None,
    ) -> None:
        self._sql = insert_sql(database, shape)
        parts = urlsplit(url)
        scheme = {"http": "ws", "https": "wss"}.get(parts.scheme.lower(), parts.scheme.lower())
        host = parts.hostname or "localhost"
        port = parts.port or 6041
        self._where = f"{scheme}://{host}:{port}"
        self._dsn = (
            f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{database}"
        )
        self._password = password
        self._shape = shape
        self._ws = taosws
        self._conn: Any = None
        self._stmt: Any = None

    def __repr__(self) -> str:
        return f"Stmt2Sender(url={self._where!r}, shape={self._shape!r})"

    @property
    def shape(self) -> Shape:
        """The statement shape in use."""
        return self._shape

    @property
    def sql(self) -> str:
        """The prepared statement's text (no values: those are bound)."""
        return self._sql

    def execute(self, request: BindRequest) -> int:
        """Bind ``request`` and execute it; return the server's affected-row count.

        Raises
        ------
        TransientStoreError, PermanentStoreError, FatalStoreError
            Classified from the server's code (see :func:`classify_driver_error`).
        """
        return self.execute_views(request.params)

    def execute_views(self, views: list[Any]) -> int:
        """Bind ``views`` (taos-ws-py bind views) and execute; as :meth:`execute`."""
        stmt = self._statement()
        try:
            stmt.bind(views)
        except Exception as exc:
            raise self._fail(exc, "bind") from None
        try:
            affected = stmt.execute()
        except Exception as exc:
            raise self._fail(exc, "execute") from None
        return int(affected)

    def open(self) -> None:
        """Connect and prepare now (``execute`` does it when needed): fail fast at start-up.

        Raises the same classified errors as :meth:`execute`.
        """
        self._statement()

    def close(self) -> None:
        """Drop the statement and close the connection, if open."""
        self._drop(connection=True)

    def _statement(self) -> Any:
        if self._stmt is not None:
            return self._stmt
        if self._ws is None:
            self._ws = load_taosws()
        if self._conn is None:
            try:
                self._conn = self._ws.connect(self._dsn)
            except Exception as exc:
                raise self._fail(exc, "connect") from None
        try:
            stmt = self._conn.stmt2_statement()
            stmt.prepare(self._sql)
        except Exception as exc:
            raise self._fail(exc, "prepare") from None
        self._stmt = stmt
        return stmt

    def _fail(self, exc: Exception, stage: Stage) -> StoreError:
        error = classify_driver_error(_scrub(str(exc), self._password), type(exc).__name__, stage)
        self._drop(connection=error.code is None or error.kind == "transient")
        logger.debug(
            "tdengine stmt2 error stage=%s url=%s code=%s kind=%s",
            stage,
            self._where,
            "none" if error.code is None else f"0x{error.code:04X}",
            error.kind,
        )
        return error

    def _drop(self, *, connection: bool) -> None:
        self._stmt = None
        if not connection:
            return
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # closing a broken connection may fail; nothing to do
                logger.debug("tdengine stmt2 close failed url=%s", self._where)


def classify_driver_error(message: str, exception: str, stage: Stage) -> StoreError:
    """Turn a taos-ws-py error into a classified :class:`StoreError`.

    taos-ws-py 0.7 puts the server's code first in the message, e.g.
    ``[0x060B] Internal error: `Timestamp data out of range``` (seen on 3.3.6.13 for
    connect, prepare, bind and execute alike). A code found there is classified by
    :data:`STMT2_CODE_CLASSES`, then :func:`~worker.tdengine.errors.classify`.
    Without a code the driver itself refused: before anything reached the server at
    prepare or bind time (``ProgrammingError``: our statement or view shape is wrong,
    fatal), or on the connection (transient).
    """
    found = _CODE.search(message)
    if found is not None:
        code = int(found.group(1), 16) & 0xFFFF
        special = STMT2_CODE_CLASSES.get(code)
        if special == "fatal":
            return FatalStoreError(message, code=code)
        if special == "transient":
            return TransientStoreError(message, code=code)
        return make_store_error(message, code)
    text = f"TDengine stmt2 {stage} failed: {exception}: {message}"
    if exception == "ProgrammingError" and stage != "connect":
        return FatalStoreError(text)
    return TransientStoreError(text)


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text
