"""``balance-sink audit`` itself: load, read, check, report, exit code."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from worker.commands.audit.checks import LedgerChecker
from worker.commands.audit.errors import AuditError
from worker.commands.audit.ledger_reader import LedgerReader, Query, Selection
from worker.commands.audit.report import AuditReport, Format, TopicCheck, format_report
from worker.commands.audit.topic_reader import TopicTrades, read_topic
from worker.commands.specs import OffsetSpec, format_timestamp_ms
from worker.errors import BalanceSinkError
from worker.exit_codes import EXIT_FAILED, EXIT_INCOMPLETE, EXIT_OK, EXIT_USAGE
from worker.ops.logs import log_context

__all__ = ("AuditRequest", "audit_ledger", "run_audit")

logger = logging.getLogger(__name__)

_US_PER_MS: Final = 1000


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
