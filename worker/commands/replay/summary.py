"""The outcome of a replay: the summary, printed and written as JSON."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import msgspec

from worker.commands.replay.request import ReplayRequest
from worker.engine.dead_letters import ListedDeadLetter
from worker.engine.engine import Totals
from worker.engine.ranges import PartitionRange

__all__ = ("PartitionSummary", "ReplaySummary", "format_summary", "report", "summarize")

TP = tuple[str, int]


class PartitionSummary(msgspec.Struct, frozen=True):
    topic: str
    partition: int
    start: int
    end: int
    next_offset: int


class ReplaySummary(msgspec.Struct, frozen=True):
    """The outcome of one replay; printed, and written as JSON with ``--summary-file``."""

    completed: bool
    dry_run: bool
    messages_read: int
    rows_written: int
    """Rows stored (in a dry run: rows derived, none written)."""
    dead_lettered: dict[str, int]
    """Rejected messages by reason (sent to the dead-letter topic, or listed)."""
    duration_s: float
    rate_messages_per_s: float
    partitions: list[PartitionSummary]
    dead_letter_topic: str | None
    commit_group: str | None
    fee_schedule: str
    error: str | None = None
    invalid: list[ListedDeadLetter] | None = None
    """Each rejected message, when they were listed instead of dead-lettered."""


def summarize(
    request: ReplayRequest,
    *,
    ranges: Iterable[PartitionRange],
    totals: Totals,
    next_offsets: Mapping[TP, int],
    complete: bool,
    schedule_path: str,
    dead_letter_topic: str | None,
    listed: list[ListedDeadLetter] | None,
    started: float,
    error: str | None,
) -> ReplaySummary:
    """The summary of a replay that started at ``started`` (monotonic) and ends now."""
    duration = time.monotonic() - started
    completed = error is None and complete
    if error is None and not completed:
        error = "stopped before the end; run again with --resume to continue"
    return ReplaySummary(
        completed=completed,
        dry_run=request.dry_run,
        messages_read=totals.messages,
        rows_written=totals.rows,
        dead_lettered=dict(sorted(totals.dead.items())),
        duration_s=round(duration, 3),
        rate_messages_per_s=round(totals.messages / duration, 1) if duration > 0 else 0.0,
        partitions=[
            PartitionSummary(*r, next_offset=next_offsets[(r.topic, r.partition)]) for r in ranges
        ],
        dead_letter_topic=dead_letter_topic,
        commit_group=request.commit_group,
        fee_schedule=schedule_path,
        error=error,
        invalid=listed if dead_letter_topic is None else None,
    )


def report(summary: ReplaySummary, path: str | None) -> None:
    """Print the summary; write it as JSON to ``path`` when given."""
    print(format_summary(summary))
    if path:
        Path(path).write_bytes(msgspec.json.format(msgspec.json.encode(summary)) + b"\n")


def format_summary(summary: ReplaySummary) -> str:
    """The human summary printed at the end of a replay."""
    state = "complete" if summary.completed else "INCOMPLETE"
    mode = " (dry run: nothing written)" if summary.dry_run else ""
    written = "rows derived" if summary.dry_run else "rows written"
    dead = ", ".join(f"{r}={n}" for r, n in summary.dead_lettered.items()) or "none"
    where = (
        f"to {summary.dead_letter_topic}" if summary.dead_letter_topic else "listed in the summary"
    )
    lines = [
        f"replay {state}{mode}",
        f"  messages read   {summary.messages_read:,}",
        f"  {written:<15} {summary.rows_written:,}",
        f"  dead-lettered   {sum(summary.dead_lettered.values()):,} ({dead}) {where}",
        f"  duration        {summary.duration_s:.1f} s",
        f"  rate            {summary.rate_messages_per_s:,.0f} messages/s",
    ]
    for p in summary.partitions:
        lines.append(f"  {p.topic}[{p.partition}]  {p.start}..{p.end}  next {p.next_offset}")
    if summary.error:
        lines.append(f"  error: {summary.error}")
    return "\n".join(lines)
