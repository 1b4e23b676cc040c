"""Every Prometheus metric of the worker, declared once.

:class:`Metrics` owns its own :class:`~prometheus_client.CollectorRegistry`, so each test
(and each worker) gets an isolated set of series. The ``__init__`` body is the metric
table: name, help text, labels and buckets sit next to the attribute that holds them.

Naming follows the Prometheus conventions: the ``balance_sink_`` prefix, ``_total`` on
counters and base units (``_seconds``, ``_bytes``). Labels come only from
:data:`ALLOWED_LABELS`, never from trade or user ids, so cardinality stays bounded by
partitions and fixed enumerations. Labels with a fixed set of values (reason, kind,
outcome) are created at zero on construction, so ``rate()`` and alerts see the series
before its first increment.

Setting ``PROMETHEUS_DISABLE_CREATED_SERIES=True`` in the environment drops the
``*_created`` series that prometheus_client adds to counters and histograms.
"""

from __future__ import annotations

import contextlib
import logging
import platform
from collections.abc import Iterable, Sequence
from typing import Final

import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder, generate_latest

from worker import __version__
from worker.core.rejections import REASONS

__all__ = (
    "ALLOWED_LABELS",
    "COMMIT_OUTCOMES",
    "CONTENT_TYPE",
    "DEAD_LETTER_REASONS",
    "FLUSH_OUTCOMES",
    "METRIC_NAMES",
    "REBALANCE_KINDS",
    "TDENGINE_ERROR_KINDS",
    "Metrics",
)

logger = logging.getLogger(__name__)

ALLOWED_LABELS: Final = frozenset(
    {"topic", "partition", "reason", "kind", "outcome", "version", "python"}
)
"""The only label names a metric may use (``version``/``python`` only on build info)."""

DEAD_LETTER_REASONS: Final[tuple[str, ...]] = (*REASONS, "sink_rejected")
"""Values of ``reason`` on the dead-letter counter: every rejection, plus TDengine refusals."""
FLUSH_OUTCOMES: Final = ("ok", "transient_error", "fatal_error")
TDENGINE_ERROR_KINDS: Final = ("transient", "permanent", "fatal")
REBALANCE_KINDS: Final = ("assign", "revoke", "lost")
COMMIT_OUTCOMES: Final = ("ok", "error")

CONTENT_TYPE: Final[str] = choose_encoder("")[1]
"""The content type of :meth:`Metrics.render` output, as prometheus_client pairs them."""

_FLUSH_SECONDS_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
"""1 ms (a small batch on a local server) to 60 s (a stalled server near the poll budget)."""
_BATCH_ROWS_BUCKETS: Final = (
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000,
)  # fmt: skip
_BATCH_BYTES_BUCKETS: Final = tuple(float(256 * 4**i) for i in range(10))
"""256 B to 64 MiB in steps of 4 (TDengine caps one SQL statement at about 1 MiB by default)."""


class _PartitionStats(msgspec.Struct, gc=False):
    consumer_lag: int = -1


class _TopicStats(msgspec.Struct, gc=False):
    partitions: dict[int, _PartitionStats] = {}


class _Stats(msgspec.Struct, gc=False):
    """The only part of librdkafka's statistics JSON we read; the rest is skipped."""

    topics: dict[str, _TopicStats] = {}


_STATS_DECODER: Final = msgspec.json.Decoder(_Stats)


class Metrics:
    """All metrics of one worker, registered in :attr:`registry`.

    The loop updates the attributes directly (``metrics.commits.labels(outcome="ok").inc()``);
    the TDengine writer calls the ``on_*`` observer methods.
    """

    def __init__(self) -> None:
        self.registry: Final = CollectorRegistry(auto_describe=True)
        self._names: list[str] = []
        partition = ("topic", "partition")

        # Kafka side (KC: sink-record-read-rate, partition-count, sink-record-lag-max).
        self.messages_consumed = self._counter(
            "balance_sink_messages_consumed_total",
            "Kafka messages polled and handed to processing.",
            partition,
        )
        self.consumer_lag = self._gauge(
            "balance_sink_consumer_lag_messages",
            "Messages between the committed offset and the high watermark (librdkafka stats).",
            partition,
        )
        self.committed_offset = self._gauge(
            "balance_sink_committed_offset",
            "Last offset this worker committed (the next offset to consume).",
            partition,
        )
        self.assigned_partitions = self._gauge(
            "balance_sink_assigned_partitions", "Partitions currently assigned to this worker."
        )
        self.paused = self._gauge(
            "balance_sink_paused", "1 while consumption is paused by backpressure, else 0."
        )
        self.paused_partitions = self._gauge(
            "balance_sink_paused_partitions", "Partitions currently paused by backpressure."
        )
        self.rebalances = self._counter(
            "balance_sink_rebalances_total",
            "Rebalance callbacks, by kind (assign, revoke, lost).",
            ("kind",),
            kind=REBALANCE_KINDS,
        )
        self.commits = self._counter(
            "balance_sink_commits_total",
            "Synchronous offset commits, by outcome (ok, error).",
            ("outcome",),
            outcome=COMMIT_OUTCOMES,
        )

        # Rows (KC: sink-record-send-rate, total-records-skipped, deadletterqueue-*).
        self.events_written = self._counter(
            "balance_sink_events_written_total", "Balance event rows stored in TDengine."
        )
        self.trades_written = self._counter(
            "balance_sink_trades_written_total", "Trades whose rows are all stored in TDengine."
        )
        self.dead_lettered = self._counter(
            "balance_sink_messages_dead_lettered_total",
            "Messages sent to the dead-letter topic, by rejection reason.",
            ("reason",),
            reason=DEAD_LETTER_REASONS,
        )
        self.buffered_rows = self._gauge(
            "balance_sink_buffered_rows", "Rows buffered in memory, not yet written."
        )
        self.writes_in_flight = self._gauge(
            "balance_sink_writes_in_flight",
            "Batches handed to the writer and not yet stored (being written, or failed and "
            "waiting for a retry); at most batch.max_in_flight while reading goes on.",
        )

        # Flushes and TDengine (KC: put-batch-*-time-ms, batch-size-avg, total-retries).
        self.flush_duration = self._histogram(
            "balance_sink_flush_duration_seconds",
            "Time to write one buffered batch to TDengine, by outcome.",
            _FLUSH_SECONDS_BUCKETS,
            ("outcome",),
            outcome=FLUSH_OUTCOMES,
        )
        self.last_flush_timestamp = self._gauge(
            "balance_sink_last_successful_flush_timestamp_seconds",
            "Unix time of the last flush that stored every row of its batch.",
        )
        self.batch_rows = self._histogram(
            "balance_sink_batch_rows", "Rows per TDengine INSERT statement.", _BATCH_ROWS_BUCKETS
        )
        self.batch_bytes = self._histogram(
            "balance_sink_batch_sql_bytes",
            "Size of each TDengine INSERT statement in bytes.",
            _BATCH_BYTES_BUCKETS,
        )
        self.tdengine_statements = self._counter(
            "balance_sink_tdengine_statements_total", "INSERT statements TDengine accepted."
        )
        self.tdengine_retries = self._counter(
            "balance_sink_tdengine_retries_total", "TDengine statements retried after an error."
        )
        self.tdengine_errors = self._counter(
            "balance_sink_tdengine_errors_total",
            "TDengine errors, by kind (transient, permanent, fatal).",
            ("kind",),
            kind=TDENGINE_ERROR_KINDS,
        )
        self.affected_rows_mismatch = self._counter(
            "balance_sink_tdengine_affected_rows_mismatch_total",
            "Statements where TDengine reported a different affected-row count than sent.",
        )

        self.build_info = self._gauge(
            "balance_sink_build_info",
            "Always 1; the labels name the running build.",
            ("version", "python"),
        )
        self.build_info.labels(version=__version__, python=platform.python_version()).set(1)

    @property
    def names(self) -> tuple[str, ...]:
        """Every metric name declared here, in declaration order."""
        return tuple(self._names)

    def render(self) -> bytes:
        """The Prometheus text exposition of every series (content type :data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)

    def forget_partition(self, topic: str, partition: int) -> None:
        """Drop one partition's labelled series, once it is revoked or lost."""
        labels = (topic, str(partition))
        for metric in (self.consumer_lag, self.committed_offset, self.messages_consumed):
            with contextlib.suppress(KeyError):  # never observed on this worker
                metric.remove(*labels)

    def observe_librdkafka_stats(self, stats_json: str) -> None:
        """Set :attr:`consumer_lag` from a librdkafka ``stats_cb`` payload.

        Partition ``-1`` (librdkafka's internal unassigned partition) and lag ``-1``
        (unknown: no committed offset or high watermark yet) are skipped. A payload that
        cannot be read is logged, never raised: this runs inside ``Consumer.poll()``.
        """
        try:
            stats = _STATS_DECODER.decode(stats_json)
        except msgspec.DecodeError as exc:
            logger.warning("librdkafka statistics ignored: %s", exc)
            return
        for topic, topic_stats in stats.topics.items():
            for partition, partition_stats in topic_stats.partitions.items():
                lag = partition_stats.consumer_lag
                if partition >= 0 and lag >= 0:
                    self.consumer_lag.labels(topic, str(partition)).set(lag)

    # The TDengine writer's observer protocol.

    def on_statement(self, rows: int, nbytes: int, seconds: float) -> None:
        """One INSERT statement succeeded: count it, observe its rows and SQL bytes.

        ``seconds`` is accepted for the protocol; flush time is :attr:`flush_duration`.
        """
        self.tdengine_statements.inc()
        self.batch_rows.observe(rows)
        self.batch_bytes.observe(nbytes)

    def on_retry(self, error: Exception) -> None:
        """A statement is about to be retried after ``error``."""
        self.tdengine_retries.inc()

    def on_error(self, kind: str, code: int | None) -> None:
        """TDengine returned an error of ``kind`` (transient, permanent or fatal).

        ``code`` is not a label (it would widen cardinality); the writer logs it.

        Raises
        ------
        ValueError
            ``kind`` is not one of :data:`TDENGINE_ERROR_KINDS` (a bug in the caller).
        """
        if kind not in TDENGINE_ERROR_KINDS:
            raise ValueError(
                f"unknown TDengine error kind {kind!r}; expected one of {TDENGINE_ERROR_KINDS}"
            )
        self.tdengine_errors.labels(kind=kind).inc()

    def on_affected_mismatch(self, expected: int, actual: int) -> None:
        """TDengine reported ``actual`` affected rows for a statement of ``expected`` rows."""
        self.affected_rows_mismatch.inc()

    # Declaration helpers: each records the name and checks the labels.

    def _declared(self, name: str, labels: Sequence[str]) -> None:
        unknown = set(labels) - ALLOWED_LABELS
        if unknown:
            raise ValueError(f"{name}: label(s) {sorted(unknown)} would unbound cardinality")
        self._names.append(name)

    def _counter(
        self, name: str, doc: str, labels: Sequence[str] = (), **values: Iterable[str]
    ) -> Counter:
        self._declared(name, labels)
        counter = Counter(name, doc, labels, registry=self.registry)
        _preset(counter, values)
        return counter

    def _gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
        self._declared(name, labels)
        return Gauge(name, doc, labels, registry=self.registry)

    def _histogram(
        self,
        name: str,
        doc: str,
        buckets: Sequence[float],
        labels: Sequence[str] = (),
        **values: Iterable[str],
    ) -> Histogram:
        self._declared(name, labels)
        histogram = Histogram(name, doc, labels, registry=self.registry, buckets=buckets)
        _preset(histogram, values)
        return histogram


def _preset(metric: Counter | Histogram, values: dict[str, Iterable[str]]) -> None:
    """Create the child of each fixed label value, so it is exported at zero."""
    for label, choices in values.items():
        for choice in choices:
            metric.labels(**{label: choice})


METRIC_NAMES: Final[tuple[str, ...]] = Metrics().names
"""Every metric name the worker exports, as written in ``# TYPE`` lines.

Counters include ``_total``; histograms add ``_bucket``, ``_sum`` and ``_count`` to theirs.
"""
