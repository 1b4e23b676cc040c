"""Planning a replay: from the request and the topic's watermarks to offset ranges.

The range is fixed when the replay starts: per partition, a start (an offset, the
first offset at or after a time, the beginning, or the offsets a progress group
committed) and an end (exclusive: an offset, a time, or by default the high watermark
read at start). A start below a partition's low watermark fails before anything is
read (:class:`~worker.commands.replay.errors.RetentionLostError`): jumping past
deleted messages would skip trades silently.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol

from confluent_kafka import OFFSET_INVALID, KafkaError, TopicPartition

from worker.commands.replay.errors import RangeError, ReplayError, RetentionLostError
from worker.commands.replay.request import ReplayRequest
from worker.commands.specs import OffsetSpec
from worker.engine.ranges import PartitionRange
from worker.ops.logs import log_context

__all__ = ("METADATA_TIMEOUT_S", "OffsetSource", "plan_ranges", "resolve_ranges")

logger = logging.getLogger(__name__)

METADATA_TIMEOUT_S: Final = 15.0
"""How long one metadata, watermark or offset lookup may wait for the cluster."""

TP = tuple[str, int]


def _select(spec: OffsetSpec, partitions: Sequence[TP], what: str) -> dict[TP, int]:
    if isinstance(spec, int):
        return dict.fromkeys(partitions, spec)
    known = {p for _, p in partitions}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise RangeError(f"{what}: no partition {unknown[0]} (partitions: {sorted(known)})")
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


class OffsetSource(Protocol):
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


def _partitions(source: OffsetSource, topics: Sequence[str]) -> list[TP]:
    found: list[TP] = []
    for topic in topics:
        metadata = source.list_topics(topic, timeout=METADATA_TIMEOUT_S).topics.get(topic)
        error: KafkaError | None = None if metadata is None else metadata.error
        if error is not None and error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
            raise ReplayError(f"topic {topic!r} is not available: {error}")
        if metadata is None or error is not None or not metadata.partitions:
            problem = error if error is not None else "no metadata or no partitions"
            raise RangeError(f"topic {topic!r} is not available: {problem}")
        found.extend((topic, p) for p in sorted(metadata.partitions))
    return found


def _times_to_offsets(
    source: OffsetSource, partitions: Sequence[TP], ms: int, high: Mapping[TP, int]
) -> dict[TP, int]:
    """The first offset whose timestamp is at or after ``ms``; the high watermark if none."""
    asked = [TopicPartition(t, p, ms) for t, p in partitions]
    offsets: dict[TP, int] = {}
    for tp in source.offsets_for_times(asked, timeout=METADATA_TIMEOUT_S):
        if tp.error is not None:
            raise ReplayError(f"{tp.topic}[{tp.partition}]: offsets_for_times: {tp.error}")
        key = (tp.topic, tp.partition)
        offsets[key] = tp.offset if tp.offset >= 0 else high[key]
    return offsets


def resolve_ranges(
    source: OffsetSource, topics: Sequence[str], request: ReplayRequest
) -> list[PartitionRange]:
    """Read the topic's partitions and watermarks and turn ``request`` into ranges."""
    partitions = _partitions(source, topics)
    watermarks: dict[TP, tuple[int, int]] = {}
    for topic, partition in partitions:
        marks = source.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=METADATA_TIMEOUT_S
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
        for tp in source.committed(asked, timeout=METADATA_TIMEOUT_S):
            if tp.error is not None:
                raise ReplayError(f"{tp.topic}[{tp.partition}]: committed offset: {tp.error}")
            if tp.offset != OFFSET_INVALID and tp.offset >= 0:
                starts[(tp.topic, tp.partition)] = tp.offset
                resumed += 1
        missing = [tp for tp in partitions if tp not in starts]
        if missing and not request.has_start:
            raise RangeError(
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
