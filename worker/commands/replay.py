"""``balance-sink replay``: re-read a bounded range of the trade topic into TDengine.

The range is fixed when the replay starts: per partition, a start (an offset, the
first offset at or after a time, the beginning, or the offsets a progress group
committed) and an end (exclusive: an offset, a time, or by default the high watermark
read at start). The replay stops by itself once every partition reached its end; it
never follows new messages.

It reads with ``assign()``, so it never joins, rebalances or commits the live
worker's consumer group. It goes through the worker's own pipeline
(:mod:`worker.engine.pipeline`: derive, batch, write, dead-letter) with the same batch
limits, so its rows are the worker's rows: (subtable, ts, event_id) keyed, so a
replay over rows already stored overwrites them with the same values, and a replay
with a corrected fee schedule overwrites exactly the rows whose values change.
With ``--commit-group NAME`` the offsets of every stored batch are committed under
NAME (after its rows and dead letters are acknowledged, as the worker does), and
``--resume`` continues from them. A start below a partition's low watermark (its
messages are gone) fails before anything is read; an offset lost during the replay
stops it (``auto.offset.reset=error``): nothing is ever skipped silently.
"""

from __future__ import annotations

import logging
import random
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final, Literal, NamedTuple, Protocol

import msgspec
from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, TopicPartition

from worker.commands.specs import OffsetSpec
from worker.core.deriver import Deriver
from worker.core.fee_schedule import load_fee_schedule
from worker.engine.batch import Batch, Rejected
from worker.engine.dead_letters import DeadLetterError, DeadLetterProducer
from worker.engine.pipeline import DeadLetters, derive_messages, store_batch
from worker.engine.sink import MessageRows, Sink, SinkResult
from worker.errors import BalanceSinkError, ConfigError
from worker.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from worker.ops.config import ConfigErrors, Settings, load_settings
from worker.ops.kafka_logs import kafka_client_config
from worker.ops.logs import configure_logging, log_context
from worker.tdengine.errors import FatalStoreError, TransientStoreError

__all__ = (
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CountingSink",
    "InvalidMessage",
    "ListedDeadLetters",
    "PartitionRange",
    "PartitionSummary",
    "Progress",
    "ReplayError",
    "ReplayRequest",
    "ReplaySummary",
    "Replayer",
    "RetentionLostError",
    "format_summary",
    "make_progress",
    "plan_ranges",
    "resolve_ranges",
    "run_replay",
)

logger = logging.getLogger(__name__)


_CONSUME_BATCH: Final = 2000
_METADATA_TIMEOUT_S: Final = 15.0
_RETRY_INITIAL_S: Final = 0.5
_RETRY_MAX_S: Final = 30.0

TP = tuple[str, int]
ProgressMode = Literal["auto", "bar", "log", "off"]


class ReplayError(BalanceSinkError):
    """The replay cannot start or continue; the message says why."""


class RetentionLostError(ReplayError):
    """A requested start is below the partition's low watermark: those messages are gone."""


class PartitionRange(NamedTuple):
    """Offsets ``start`` (inclusive) to ``end`` (exclusive) of one partition."""

    topic: str
    partition: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return max(0, self.end - self.start)


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    """Everything ``balance-sink replay`` was asked to do (see ``--help``)."""

    config: str
    from_offset: OffsetSpec | None = None
    from_timestamp_ms: int | None = None
    from_beginning: bool = False
    to_offset: OffsetSpec | None = None
    to_timestamp_ms: int | None = None
    topics: tuple[str, ...] = ()
    commit_group: str | None = None
    resume: bool = False
    fee_schedule: str | None = None
    dry_run: bool = False
    dead_letter_topic: str | None = None
    no_dead_letter: bool = False
    summary_file: str | None = None
    progress: ProgressMode = "auto"
    progress_interval_s: float = 10.0
    max_retry_s: float = 300.0

    @property
    def has_start(self) -> bool:
        return (
            self.from_offset is not None
            or self.from_timestamp_ms is not None
            or self.from_beginning
        )


class InvalidMessage(msgspec.Struct, frozen=True):
    """A rejected message as listed in the summary (``--no-dead-letter``, ``--dry-run``)."""

    topic: str
    partition: int
    offset: int
    reason: str
    detail: str
    value: str | None


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
    invalid: list[InvalidMessage] | None = None
    """Each rejected message, when they were listed instead of dead-lettered."""


# -- planning ----------------------------------------------------------------------


def _select(spec: OffsetSpec, partitions: Sequence[TP], what: str) -> dict[TP, int]:
    if isinstance(spec, int):
        return dict.fromkeys(partitions, spec)
    known = {p for _, p in partitions}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ReplayError(f"{what}: no partition {unknown[0]} (partitions: {sorted(known)})")
    return {tp: spec[tp[1]] for tp in partitions if tp[1] in spec}


def plan_ranges(
    starts: Mapping[TP, int],
    watermarks: Mapping[TP, tuple[int, int]],
    ends: Mapping[TP, int] | None = None,
) -> list[PartitionRange]:
    """The range of every selected partition, checked against its (low, high) watermarks.

    A start below the low watermark raises :class:`RetentionLostError` (those messages
    were deleted; jumping to the low watermark would skip them silently). A start or
    end beyond the high watermark is brought back to it (there is nothing there yet),
    and an end before the start leaves the partition empty; both are logged.
    """
    ranges: list[PartitionRange] = []
    lost: list[str] = []
    for tp in sorted(starts):
        topic, partition = tp
        low, high = watermarks[tp]
        start = starts[tp]
        if start < low:
            lost.append(
                f"{topic}[{partition}]: start offset {start} is below the low watermark {low} "
                f"(offsets {start}..{low - 1} were deleted by retention)"
            )
            continue
        if start > high:
            logger.warning(
                "start beyond the high watermark: nothing to replay in this partition",
                extra=log_context(topic=topic, partition=partition, start=start, high=high),
            )
            start = high
        end = high if ends is None or tp not in ends else ends[tp]
        if end > high:
            logger.warning(
                "end beyond the high watermark read at start: stopping there",
                extra=log_context(topic=topic, partition=partition, end=end, high=high),
            )
            end = high
        if end < start:
            logger.warning(
                "end before start: nothing to replay in this partition",
                extra=log_context(topic=topic, partition=partition, start=start, end=end),
            )
            end = start
        ranges.append(PartitionRange(topic, partition, start, end))
    if lost:
        raise RetentionLostError(
            "cannot replay: " + "; ".join(lost) + ". Start at or above the low watermark "
            "(e.g. --from-beginning) and backfill the lost range from another source."
        )
    return ranges


class _OffsetSource(Protocol):
    """The consumer calls planning needs (a confluent_kafka ``Consumer`` has them)."""

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any: ...
    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int]: ...
    def offsets_for_times(
        self, partitions: list[TopicPartition], timeout: float = -1
    ) -> list[TopicPartition]: ...
    def committed(
        self, partitions: list[TopicPartition], timeout: float = -1
    ) -> list[TopicPartition]: ...


def _partitions(source: _OffsetSource, topics: Sequence[str]) -> list[TP]:
    found: list[TP] = []
    for topic in topics:
        metadata = source.list_topics(topic, timeout=_METADATA_TIMEOUT_S).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            problem = metadata.error if metadata is not None else "no metadata"
            raise ReplayError(f"topic {topic!r} is not available: {problem}")
        found.extend((topic, p) for p in sorted(metadata.partitions))
    return found


def _times_to_offsets(
    source: _OffsetSource, partitions: Sequence[TP], ms: int, high: Mapping[TP, int]
) -> dict[TP, int]:
    """The first offset whose timestamp is at or after ``ms``; the high watermark if none."""
    asked = [TopicPartition(t, p, ms) for t, p in partitions]
    offsets: dict[TP, int] = {}
    for tp in source.offsets_for_times(asked, timeout=_METADATA_TIMEOUT_S):
        if tp.error is not None:
            raise ReplayError(f"{tp.topic}[{tp.partition}]: offsets_for_times: {tp.error}")
        key = (tp.topic, tp.partition)
        offsets[key] = tp.offset if tp.offset >= 0 else high[key]
    return offsets


def resolve_ranges(
    source: _OffsetSource, topics: Sequence[str], request: ReplayRequest
) -> list[PartitionRange]:
    """Read the topic's partitions and watermarks and turn ``request`` into ranges."""
    partitions = _partitions(source, topics)
    watermarks: dict[TP, tuple[int, int]] = {}
    for topic, partition in partitions:
        marks = source.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=_METADATA_TIMEOUT_S
        )
        if not marks:  # None when the broker did not answer in time
            raise ReplayError(f"{topic}[{partition}]: no watermarks (broker not reachable?)")
        watermarks[(topic, partition)] = (int(marks[0]), int(marks[1]))
    high = {tp: marks[1] for tp, marks in watermarks.items()}
    starts: dict[TP, int] = {}
    if request.from_beginning:
        starts = {tp: watermarks[tp][0] for tp in partitions}
    elif request.from_offset is not None:
        starts = _select(request.from_offset, partitions, "--from-offset")
    elif request.from_timestamp_ms is not None:
        starts = _times_to_offsets(source, partitions, request.from_timestamp_ms, high)
    if request.resume:
        asked = [TopicPartition(t, p) for t, p in partitions]
        resumed = 0
        for tp in source.committed(asked, timeout=_METADATA_TIMEOUT_S):
            if tp.error is not None:
                raise ReplayError(f"{tp.topic}[{tp.partition}]: committed offset: {tp.error}")
            if tp.offset != OFFSET_INVALID and tp.offset >= 0:
                starts[(tp.topic, tp.partition)] = tp.offset
                resumed += 1
        missing = [tp for tp in partitions if tp not in starts]
        if missing and not request.has_start:
            raise ReplayError(
                f"--resume: group {request.commit_group!r} has no committed offset for "
                f"{', '.join(f'{t}[{p}]' for t, p in missing)}; add a start "
                "(--from-beginning, --from-offset or --from-timestamp) for those partitions"
            )
        logger.info("resuming", extra=log_context(group=request.commit_group, partitions=resumed))
    ends: dict[TP, int] | None = None
    if request.to_offset is not None:
        ends = _select(request.to_offset, partitions, "--to-offset")
    elif request.to_timestamp_ms is not None:
        ends = _times_to_offsets(source, partitions, request.to_timestamp_ms, high)
    return plan_ranges(starts, watermarks, ends)


# -- dry run and listed dead letters -----------------------------------------------


class CountingSink:
    """``--dry-run``: counts the rows it is given and stores nothing."""

    def write(self, batch: Sequence[MessageRows]) -> SinkResult:
        return SinkResult(sum(len(rows.events) for rows in batch), [])

    def close(self) -> None:
        pass


class ListedDeadLetters:
    """Keeps rejected messages for the summary instead of producing them."""

    def __init__(self) -> None:
        self.items: list[InvalidMessage] = []

    def send(self, rejected: Rejected) -> None:
        key = rejected.key
        value = None if rejected.value is None else rejected.value.decode("utf-8", "replace")
        self.items.append(
            InvalidMessage(
                key.topic, key.partition, key.offset, rejected.reason, rejected.detail, value
            )
        )

    def flush(self, timeout_s: float) -> None:
        pass

    def close(self, timeout_s: float = 10.0) -> None:
        pass


# -- progress ----------------------------------------------------------------------


class Progress(Protocol):
    """Shows how far the replay got: ``update(done)`` with offsets covered so far."""

    def update(self, done: int) -> None: ...
    def close(self) -> None: ...


class _NoProgress:
    def update(self, done: int) -> None:
        pass

    def close(self) -> None:
        pass


class _LogProgress:
    """One log line every ``interval_s`` and a last one at the end: done, percent, rate, ETA."""

    def __init__(self, total: int, interval_s: float, clock: Callable[[], float]) -> None:
        self._total = total
        self._interval = interval_s
        self._clock = clock
        self._started = clock()
        self._last = self._started
        self._done = 0

    def update(self, done: int) -> None:
        self._done = done
        now = self._clock()
        if now - self._last >= self._interval:
            self._last = now
            self._log(now)

    def _log(self, now: float) -> None:
        done = self._done
        rate = done / max(now - self._started, 1e-9)
        eta = (self._total - done) / rate if rate > 0 else None
        logger.info(
            "replay progress",
            extra=log_context(
                done=done, total=self._total,
                percent=round(100 * done / self._total, 1) if self._total else 100.0,
                messages_per_s=round(rate), eta_s=None if eta is None else round(eta),
            ),
        )  # fmt: skip

    def close(self) -> None:
        self._log(self._clock())


class _RichProgress:
    """A rich progress bar: percent, offsets done/total, messages/s and ETA."""

    def __init__(self, total: int, description: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress as RichProgress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(file=sys.stdout),
        )
        self._task = self._bar.add_task(description, total=total, rate="")
        self._bar.start()

    def update(self, done: int) -> None:
        task = self._bar.tasks[0]
        speed = task.speed
        rate = f"{speed:,.0f} msg/s" if speed else ""
        self._bar.update(self._task, completed=done, rate=rate)

    def close(self) -> None:
        self._bar.stop()


def make_progress(mode: ProgressMode, total: int, interval_s: float) -> Progress:
    """A bar on a terminal (``auto``), log lines otherwise, or nothing (``off``)."""
    if mode == "off":
        return _NoProgress()
    if mode == "bar" or (mode == "auto" and sys.stdout.isatty()):
        return _RichProgress(total, "replay")
    return _LogProgress(total, interval_s, time.monotonic)


# -- the replay loop -----------------------------------------------------------------


@dataclass(slots=True)
class _Totals:
    messages: int = 0
    rows: int = 0
    dead: Counter[str] = field(default_factory=Counter)


class Replayer:
    """Reads assigned ranges to their end through the worker's pipeline.

    Parameters
    ----------
    consumer:
        A consumer whose ``group.id`` is the progress group (or a throwaway one); it is
        only ever ``assign()``-ed, never subscribed.
    ranges:
        What to read; empty ranges are skipped.
    commit:
        Commit each stored batch's offsets (plus one) to the consumer's group.
    max_rows, max_bytes, linger_s:
        The worker's batch limits (``[batch]``).
    max_retry_s:
        How long a failing batch write is retried (with backoff) before giving up.
    """

    def __init__(
        self,
        *,
        consumer: Consumer,
        ranges: Sequence[PartitionRange],
        deriver: Deriver,
        sink: Sink,
        dead_letters: DeadLetters,
        commit: bool,
        max_rows: int,
        max_bytes: int,
        linger_s: float,
        poll_timeout_s: float,
        dead_letter_timeout_s: float,
        max_retry_s: float,
        progress: Progress | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._consumer = consumer
        self._ranges = {(r.topic, r.partition): r for r in ranges}
        self._deriver = deriver
        self._sink = sink
        self._dead_letters = dead_letters
        self._commit_enabled = commit
        self._max_rows = max_rows
        self._max_bytes = max_bytes
        self._linger_s = linger_s
        self._poll_timeout_s = poll_timeout_s
        self._dead_letter_timeout_s = dead_letter_timeout_s
        self._max_retry_s = max_retry_s
        self._progress = progress or _NoProgress()
        self._clock = clock
        self._batch = Batch()
        self._next = {tp: r.start for tp, r in self._ranges.items()}
        self._pending = {tp for tp, r in self._ranges.items() if r.size}
        self._stopping = False
        self.totals = _Totals()

    @property
    def next_offsets(self) -> dict[TP, int]:
        """The next offset to read per partition (the end once a partition is done)."""
        return dict(self._next)

    @property
    def complete(self) -> bool:
        """Every range was read and stored."""
        return not self._pending and not len(self._batch)

    @property
    def total(self) -> int:
        """Offsets covered by all ranges."""
        return sum(r.size for r in self._ranges.values())

    def stop(self) -> None:
        """Finish early: store and commit what was read, then return."""
        self._stopping = True

    def run(self) -> None:
        """Read every range to its end (or until :meth:`stop`); raises on a fatal error."""
        if self._commit_enabled and self._ranges:
            # Record every start first: a --resume after any stop then knows where each
            # partition begins, even one that had nothing read yet.
            self._commit({tp: r.start for tp, r in self._ranges.items()})
        if self._pending:
            self._consumer.assign(
                [TopicPartition(t, p, self._ranges[(t, p)].start) for t, p in sorted(self._pending)]
            )
        while self._pending and not self._stopping:
            messages = self._consumer.consume(_CONSUME_BATCH, self._poll_timeout_s)
            if messages:
                self._take(messages)
            if self._batch.is_due(
                max_rows=self._max_rows, max_bytes=self._max_bytes, linger_s=self._linger_s
            ):
                self._flush()
            self._progress.update(self._done())
        self._flush()
        self._progress.update(self._done())

    def _done(self) -> int:
        return sum(self._next[tp] - r.start for tp, r in self._ranges.items())

    def _take(self, messages: list[Any]) -> None:
        keep = []
        for msg in messages:
            error = msg.error()
            if error is not None:
                self._on_error(msg, error)
                continue
            tp = (msg.topic(), msg.partition())
            if tp not in self._pending:
                continue
            if msg.offset() >= self._ranges[tp].end:
                self._finish(tp)
                continue
            keep.append(msg)
        if not keep:
            return
        taken = derive_messages(self._deriver.derive, keep, self._on_unexpected_error)
        self._batch.add_consumed(taken.rows, taken.rejected, taken.row_count, taken.last_offsets)
        self.totals.messages += len(keep)
        for tp, last in taken.last_offsets.items():
            self._next[tp] = max(self._next[tp], last + 1)  # an EOF in this poll may be past it
            if last + 1 >= self._ranges[tp].end:
                self._finish(tp)

    def _on_error(self, msg: Any, error: KafkaError) -> None:
        code = error.code()
        if code == KafkaError._PARTITION_EOF:
            tp = (msg.topic(), msg.partition())
            if tp in self._pending and msg.offset() >= self._ranges[tp].end:
                self._finish(tp)
            return
        if code == KafkaError._AUTO_OFFSET_RESET or error.fatal():
            raise ReplayError(
                f"Kafka: {error.str()} ({error.name()}); offsets were lost during the replay "
                "or the client cannot go on"
            )
        logger.warning("consumer error: %s", error.str(), extra=log_context(code=error.name()))

    @staticmethod
    def _on_unexpected_error(error: KafkaError) -> None:  # pragma: no cover - filtered above
        raise ReplayError(f"Kafka: {error.str()}")

    def _finish(self, tp: TP) -> None:
        if tp not in self._pending:
            return
        self._pending.discard(tp)
        self._next[tp] = self._ranges[tp].end
        self._consumer.pause([TopicPartition(*tp)])
        logger.info(
            "partition done", extra=log_context(topic=tp[0], partition=tp[1],
                                                end=self._ranges[tp].end)
        )  # fmt: skip

    def _flush(self) -> None:
        batch = self._batch
        if not len(batch):
            return
        deadline = self._clock() + self._max_retry_s
        backoff = _RETRY_INITIAL_S
        while True:
            try:
                stored = store_batch(
                    batch, self._sink, self._dead_letters, self._dead_letter_timeout_s
                )
                break
            except TransientStoreError as exc:
                if self._clock() + backoff > deadline:
                    raise ReplayError(
                        f"TDengine kept failing for {self._max_retry_s:.0f} s: {exc}"
                    ) from exc
                delay = backoff * (0.5 + random.random() / 2)
                logger.warning(
                    "batch write failed, retrying: %s", exc,
                    extra=log_context(retry_in_s=round(delay, 2), rows=batch.row_count),
                )  # fmt: skip
                time.sleep(delay)
                backoff = min(backoff * 2, _RETRY_MAX_S)
        self.totals.rows += stored.rows_written
        self.totals.dead.update(item.reason for item in stored.dead_lettered)
        if self._commit_enabled:
            self._commit({tp: offset + 1 for tp, offset in batch.high_offsets.items()})
        logger.debug(
            "flushed", extra=log_context(messages=len(batch), rows=stored.rows_written,
                                         dead_lettered=len(stored.dead_lettered)),
        )  # fmt: skip
        self._batch = Batch()

    def _commit(self, next_offsets: Mapping[TP, int]) -> None:
        """Commit the next offset to read per partition to the progress group."""
        offsets = [TopicPartition(t, p, o) for (t, p), o in sorted(next_offsets.items())]
        try:
            results = self._consumer.commit(offsets=offsets, asynchronous=False) or []
        except KafkaException as exc:
            # The rows are stored: a failed commit only means a resume re-reads them.
            logger.warning("progress commit failed; a resume re-reads these messages: %s", exc)
            return
        for tp in results:
            if tp.error is not None:
                logger.warning(
                    "progress commit failed for a partition: %s", tp.error,
                    extra=log_context(topic=tp.topic, partition=tp.partition),
                )  # fmt: skip


# -- the command ---------------------------------------------------------------------


def _consumer_config(settings: Settings, group: str) -> dict[str, Any]:
    config: dict[str, Any] = dict(settings.consumer_config())
    config.update(
        {
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            # An offset that disappears while replaying must stop the replay, not jump.
            "auto.offset.reset": "error",
        }
    )
    for key in ("statistics.interval.ms", "partition.assignment.strategy"):
        config.pop(key, None)
    return config


def _fail(message: str) -> int:
    print(f"balance-sink replay: {message}", file=sys.stderr)
    return EXIT_USAGE


def _load(request: ReplayRequest) -> tuple[Settings, str] | str:
    try:
        settings = load_settings(request.config)
    except ConfigErrors as exc:
        return "\n".join(f"config error: {p}" for p in exc.problems)
    schedule = request.fee_schedule or settings.fee_schedule
    return settings, schedule


def run_replay(request: ReplayRequest) -> int:
    """Run one replay; returns the exit code (0 done, 1 stopped early, 2 nothing started)."""
    loaded = _load(request)
    if isinstance(loaded, str):
        print(loaded, file=sys.stderr)
        return EXIT_USAGE
    settings, schedule_path = loaded
    try:
        deriver = Deriver(load_fee_schedule(schedule_path))
    except ConfigError as exc:
        return _fail(f"fee schedule error: {exc}")
    if request.resume and not request.commit_group:
        return _fail("--resume needs --commit-group (the group whose offsets to resume from)")
    if request.commit_group == settings.kafka.group_id:
        return _fail(
            f"--commit-group {request.commit_group!r} is the live worker's group; "
            "use a separate group so the worker's offsets never move"
        )
    if not request.has_start and not request.resume:
        return _fail("give a start: --from-offset, --from-timestamp, --from-beginning or --resume")
    topics = request.topics or settings.kafka.topics
    listed = request.dry_run or request.no_dead_letter
    dead_letter_topic = None if listed else (
        request.dead_letter_topic or settings.kafka.dead_letter_topic
    )  # fmt: skip
    if dead_letter_topic in topics:
        return _fail(f"dead-letter topic {dead_letter_topic!r} is one of the replayed topics")
    configure_logging(fmt=settings.log.format, level=settings.log.level, secrets=settings.secrets())
    group = request.commit_group or f"balance-sink-replay-{uuid.uuid4().hex[:12]}"
    consumer = Consumer(kafka_client_config(_consumer_config(settings, group)))
    started = time.monotonic()
    try:
        try:
            ranges = resolve_ranges(consumer, topics, request)
        except (ReplayError, KafkaException) as exc:
            return _fail(str(exc))
        return _replay(request, settings, schedule_path, deriver, consumer, ranges,
                       dead_letter_topic, started)  # fmt: skip
    finally:
        consumer.close()


def _replay(
    request: ReplayRequest,
    settings: Settings,
    schedule_path: str,
    deriver: Deriver,
    consumer: Consumer,
    ranges: list[PartitionRange],
    dead_letter_topic: str | None,
    started: float,
) -> int:
    logger.info(
        "replay planned",
        extra=log_context(
            ranges=[f"{r.topic}[{r.partition}] {r.start}..{r.end}" for r in ranges],
            messages=sum(r.size for r in ranges), dry_run=request.dry_run,
            commit_group=request.commit_group, fee_schedule=schedule_path,
            dead_letter_topic=dead_letter_topic,
        ),
    )  # fmt: skip
    sink: Sink
    if request.dry_run:
        sink = CountingSink()
    else:
        from worker.tdengine.sink import TDengineSink

        try:
            sink = TDengineSink.connect(settings.tdengine)
        except BalanceSinkError as exc:
            print(f"balance-sink replay: TDengine: {exc}", file=sys.stderr)
            return EXIT_FAILED
    listed = ListedDeadLetters()
    dead_letters: DeadLetters = (
        listed if dead_letter_topic is None
        else DeadLetterProducer(dead_letter_topic, settings.consumer_config())
    )  # fmt: skip
    loop = settings.loop
    progress = make_progress(
        request.progress, sum(r.size for r in ranges), request.progress_interval_s
    )
    replayer = Replayer(
        consumer=consumer, ranges=ranges, deriver=deriver, sink=sink,
        dead_letters=dead_letters, commit=bool(request.commit_group) and not request.dry_run,
        max_rows=loop.max_rows, max_bytes=loop.max_bytes, linger_s=loop.linger_ms / 1000,
        poll_timeout_s=loop.poll_timeout_ms / 1000,
        dead_letter_timeout_s=loop.dead_letter_timeout_s, max_retry_s=request.max_retry_s,
        progress=progress,
    )  # fmt: skip
    previous = _install_stop(replayer)
    error: str | None = None
    try:
        replayer.run()
    except (ReplayError, FatalStoreError, DeadLetterError, KafkaException) as exc:
        error = str(exc)
        logger.critical("replay stopped: %s", exc)
    finally:
        _restore(previous)
        progress.close()
        dead_letters.close()
        sink.close()
    summary = _summary(
        request, replayer, ranges, schedule_path, dead_letter_topic, listed, started, error
    )
    _report(summary, request.summary_file)
    return EXIT_OK if summary.completed else EXIT_FAILED


def _install_stop(replayer: Replayer) -> dict[int, Any]:
    def handler(signum: int, frame: FrameType | None) -> None:
        logger.info("stop requested", extra=log_context(signal=signal.Signals(signum).name))
        replayer.stop()

    previous: dict[int, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, handler)
    return previous


def _restore(previous: Mapping[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _summary(
    request: ReplayRequest,
    replayer: Replayer,
    ranges: Iterable[PartitionRange],
    schedule_path: str,
    dead_letter_topic: str | None,
    listed: ListedDeadLetters,
    started: float,
    error: str | None,
) -> ReplaySummary:
    duration = time.monotonic() - started
    totals = replayer.totals
    nexts = replayer.next_offsets
    completed = error is None and replayer.complete
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
            PartitionSummary(r.topic, r.partition, r.start, r.end, nexts[(r.topic, r.partition)])
            for r in ranges
        ],
        dead_letter_topic=dead_letter_topic,
        commit_group=request.commit_group,
        fee_schedule=schedule_path,
        error=error,
        invalid=listed.items if dead_letter_topic is None else None,
    )


def _report(summary: ReplaySummary, path: str | None) -> None:
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
