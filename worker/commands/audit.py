"""``balance-sink audit``: prove the ledger in TDengine is whole, or name what is wrong.

The time range is cut into windows of at most ``window_rows`` rows (a ``COUNT(*)``
per candidate window, halving the busy ones), so memory stays bounded however long
the range. A trade's four rows share its ``ts``, so a window never splits a trade.
Per window, TDengine aggregates two queries on the super table (rows never leave it
one by one):

* ``GROUP BY trade_id, credit_asset`` over all rows: row count, smallest and largest
  event id, credits, debits (count, asset range, sum), fees and fee asset range. A
  correct trade has two groups: its base asset with event ids {4t, 4t+2} (the buyer's
  settlement and the platform's base fee) and its quote asset with {4t+1, 4t+3};
* ``GROUP BY trade_id, credit_asset`` over FeeReceived rows (``event_type = 2``):
  count, credit and fee per asset.

From these, per trade:

* **completeness**: exactly four rows with event ids 4t..4t+3 (the count and the
  smallest and largest id of each group pin the exact id set); nothing missing, nothing
  extra, no stray row of a trade that has no others;
* **conservation**: per asset, credits equal debits;
* **fee consistency**: each FeeReceived row's credit equals the fee of its TradeSettled
  row (k=2 with k=0 in the base asset, k=3 with k=1 in the quote asset), the fee is in
  the asset it is taken from, and FeeReceived rows carry no fee themselves;
* **totals**: fee revenue per asset over the range (FeeReceived credits).

With ``--against-topic`` the topic range is read through the worker's core and every
valid trade in it whose ``ts`` falls in the audited range must have rows, and every
trade with rows must be a valid trade of the topic range.

All SQL is built from validated integers only.
"""

from __future__ import annotations

import csv
import io
import logging
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

import msgspec

from worker.commands.specs import OffsetSpec, format_timestamp_ms
from worker.core.events import EVENT_TYPE_FEE_RECEIVED, EVENTS_PER_TRADE, PLATFORM_USER_ID
from worker.errors import BalanceSinkError
from worker.ops.kafka_logs import kafka_client_config
from worker.ops.logs import log_context
from worker.tdengine.sql import STABLE_NAME, quote_identifier

__all__ = (
    "CHECKS",
    "EXIT_FAILED",
    "EXIT_INCOMPLETE",
    "EXIT_OK",
    "EXIT_USAGE",
    "AssetTotal",
    "AuditError",
    "AuditReport",
    "AuditRequest",
    "Failure",
    "FeeGroup",
    "Group",
    "LedgerChecker",
    "LedgerReader",
    "Selection",
    "TopicCheck",
    "TopicTrades",
    "audit_ledger",
    "decode_rows",
    "format_report",
    "read_topic",
    "run_audit",
)

logger = logging.getLogger(__name__)

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
"""At least one invariant failed; the report names each trade."""
EXIT_USAGE: Final = 2
EXIT_INCOMPLETE: Final = 3
"""The audit could not run to the end (TDengine or Kafka error): nothing is proven."""

CHECKS: Final = ("completeness", "conservation", "fee_consistency", "topic")
_INT64_MAX: Final = (1 << 63) - 1
_US_PER_MS: Final = 1000
_IN_LIST: Final = 1000
"""Trade ids per ``IN (...)`` list when auditing one user's trades."""

Format = Literal["table", "json", "csv"]
Query = Callable[[str], list[Sequence[Any]]]


class AuditError(BalanceSinkError):
    """The audit cannot run (bad request) or cannot finish (store or Kafka error)."""


# -- the report ------------------------------------------------------------------------


class Failure(msgspec.Struct, frozen=True):
    """One broken invariant, naming the trade (and asset, where it applies)."""

    check: str
    trade_id: int
    message: str
    asset: int | None = None


class AssetTotal(msgspec.Struct, frozen=True):
    """Fee revenue of one asset over the audited range."""

    asset: int
    fee_rows: int
    fee_revenue: int


class TopicCheck(msgspec.Struct, frozen=True):
    """What ``--against-topic`` read."""

    messages: int
    valid_trades: int
    trades_in_range: int
    partitions: list[str]


class AuditReport(msgspec.Struct, frozen=True):
    """The outcome of an audit; ``--format json`` prints exactly this."""

    passed: bool
    database: str
    from_ts: str
    to_ts: str
    user_id: int | None
    account_type: int | None
    trades_checked: int
    rows_checked: int
    windows: int
    duration_s: float
    failures_by_check: dict[str, int]
    failures: list[Failure]
    failures_not_listed: int
    totals: list[AssetTotal]
    topic: TopicCheck | None = None


# -- the checks ------------------------------------------------------------------------


class Group(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """Aggregates of one (trade, credit asset) group: one row of the grouped query.

    Decoded with msgspec in C: every value must be an integer (``bool`` is refused), or
    NULL where a group may have no debit.
    """

    trade_id: int
    asset: int
    rows: int
    min_event: int
    max_event: int
    credits: int
    debit_rows: int
    min_debit_asset: int | None
    max_debit_asset: int | None
    debits: int | None
    fees: int
    min_fee_asset: int
    max_fee_asset: int


class FeeGroup(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """Aggregates of the FeeReceived rows of one (trade, credit asset) group."""

    trade_id: int
    asset: int
    rows: int
    credits: int
    fees: int


GROUP_COLUMNS: Final = (
    "trade_id, credit_asset, COUNT(*), MIN(event_id), MAX(event_id), SUM(credit_amt), "
    "COUNT(debit_amt), MIN(debit_asset), MAX(debit_asset), SUM(debit_amt), SUM(fee), "
    "MIN(fee_asset), MAX(fee_asset)"
)
FEE_COLUMNS: Final = "trade_id, credit_asset, COUNT(*), SUM(credit_amt), SUM(fee)"
_BY_TRADE_ASSET: Final = "GROUP BY trade_id, credit_asset"
_NO_FEE: Final = FeeGroup(0, 0, 0, 0, 0)


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise AuditError(f"TDengine returned {value!r} for {what}, not an integer")
    return value


_T = TypeVar("_T")


def decode_rows(rows: list[Sequence[Any]], kind: type[_T], what: str) -> list[_T]:
    """Result rows as ``kind`` (array-like structs), every value type-checked."""
    try:
        return msgspec.convert(rows, list[kind])  # type: ignore[valid-type]
    except msgspec.ValidationError as exc:
        raise AuditError(f"unexpected {what} result from TDengine: {exc}") from None


class LedgerChecker:
    """Checks trades from their group aggregates and keeps the failures and totals.

    Feed it one window at a time with :meth:`check_window`; memory holds one window's
    groups plus at most ``max_failures`` listed failures (all are counted).
    """

    def __init__(self, *, max_failures: int = 1000) -> None:
        self.max_failures = max_failures
        self.failures: list[Failure] = []
        self.failure_counts: dict[str, int] = dict.fromkeys(CHECKS, 0)
        self.trades = 0
        self.rows = 0
        self._fee_rows: dict[int, int] = {}
        self._fee_revenue: dict[int, int] = {}

    @property
    def failed(self) -> bool:
        return any(self.failure_counts.values())

    def fail(self, check: str, trade_id: int, message: str, asset: int | None = None) -> None:
        """Record one failure (listed while fewer than ``max_failures`` are)."""
        self.failure_counts[check] += 1
        if len(self.failures) < self.max_failures:
            self.failures.append(Failure(check, trade_id, message, asset))

    def totals(self) -> list[AssetTotal]:
        """Fee revenue per asset, by asset id."""
        return [
            AssetTotal(asset, self._fee_rows[asset], self._fee_revenue[asset])
            for asset in sorted(self._fee_rows)
        ]

    def check_window(self, groups: Sequence[Group], fee_groups: Sequence[FeeGroup]) -> list[int]:
        """Check every trade of one window; returns the trade ids seen, ascending."""
        by_trade: dict[int, list[Group]] = {}
        for group in groups:
            found = by_trade.get(group.trade_id)
            if found is None:
                by_trade[group.trade_id] = [group]
            else:
                found.append(group)
        fees: dict[tuple[int, int], FeeGroup] = {}
        fee_rows, fee_revenue = self._fee_rows, self._fee_revenue
        for fee in fee_groups:
            fees[(fee.trade_id, fee.asset)] = fee
            fee_rows[fee.asset] = fee_rows.get(fee.asset, 0) + fee.rows
            fee_revenue[fee.asset] = fee_revenue.get(fee.asset, 0) + fee.credits
        trade_ids = sorted(by_trade)
        rows = 0
        for trade_id in trade_ids:
            trade_groups = by_trade[trade_id]
            if len(trade_groups) == 2:
                a, b = trade_groups
                if a.min_event > b.min_event:
                    a, b = b, a
                rows += a.rows + b.rows
                if self._correct(trade_id, a, b, fees):
                    continue
            else:
                rows += sum(g.rows for g in trade_groups)
            # Something is wrong: find out what, with messages.
            if self._complete(trade_id, trade_groups):
                self._conserved(trade_id, trade_groups)
                self._fees_consistent(trade_id, trade_groups, fees)
        self.trades += len(trade_ids)
        self.rows += rows
        return trade_ids

    @staticmethod
    def _correct(
        trade_id: int, base: Group, quote: Group, fees: dict[tuple[int, int], FeeGroup]
    ) -> bool:
        """Every invariant of a trade at once, for the common case (no messages built)."""
        first = trade_id * EVENTS_PER_TRADE
        if not (
            base.rows == 2 and quote.rows == 2
            and base.min_event == first and base.max_event == first + 2
            and quote.min_event == first + 1 and quote.max_event == first + 3
            and base.debit_rows == 1 and quote.debit_rows == 1
            and base.min_debit_asset == base.max_debit_asset == quote.asset
            and quote.min_debit_asset == quote.max_debit_asset == base.asset
            and base.credits == quote.debits and quote.credits == base.debits
            and base.min_fee_asset == base.max_fee_asset == base.asset
            and quote.min_fee_asset == quote.max_fee_asset == quote.asset
        ):  # fmt: skip
            return False
        base_fee = fees.get((trade_id, base.asset), _NO_FEE)
        quote_fee = fees.get((trade_id, quote.asset), _NO_FEE)
        return (
            base_fee.rows == 1 and quote_fee.rows == 1 and base_fee.fees == 0
            and quote_fee.fees == 0 and base_fee.credits == base.fees
            and quote_fee.credits == quote.fees
        )  # fmt: skip

    def _complete(self, trade_id: int, groups: list[Group]) -> bool:
        first = trade_id * EVENTS_PER_TRADE
        shapes = sorted((g.rows, g.min_event, g.max_event) for g in groups)
        if shapes == [(2, first, first + 2), (2, first + 1, first + 3)]:
            return True
        rows = sum(g.rows for g in groups)
        detail = "; ".join(
            f"credit asset {g.asset}: {g.rows} row(s), event ids {g.min_event}..{g.max_event}"
            for g in sorted(groups, key=lambda g: g.min_event)
        )
        what = (
            f"{rows} of {EVENTS_PER_TRADE} rows" if rows < EVENTS_PER_TRADE
            else f"{rows} rows, expected {EVENTS_PER_TRADE}" if rows > EVENTS_PER_TRADE
            else f"{rows} rows with the wrong event ids"
        )  # fmt: skip
        self.fail(
            "completeness", trade_id,
            f"trade {trade_id}: {what} (expected event ids {first}..{first + 3}: "
            f"{first} and {first + 2} crediting the base asset, {first + 1} and {first + 3} "
            f"the quote asset); found {detail}",
        )  # fmt: skip
        return False

    def _conserved(self, trade_id: int, groups: list[Group]) -> None:
        credits: dict[int, int] = {}
        debits: dict[int, int] = {}
        for g in groups:
            credits[g.asset] = credits.get(g.asset, 0) + g.credits
            if g.debit_rows != 1 or g.min_debit_asset != g.max_debit_asset:
                self.fail(
                    "conservation", trade_id,
                    f"trade {trade_id}: the rows crediting asset {g.asset} carry "
                    f"{g.debit_rows} debit(s) in assets {g.min_debit_asset}..{g.max_debit_asset}"
                    "; expected exactly one debit (the other side's settlement)", g.asset,
                )  # fmt: skip
                return
            assert g.min_debit_asset is not None
            debits[g.min_debit_asset] = debits.get(g.min_debit_asset, 0) + (g.debits or 0)
        for asset in sorted(credits.keys() | debits.keys()):
            credit, debit = credits.get(asset, 0), debits.get(asset, 0)
            if credit != debit:
                self.fail(
                    "conservation", trade_id,
                    f"trade {trade_id}: asset {asset} is not conserved: credits {credit} != "
                    f"debits {debit} (difference {credit - debit})", asset,
                )  # fmt: skip

    def _fees_consistent(
        self, trade_id: int, groups: list[Group], fees: dict[tuple[int, int], FeeGroup]
    ) -> None:
        first = trade_id * EVENTS_PER_TRADE
        for g in sorted(groups, key=lambda g: g.min_event):
            k = g.min_event - first  # 0: base side (k=0 with k=2), 1: quote side (k=1, k=3)
            settled, received = first + k, first + k + 2
            fee = fees.get((trade_id, g.asset), _NO_FEE)
            if fee.rows != 1:
                self.fail(
                    "fee_consistency", trade_id,
                    f"trade {trade_id}: {fee.rows} FeeReceived row(s) credit asset {g.asset}; "
                    f"expected one (event {received})", g.asset,
                )  # fmt: skip
                continue
            if g.min_fee_asset != g.asset or g.max_fee_asset != g.asset:
                self.fail(
                    "fee_consistency", trade_id,
                    f"trade {trade_id}: fees of the rows crediting asset {g.asset} are in asset "
                    f"{g.min_fee_asset}..{g.max_fee_asset}; a fee is taken from what a side "
                    "receives", g.asset,
                )  # fmt: skip
                continue
            if fee.fees:
                self.fail(
                    "fee_consistency", trade_id,
                    f"trade {trade_id}: FeeReceived row {received} carries a fee of {fee.fees}; "
                    "expected 0", g.asset,
                )  # fmt: skip
                continue
            charged = g.fees - fee.fees
            if fee.credits != charged:
                self.fail(
                    "fee_consistency", trade_id,
                    f"trade {trade_id}: FeeReceived row {received} credits {fee.credits} of asset "
                    f"{g.asset} but TradeSettled row {settled} charged a fee of {charged}",
                    g.asset,
                )  # fmt: skip


# -- reading TDengine ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Selection:
    """Which rows to audit: a ts range in microseconds and optional filters."""

    from_us: int
    to_us: int
    user_id: int | None = None
    account_type: int | None = None

    def __post_init__(self) -> None:
        for name in ("from_us", "to_us", "user_id", "account_type"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or not 0 <= value <= _INT64_MAX):
                raise AuditError(f"{name} must be an integer in 0..2**63-1, got {value!r}")
        if self.from_us >= self.to_us:
            raise AuditError("--from must be before --to")


class LedgerReader:
    """Builds the audit's SQL (validated integers only) and runs it through ``query``."""

    def __init__(self, query: Query, database: str, *, window_rows: int) -> None:
        self._query = query
        self._table = f"{quote_identifier(database)}.`{STABLE_NAME}`"
        self._window_rows = window_rows
        self.windows = 0

    @staticmethod
    def _where(a: int, b: int, selection: Selection, extra: str = "") -> str:
        where = f"ts >= {int(a)} AND ts < {int(b)}"
        if selection.account_type is not None:
            where += f" AND account_type = {int(selection.account_type)}"
        return where + extra

    def count(self, a: int, b: int, selection: Selection) -> int:
        rows = self._query(
            f"SELECT COUNT(*) FROM {self._table} WHERE {self._where(a, b, selection)}"
        )
        return _int(rows[0][0], "COUNT(*)") if rows else 0

    def windows_of(self, selection: Selection) -> Iterator[tuple[int, int]]:
        """Windows [a, b) in time order, each with rows and at most ``window_rows`` of them
        (a single microsecond can hold more; it is never split)."""
        stack = [(selection.from_us, selection.to_us)]
        while stack:
            a, b = stack.pop()
            n = self.count(a, b, selection)
            if n == 0:
                continue
            if n > self._window_rows and b - a > 1:
                mid = a + (b - a) // 2
                stack.append((mid, b))
                stack.append((a, mid))
                continue
            self.windows += 1
            yield a, b

    def trade_filters(self, a: int, b: int, selection: Selection) -> Iterator[str]:
        """Extra WHERE terms per query round: none, or ``trade_id IN (...)`` for one user."""
        if selection.user_id is None:
            yield ""
            return
        where = self._where(a, b, selection, f" AND user_id = {int(selection.user_id)}")
        rows = self._query(f"SELECT trade_id FROM {self._table} WHERE {where} GROUP BY trade_id")
        ids = sorted(_int(r[0], "trade_id") for r in rows)
        for i in range(0, len(ids), _IN_LIST):
            yield " AND trade_id IN (" + ",".join(str(int(t)) for t in ids[i : i + _IN_LIST]) + ")"

    def groups(self, a: int, b: int, selection: Selection, extra: str) -> list[Group]:
        where = self._where(a, b, selection, extra)
        sql = f"SELECT {GROUP_COLUMNS} FROM {self._table} WHERE {where} {_BY_TRADE_ASSET}"
        return decode_rows(self._query(sql), Group, "grouped")

    def fee_groups(self, a: int, b: int, selection: Selection, extra: str) -> list[FeeGroup]:
        where = self._where(a, b, selection, f"{extra} AND event_type = {EVENT_TYPE_FEE_RECEIVED}")
        sql = f"SELECT {FEE_COLUMNS} FROM {self._table} WHERE {where} {_BY_TRADE_ASSET}"
        return decode_rows(self._query(sql), FeeGroup, "FeeReceived")


# -- the topic ---------------------------------------------------------------------------


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


# -- the command ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditRequest:
    """Everything ``balance-sink audit`` was asked to do (see ``--help``)."""

    config: str
    from_ms: int
    to_ms: int
    user_id: int | None = None
    account_type: int | None = None
    format: Format = "table"
    against_topic: bool = False
    topic_from_offset: OffsetSpec | None = None
    topic_from_timestamp_ms: int | None = None
    topic_to_offset: OffsetSpec | None = None
    topic_to_timestamp_ms: int | None = None
    fee_schedule: str | None = None
    window_rows: int = 200_000
    max_failures: int = 1000


def audit_ledger(
    query: Query,
    database: str,
    selection: Selection,
    *,
    window_rows: int = 200_000,
    max_failures: int = 1000,
    topic: TopicTrades | None = None,
) -> tuple[LedgerChecker, int]:
    """Run every check over ``selection``; returns the checker and the number of windows."""
    reader = LedgerReader(query, database, window_rows=window_rows)
    checker = LedgerChecker(max_failures=max_failures)
    for a, b in reader.windows_of(selection):
        for extra in reader.trade_filters(a, b, selection):
            seen = checker.check_window(
                reader.groups(a, b, selection, extra), reader.fee_groups(a, b, selection, extra)
            )
            if topic is not None:
                for trade_id in seen:
                    if topic.expected.pop(trade_id, None) is None and trade_id not in topic.known:
                        checker.fail(
                            "topic", trade_id,
                            f"trade {trade_id} has rows but is not a valid trade in the topic "
                            "range",
                        )  # fmt: skip
        logger.debug("window checked", extra=log_context(start=a, end=b, trades=checker.trades))
    if topic is not None:
        for trade_id, (name, partition, offset) in sorted(topic.expected.items()):
            checker.fail(
                "topic", trade_id,
                f"trade {trade_id} ({name}[{partition}] offset {offset}) is on the topic but "
                "has no rows",
            )  # fmt: skip
    return checker, reader.windows


def run_audit(request: AuditRequest) -> int:
    """Run one audit and print its report; returns the exit code (0/1/2/3)."""
    from confluent_kafka import KafkaException

    from worker.ops.config import ConfigErrors, load_settings
    from worker.ops.logs import configure_logging
    from worker.tdengine.transport import open_transport

    try:
        settings = load_settings(request.config)
    except ConfigErrors as exc:
        for problem in exc.problems:
            print(f"config error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        selection = Selection(
            request.from_ms * _US_PER_MS, request.to_ms * _US_PER_MS,
            request.user_id, request.account_type,
        )  # fmt: skip
    except AuditError as exc:
        print(f"balance-sink audit: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(fmt=settings.log.format, level=settings.log.level, secrets=settings.secrets())
    started = time.monotonic()
    topic_trades: TopicTrades | None = None
    topic_check: TopicCheck | None = None
    transport = open_transport(settings.tdengine)

    def query(sql: str) -> list[Sequence[Any]]:
        return transport.query(sql).rows

    try:
        if request.against_topic:
            topic_trades = TopicTrades(selection)
            topic_check = read_topic(settings, request, topic_trades)
        checker, windows = audit_ledger(
            query, settings.tdengine.database, selection, window_rows=request.window_rows,
            max_failures=request.max_failures, topic=topic_trades,
        )  # fmt: skip
    except (BalanceSinkError, KafkaException) as exc:  # store, Kafka, or a lost range
        print(f"balance-sink audit: could not complete: {exc}", file=sys.stderr)
        return EXIT_INCOMPLETE
    finally:
        transport.close()
    listed = len(checker.failures)
    report = AuditReport(
        passed=not checker.failed,
        database=settings.tdengine.database,
        from_ts=format_timestamp_ms(request.from_ms),
        to_ts=format_timestamp_ms(request.to_ms),
        user_id=request.user_id,
        account_type=request.account_type,
        trades_checked=checker.trades,
        rows_checked=checker.rows,
        windows=windows,
        duration_s=round(time.monotonic() - started, 3),
        failures_by_check=checker.failure_counts,
        failures=checker.failures,
        failures_not_listed=sum(checker.failure_counts.values()) - listed,
        totals=checker.totals(),
        topic=topic_check,
    )
    logger.info(
        "audit finished", extra=log_context(passed=report.passed, trades=report.trades_checked,
                                            failures=sum(report.failures_by_check.values())),
    )  # fmt: skip
    sys.stdout.write(format_report(report, request.format))
    return EXIT_OK if report.passed else EXIT_FAILED


# -- formatting ---------------------------------------------------------------------------


def format_report(report: AuditReport, fmt: Format) -> str:
    """The report as a human table, JSON, or CSV (one line per failure and per total)."""
    if fmt == "json":
        return (msgspec.json.format(msgspec.json.encode(report)) + b"\n").decode()
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(("record", "check", "trade_id", "asset", "rows", "amount", "message"))
        for f in report.failures:
            writer.writerow(("failure", f.check, f.trade_id, f.asset if f.asset is not None else "",
                             "", "", f.message))  # fmt: skip
        for t in report.totals:
            writer.writerow(("fee_revenue", "totals", "", t.asset, t.fee_rows, t.fee_revenue, ""))
        return out.getvalue()
    return _table(report)


def _table(report: AuditReport) -> str:
    scope = []
    if report.user_id is not None:
        scope.append(f"user {report.user_id}")
    if report.account_type is not None:
        scope.append(f"account type {report.account_type}")
    lines = [
        f"audit of `{report.database}` from {report.from_ts} to {report.to_ts}"
        + (f" ({', '.join(scope)})" if scope else ""),
        f"{report.trades_checked:,} trades, {report.rows_checked:,} rows, "
        f"{report.windows} window(s), {report.duration_s:.1f} s",
    ]
    if report.topic is not None:
        t = report.topic
        lines.append(
            f"topic: {t.messages:,} messages, {t.valid_trades:,} valid trades, "
            f"{t.trades_in_range:,} in the audited range"
        )
    lines.append("")
    checks = CHECKS if report.topic is not None else CHECKS[:-1]
    width = max(len(c) for c in checks)
    for check in checks:
        count = report.failures_by_check.get(check, 0)
        verdict = "PASS" if count == 0 else f"FAIL  {count:,} failure(s)"
        lines.append(f"  {check:<{width}}  {verdict}")
    if report.failures:
        lines.append("")
        lines.append("failures:")
        lines.extend(f"  [{f.check}] {f.message}" for f in report.failures)
        if report.failures_not_listed:
            lines.append(f"  ... and {report.failures_not_listed:,} more (raise --max-failures)")
    lines.append("")
    lines.append("fee revenue per asset (FeeReceived credits):")
    if report.totals:
        lines.append(f"  {'asset':>10}  {'rows':>10}  {'revenue':>24}")
        lines.extend(
            f"  {t.asset:>10}  {t.fee_rows:>10,}  {t.fee_revenue:>24,}" for t in report.totals
        )
    else:
        lines.append("  (no fee rows in the range)")
    lines.append("")
    lines.append("RESULT: " + ("PASS" if report.passed else "FAIL"))
    return "\n".join(lines) + "\n"
