"""Batched, idempotent writes of balance events to TDengine, with error isolation.

The worker hands :meth:`TDengineWriter.write` a batch of :class:`KeyedRows` (one per
Kafka message, keyed by the message's ref; the engine's rows as they are, or
:class:`RowGroup`) and gets refused groups back by that key, its type kept. Every row
has the identity (subtable, ts, event_id), which the super table's composite key makes a row key, so
writing a row again overwrites it with the same values: any statement, or the whole
batch, can be re-sent safely.

* Transient errors are retried per statement with exponential backoff and jitter
  for up to ``retry_max_elapsed_s`` (:mod:`worker.tdengine.retry`); then
  :class:`TransientStoreError` is raised and the caller retries the batch later.
* A permanent error on a statement is isolated: the groups with rows in that
  statement are bisected (re-writing is safe) until the offending groups are found.
  Every other group is written; offenders come back in ``WriteResult.rejected``.
  TDengine multi-table INSERTs are not atomic across vnodes, so some rows of a
  rejected group may have been stored (they are correct rows; only the group as a
  whole is incomplete).
* Fatal errors are raised at once and never retried.
* A path with several senders (REST connections, or stmt2 child processes) sends every
  statement's first attempt side by side; each statement whose first attempt failed then goes
  through the rules above alone, so the outcome is that of statements sent one by one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

import msgspec

from worker.core.event_columns import events_of
from worker.core.events import BalanceEvent
from worker.tdengine.errors import (
    PermanentStoreError,
    RowValueError,
    StoreError,
)
from worker.tdengine.options import TDengineOptions
from worker.tdengine.retry import Retrier, hex_code
from worker.tdengine.sender_pool import SendOutcome
from worker.tdengine.sql import RowKey, check_events
from worker.tdengine.startup import SchemaReport, ensure_schema
from worker.tdengine.transport import QueryResult, Transport, open_transport
from worker.tdengine.write_paths import WritePath, WriteRequest, open_write_path

__all__ = (
    "KeyedRows",
    "NullObserver",
    "PreparedWrite",
    "RowGroup",
    "SchemaReport",
    "TDengineWriter",
    "WriteResult",
    "WriterObserver",
    "init_database",
)

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_K = TypeVar("_K", bound=Hashable)
_K_co = TypeVar("_K_co", bound=Hashable, covariant=True)


class KeyedRows(Protocol[_K_co]):
    """What the writer reads of a message's rows: ``key`` and ``events`` (RowGroup has them)."""

    @property
    def key(self) -> _K_co: ...
    @property
    def events(self) -> Sequence[BalanceEvent]: ...


class RowGroup(msgspec.Struct, frozen=True, gc=False):
    """The rows of one Kafka message: written together, rejected together.

    Attributes
    ----------
    key:
        The worker's reference to the message, e.g. ``(topic, partition, offset)``.
    events:
        The message's balance events.
    """

    key: Hashable
    events: Sequence[BalanceEvent]


class WriteResult(msgspec.Struct, Generic[_K], frozen=True):
    """The outcome of :meth:`TDengineWriter.write`.

    Attributes
    ----------
    rows_written:
        Rows of the groups that were written (rejected groups not counted).
    statements:
        Statements the server accepted during the call (bisection included).
    rejected:
        ``(group key, error)`` for every group refused for its values; these rows
        were not (all) stored and will not be by retrying.
    """

    rows_written: int
    statements: int
    rejected: list[tuple[_K, PermanentStoreError]]


@dataclass(frozen=True, slots=True)
class PreparedWrite(Generic[_K]):
    """A batch's requests, built ahead of sending (:meth:`TDengineWriter.prepare`)."""

    groups: Sequence[KeyedRows[_K]]
    valid: Sequence[int]
    """Indexes of the groups the requests carry."""
    requests: Sequence[WriteRequest]
    refused_values: Mapping[int, PermanentStoreError]
    """Groups refused before sending, for their values."""


class WriterObserver(Protocol):
    """Hooks for metrics; called synchronously from the writer."""

    def on_statement(self, rows: int, nbytes: int, seconds: float) -> None:
        """A statement was accepted by the server."""

    def on_retry(self, error: StoreError) -> None:
        """A transient error; the statement will be retried after a backoff."""

    def on_error(self, kind: Literal["transient", "permanent", "fatal"], code: int | None) -> None:
        """Any error answer, one call per failed attempt."""

    def on_affected_mismatch(self, expected: int, actual: int) -> None:
        """The server's affected-row count differs from the distinct rows sent."""


class NullObserver:
    """An observer that ignores everything."""

    def on_statement(self, rows: int, nbytes: int, seconds: float) -> None:
        """Ignore."""

    def on_retry(self, error: StoreError) -> None:
        """Ignore."""

    def on_error(self, kind: Literal["transient", "permanent", "fatal"], code: int | None) -> None:
        """Ignore."""

    def on_affected_mismatch(self, expected: int, actual: int) -> None:
        """Ignore."""


class TDengineWriter:
    """Writes batches of :class:`KeyedRows` to TDengine; see the module docstring.

    Parameters
    ----------
    transport:
        Where statements go (:func:`~worker.tdengine.transport.open_transport`).
    options:
        Database name, statement size and retry budget.
    observer:
        Metrics hooks; :class:`NullObserver` by default.
    path:
        How rows are sent (:mod:`worker.tdengine.write_paths`); by default the one
        ``options.write_api`` names, SQL over ``transport`` or stmt2 binding.
    sleep, clock:
        Backoff sleep and monotonic clock of the retry budget (tests pass fakes).
    """

    def __init__(
        self,
        transport: Transport,
        options: TDengineOptions,
        observer: WriterObserver | None = None,
        *,
        path: WritePath[Any] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._transport = transport
        self._options = options
        self._observer: WriterObserver = observer if observer is not None else NullObserver()
        self._sleep = sleep
        self._clock = clock
        self._path: WritePath[Any] = open_write_path(options, transport) if path is None else path
        self._retrier = Retrier(options, self._observer, sleep=sleep, clock=clock)

    # ----------------------------------------------------------------- schema

    def ensure_schema(self) -> SchemaReport:
        """Wait for the server, check its version, create or check database and super table.

        See :func:`worker.tdengine.startup.ensure_schema` for what is checked and raised.
        """
        return ensure_schema(self._transport, self._options, self._retrier)

    def open_path(self) -> None:
        """Connect the write path now (stmt2 prepares its statement), with the retry budget."""
        self._retrying(self._path.open)

    def close(self) -> None:
        """Close what the write path opened (the transport is the caller's)."""
        self._path.close()

    def query(self, sql: str) -> QueryResult:
        """Run a read-only statement with the transient-retry budget (health checks, tests)."""
        return self._retrying(lambda: self._transport.query(sql))

    # ------------------------------------------------------------------ write

    def write(self, groups: Sequence[KeyedRows[_K]]) -> WriteResult[_K]:
        """Write every group; return counts and the groups refused for their values.

        Raises
        ------
        TransientStoreError
            A statement still failed after the retry budget; retry the whole batch later.
        FatalStoreError
            Credentials, privileges, database or schema are wrong; stop.
        """
        return self.send(self.prepare(groups))

    def prepare(self, groups: Sequence[KeyedRows[_K]]) -> PreparedWrite[_K]:
        """Build the requests of ``groups`` (CPU only, no I/O); refuse bad values here."""
        rejected: dict[int, PermanentStoreError] = {}
        try:
            requests = self._path.build(events_of(g.events for g in groups))
            valid = list(range(len(groups)))
        except RowValueError:
            # Slow path: find every group with a bad value; never send those.
            valid = []
            for index, group in enumerate(groups):
                try:
                    check_events(group.events)
                except RowValueError as exc:
                    self._reject(rejected, groups, index, exc)
                else:
                    valid.append(index)
            requests = self._build(groups, valid)
        return PreparedWrite(groups, valid, requests, rejected)

    def send(self, prepared: PreparedWrite[_K]) -> WriteResult[_K]:
        """Send a prepared write (again, after a transient failure: nothing carries over).

        Raises as :meth:`write` does.
        """
        groups = prepared.groups
        rejected = dict(prepared.refused_values)
        accepted = self._write_subset(groups, list(prepared.valid), prepared.requests, rejected)
        rows_written = sum(len(g.events) for i, g in enumerate(groups) if i not in rejected)
        return WriteResult(
            rows_written=rows_written,
            statements=accepted,
            rejected=[(groups[i].key, error) for i, error in sorted(rejected.items())],
        )

    def _build(
        self, groups: Sequence[KeyedRows[Any]], indexes: Iterable[int]
    ) -> Sequence[WriteRequest]:
        return self._path.build(events_of(groups[i].events for i in indexes))

    def _reject(
        self,
        rejected: dict[int, PermanentStoreError],
        groups: Sequence[KeyedRows[Any]],
        index: int,
        error: PermanentStoreError,
    ) -> None:
        group = groups[index]
        logger.warning(
            "tdengine rejected message key=%r rows=%d code=%s error=%s",
            group.key,
            len(group.events),
            hex_code(error.code),
            error.desc,
        )
        rejected[index] = error

    def _write_subset(
        self,
        groups: Sequence[KeyedRows[Any]],
        indexes: list[int],
        statements: Sequence[WriteRequest],
        rejected: dict[int, PermanentStoreError],
    ) -> int:
        """Write ``groups[indexes]``, bisecting the groups of refused statements.

        Returns the number of statements the server accepted.
        """
        accepted = 0
        failed: dict[int, PermanentStoreError] = {}
        for statement, refusal in self._send_statements(statements):
            if refusal is None:
                accepted += 1
            else:
                for index in self._groups_of(statement, groups, indexes):
                    failed.setdefault(index, refusal)
        if not failed:
            return accepted
        suspects = sorted(failed)
        if len(suspects) == 1:
            # A statement holding rows of this group alone (or with groups since
            # cleared) was refused: the group's own values are the cause.
            self._reject(rejected, groups, suspects[0], failed[suspects[0]])
            return accepted
        logger.info(
            "tdengine isolating permanent error groups=%d code=%s",
            len(suspects),
            hex_code(next(iter(failed.values())).code),
        )
        middle = len(suspects) // 2
        for half in (suspects[:middle], suspects[middle:]):
            accepted += self._write_subset(groups, half, self._build(groups, half), rejected)
        return accepted

    @staticmethod
    def _groups_of(
        statement: WriteRequest, groups: Sequence[KeyedRows[Any]], indexes: list[int]
    ) -> list[int]:
        """Indexes of the groups with at least one row in ``statement``."""
        keys: set[RowKey] = set(statement.row_keys())
        return [
            i
            for i in indexes
            if any((e.user_id, e.account_type, e.ts, e.event_id) in keys for e in groups[i].events)
        ]

    def _send_statements(
        self, statements: Sequence[WriteRequest]
    ) -> Iterator[tuple[WriteRequest, PermanentStoreError | None]]:
        """Each statement sent (retried as needed) and the permanent error that refused it.

        With a path of several senders, every statement is first sent once side by side;
        a statement whose first attempt failed then goes through the retrier alone, that
        failure counting as its first attempt. Transient (past the budget) and fatal
        errors are raised as they are reached, in statement order.
        """
        if self._path.parallel_sends > 1 and len(statements) > 1:
            firsts: Sequence[SendOutcome | None] = self._path.send_all(statements)
        else:
            firsts = [None] * len(statements)
        for statement, first in zip(statements, firsts, strict=True):
            try:
                self._execute(statement, first)
            except PermanentStoreError as exc:
                yield statement, exc
            else:
                yield statement, None

    def _execute(self, statement: WriteRequest, first: SendOutcome | None = None) -> None:
        """Send ``statement`` with retries, or take ``first``, its attempt already made."""
        if first is not None and first.affected is not None:
            affected, seconds = first.affected, first.seconds
        else:
            pending = [first.error] if first is not None and first.error is not None else []

            def attempt() -> int:
                if pending:
                    raise pending.pop()
                return self._path.send(statement)

            started = time.perf_counter()
            affected = self._retrying(attempt)
            seconds = time.perf_counter() - started + (0.0 if first is None else first.seconds)
        self._observer.on_statement(statement.rows, statement.nbytes, seconds)
        if affected != statement.rows:
            expected = statement.distinct_rows()
            if affected != expected:
                logger.warning(
                    "tdengine affected rows mismatch expected=%d actual=%d rows_sent=%d bytes=%d",
                    expected,
                    affected,
                    statement.rows,
                    statement.nbytes,
                )
                self._observer.on_affected_mismatch(expected, affected)
            else:
                logger.debug(
                    "tdengine duplicate row keys in one statement rows_sent=%d distinct=%d",
                    statement.rows,
                    expected,
                )

    # ------------------------------------------------------------------ retry

    def _retrying(self, call: Callable[[], _T], *, no_retry: frozenset[int] = frozenset()) -> _T:
        """Run ``call``, retrying transient errors for up to ``retry_max_elapsed_s``."""
        return self._retrier.run(call, no_retry=no_retry)


def init_database(options: TDengineOptions) -> str:
    """Create or check the database and super table; return a human-readable report.

    For ``balance-sink init-db``. Raises the same errors as
    :meth:`TDengineWriter.ensure_schema`.
    """
    transport = open_transport(options)
    writer = TDengineWriter(transport, options)
    try:
        return writer.ensure_schema().summary()
    finally:
        writer.close()
        transport.close()
