"""The audit's report, and its table, JSON and CSV forms."""

from __future__ import annotations

import csv
import io
from typing import Final, Literal

import msgspec

__all__ = (
    "CHECKS",
    "AssetTotal",
    "AuditReport",
    "Failure",
    "Format",
    "TopicCheck",
    "format_report",
)

CHECKS: Final = ("completeness", "conservation", "fee_consistency", "topic")

Format = Literal["table", "json", "csv"]


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
