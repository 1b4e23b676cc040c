"""Metrics: names, types, labels, fixed label values, partition cleanup, lag, writer observer."""

from __future__ import annotations

import itertools
import json
import logging
import platform

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

import worker
from worker.ops.metrics import CONTENT_TYPE, METRIC_NAMES, Metrics

# (attribute, exported name, type, label names), written out from the spec on purpose.
SPEC: list[tuple[str, str, str, tuple[str, ...]]] = [
    ("messages_consumed", "balance_sink_messages_consumed_total", "counter",
     ("topic", "partition")),
    ("events_written", "balance_sink_events_written_total", "counter", ()),
    ("trades_written", "balance_sink_trades_written_total", "counter", ()),
    ("dead_lettered", "balance_sink_messages_dead_lettered_total", "counter", ("reason",)),
    ("flush_duration", "balance_sink_flush_duration_seconds", "histogram", ("outcome",)),
    ("batch_rows", "balance_sink_batch_rows", "histogram", ()),
    ("batch_bytes", "balance_sink_batch_sql_bytes", "histogram", ()),
    ("tdengine_errors", "balance_sink_tdengine_errors_total", "counter", ("kind",)),
    ("tdengine_retries", "balance_sink_tdengine_retries_total", "counter", ()),
    ("tdengine_statements", "balance_sink_tdengine_statements_total", "counter", ()),
    ("affected_rows_mismatch", "balance_sink_tdengine_affected_rows_mismatch_total", "counter", ()),
    ("consumer_lag", "balance_sink_consumer_lag_messages", "gauge", ("topic", "partition")),
    ("committed_offset", "balance_sink_committed_offset", "gauge", ("topic", "partition")),
    ("assigned_partitions", "balance_sink_assigned_partitions", "gauge", ()),
    ("paused", "balance_sink_paused", "gauge", ()),
    ("paused_partitions", "balance_sink_paused_partitions", "gauge", ()),
    ("rebalances", "balance_sink_rebalances_total", "counter", ("kind",)),
    ("commits", "balance_sink_commits_total", "counter", ("outcome",)),
    ("buffered_rows", "balance_sink_buffered_rows", "gauge", ()),
    ("writes_in_flight", "balance_sink_writes_in_flight", "gauge", ()),
    ("last_flush_timestamp", "balance_sink_last_successful_flush_timestamp_seconds", "gauge", ()),
    ("build_info", "balance_sink_build_info", "gauge", ("version", "python")),
]  # fmt: skip

REASONS = {
    "invalid_json", "invalid_type", "missing_field", "invalid_value", "out_of_range",
    "zero_quote_amount", "no_fee_schedule", "unknown_symbol", "unknown_vip_level",
    "sink_rejected",
}  # fmt: skip


def exposed(metrics: Metrics) -> dict[str, tuple[str, str, list[Sample]]]:
    """Exported name -> (type, help, samples), parsed back from ``render()``."""
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        if family.name.endswith("_created"):  # prometheus_client's own creation stamps
            continue
        name = family.name + "_total" if family.type == "counter" else family.name
        out[name] = (family.type, family.documentation, family.samples)
    return out


def value(metrics: Metrics, sample_name: str, **labels: str) -> float | None:
    """The value of one sample, or None when the series is not exported."""
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            if sample.name == sample_name and sample.labels == labels:
                return sample.value
    return None


def touch_everything(metrics: Metrics) -> None:
    """Give every metric at least one series, so label names show in the exposition."""
    for attr, _, kind, labels in SPEC:
        metric = getattr(metrics, attr)
        child = metric.labels(*["1"] * len(labels)) if labels else metric
        if kind == "histogram":
            child.observe(1)
        else:
            child.inc()


@pytest.mark.parametrize(("attr", "name", "kind", "labels"), SPEC, ids=[s[0] for s in SPEC])
def test_each_metric_has_the_specified_name_type_labels_and_help(
    attr: str, name: str, kind: str, labels: tuple[str, ...]
) -> None:
    metrics = Metrics()
    touch_everything(metrics)
    family_type, doc, samples = exposed(metrics)[name]
    assert family_type == kind
    assert len(doc) > 10
    label_sets = {frozenset(s.labels) - {"le"} for s in samples}
    assert label_sets == {frozenset(labels)}


@pytest.mark.parametrize("attr", ["messages_consumed", "consumer_lag", "committed_offset"])
def test_partition_labels_are_positional_topic_then_partition(attr: str) -> None:
    metrics = Metrics()
    getattr(metrics, attr).labels("trades", "7").inc()
    name = dict((a, n) for a, n, _, _ in SPEC)[attr]
    assert value(metrics, name, topic="trades", partition="7") == 1


def test_metric_names_lists_exactly_the_exported_families() -> None:
    metrics = Metrics()
    assert len(METRIC_NAMES) == len(set(METRIC_NAMES))
    assert set(METRIC_NAMES) == {name for _, name, _, _ in SPEC}
    assert set(exposed(metrics)) == set(METRIC_NAMES)
    assert all(name.startswith("balance_sink_") for name in METRIC_NAMES)


def test_no_label_outside_the_bounded_set() -> None:
    metrics = Metrics()
    touch_everything(metrics)
    allowed = {"topic", "partition", "reason", "kind", "outcome", "version", "python", "le"}
    for _, _, samples in exposed(metrics).values():
        for sample in samples:
            assert set(sample.labels) <= allowed, sample


def test_fixed_label_values_are_exported_at_zero_before_first_use() -> None:
    metrics = Metrics()
    series = exposed(metrics)

    def values_of(name: str, label: str) -> set[str]:
        samples = series[name][2]
        assert all(s.value == 0 for s in samples if not s.name.endswith("_bucket")), samples
        return {s.labels[label] for s in samples}

    assert values_of("balance_sink_messages_dead_lettered_total", "reason") == REASONS
    assert values_of("balance_sink_flush_duration_seconds", "outcome") == {
        "ok",
        "transient_error",
        "fatal_error",
    }
    assert values_of("balance_sink_tdengine_errors_total", "kind") == {
        "transient",
        "permanent",
        "fatal",
    }
    assert values_of("balance_sink_rebalances_total", "kind") == {"assign", "revoke", "lost"}
    assert values_of("balance_sink_commits_total", "outcome") == {"ok", "error"}


def bucket_bounds(metrics: Metrics, name: str) -> list[float]:
    samples = exposed(metrics)[name][2]
    bounds = sorted({float(s.labels["le"]) for s in samples if s.name == name + "_bucket"})
    assert bounds[-1] == float("inf")
    return bounds[:-1]


def test_histogram_buckets_cover_the_specified_ranges() -> None:
    metrics = Metrics()
    flush = bucket_bounds(metrics, "balance_sink_flush_duration_seconds")
    assert flush[0] == 0.001 and flush[-1] == 60.0
    rows = bucket_bounds(metrics, "balance_sink_batch_rows")
    assert rows[0] == 1 and rows[-1] == 100_000
    for bounds in (flush, rows, bucket_bounds(metrics, "balance_sink_batch_sql_bytes")):
        ratios = [b / a for a, b in itertools.pairwise(bounds)]
        assert all(1.5 <= r <= 4 for r in ratios), bounds  # roughly exponential


def test_build_info_is_one_with_version_and_python() -> None:
    metrics = Metrics()
    labels = {"version": worker.__version__, "python": platform.python_version()}
    assert value(metrics, "balance_sink_build_info", **labels) == 1.0


def test_instances_do_not_share_series() -> None:
    a, b = Metrics(), Metrics()
    a.events_written.inc(400)
    assert value(a, "balance_sink_events_written_total") == 400
    assert value(b, "balance_sink_events_written_total") == 0


def test_render_is_prometheus_text_with_its_content_type() -> None:
    assert CONTENT_TYPE.startswith("text/plain;")
    text = Metrics().render().decode()
    assert "# TYPE balance_sink_paused gauge\n" in text


def test_forget_partition_removes_only_that_partitions_series() -> None:
    metrics = Metrics()
    for partition in ("3", "4"):
        metrics.messages_consumed.labels("trades", partition).inc(10)
        metrics.consumer_lag.labels("trades", partition).set(7)
        metrics.committed_offset.labels("trades", partition).set(1234)

    metrics.forget_partition("trades", 3)

    for name in (
        "balance_sink_messages_consumed_total",
        "balance_sink_consumer_lag_messages",
        "balance_sink_committed_offset",
    ):
        assert value(metrics, name, topic="trades", partition="3") is None, name
        assert value(metrics, name, topic="trades", partition="4") is not None, name


def test_forget_partition_never_seen_is_a_no_op() -> None:
    metrics = Metrics()
    metrics.consumer_lag.labels("trades", "1").set(5)
    metrics.forget_partition("trades", 9)
    metrics.forget_partition("other", 1)
    assert value(metrics, "balance_sink_consumer_lag_messages", topic="trades", partition="1") == 5


def partition_stats(partition: int, lag: int, committed: int, hi: int) -> dict[str, object]:
    """One entry of ``topics.<t>.partitions`` as librdkafka 2.x reports it for a consumer."""
    return {
        "partition": partition,
        "broker": 1 if partition >= 0 else -1,
        "leader": 1 if partition >= 0 else -1,
        "desired": partition >= 0,
        "unknown": False,
        "msgq_cnt": 0,
        "msgq_bytes": 0,
        "xmit_msgq_cnt": 0,
        "xmit_msgq_bytes": 0,
        "fetchq_cnt": 12,
        "fetchq_size": 4096,
        "fetch_state": "active" if partition >= 0 else "none",
        "query_offset": -1001,
        "next_offset": hi,
        "app_offset": hi,
        "stored_offset": committed,
        "stored_leader_epoch": 0,
        "commited_offset": committed,
        "committed_offset": committed,
        "committed_leader_epoch": 0,
        "eof_offset": hi,
        "lo_offset": 0,
        "hi_offset": hi,
        "ls_offset": hi,
        "consumer_lag": lag,
        "consumer_lag_stored": lag,
        "leader_epoch": 0,
        "txmsgs": 0,
        "txbytes": 0,
        "rxmsgs": 5120,
        "rxbytes": 1048576,
        "msgs": 5120,
        "rx_ver_drops": 0,
        "msgs_inflight": 0,
        "next_ack_seq": 0,
        "next_err_seq": 0,
        "acked_msgid": 0,
    }


def stats_json(lags: dict[str, dict[int, int]]) -> str:
    """A librdkafka consumer statistics payload with the given lag per topic partition."""
    window = {"min": 0, "max": 0, "avg": 0, "sum": 0, "cnt": 0, "p50": 0, "p99": 0}
    topics = {
        topic: {
            "topic": topic,
            "age": 60012,
            "metadata_age": 4023,
            "batchsize": window,
            "batchcnt": window,
            "partitions": {
                str(p): partition_stats(p, lag, 1000, 1000 + max(lag, 0))
                for p, lag in parts.items()
            },
        }
        for topic, parts in lags.items()
    }
    return json.dumps(
        {
            "name": "balance-sink#consumer-1",
            "client_id": "balance-sink",
            "type": "consumer",
            "ts": 5123456789,
            "time": 1764064800,
            "age": 60012345,
            "replyq": 0,
            "msg_cnt": 0,
            "msg_size": 0,
            "msg_max": 100000,
            "msg_size_max": 1073741824,
            "simple_cnt": 0,
            "metadata_cache_cnt": 2,
            "brokers": {
                "broker-1:9092/1": {
                    "name": "broker-1:9092/1",
                    "nodeid": 1,
                    "nodename": "broker-1:9092",
                    "source": "learned",
                    "state": "UP",
                    "stateage": 59000000,
                    "rtt": window,
                    "toppars": {"trades-0": {"topic": "trades", "partition": 0}},
                }
            },
            "topics": topics,
            "cgrp": {
                "state": "up",
                "stateage": 58000,
                "join_state": "steady",
                "rebalance_age": 57000,
                "rebalance_cnt": 1,
                "rebalance_reason": "group is rebalancing",
                "assignment_size": 3,
            },
            "tx": 120,
            "tx_bytes": 24000,
            "rx": 118,
            "rx_bytes": 2097152,
            "txmsgs": 0,
            "txmsg_bytes": 0,
            "rxmsgs": 5120,
            "rxmsg_bytes": 1048576,
        }
    )


def lag(metrics: Metrics, topic: str, partition: int) -> float | None:
    return value(
        metrics, "balance_sink_consumer_lag_messages", topic=topic, partition=str(partition)
    )


def test_librdkafka_stats_set_consumer_lag_per_partition() -> None:
    metrics = Metrics()
    metrics.observe_librdkafka_stats(
        stats_json({"trades": {0: 42, 1: 0, 2: -1, -1: -1}, "trades.v2": {5: 7}})
    )
    assert lag(metrics, "trades", 0) == 42
    assert lag(metrics, "trades", 1) == 0
    assert lag(metrics, "trades.v2", 5) == 7
    assert lag(metrics, "trades", 2) is None  # lag unknown
    assert lag(metrics, "trades", -1) is None  # internal UA partition

    metrics.observe_librdkafka_stats(stats_json({"trades": {0: 3}}))
    assert lag(metrics, "trades", 0) == 3


def test_librdkafka_stats_partition_minus_one_is_ignored_even_with_a_lag() -> None:
    metrics = Metrics()
    metrics.observe_librdkafka_stats(stats_json({"trades": {-1: 10}}))
    assert lag(metrics, "trades", -1) is None


def test_librdkafka_stats_without_topics_set_nothing() -> None:
    metrics = Metrics()
    metrics.observe_librdkafka_stats('{"name": "rdkafka#consumer-1", "type": "consumer"}')
    assert "balance_sink_consumer_lag_messages{" not in metrics.render().decode()


@pytest.mark.parametrize("payload", ["not json", '{"topics": []}', ""])
def test_unreadable_librdkafka_stats_are_logged_not_raised(
    payload: str, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    with caplog.at_level(logging.WARNING, logger="worker.ops.metrics"):
        metrics.observe_librdkafka_stats(payload)
    assert "librdkafka statistics ignored" in caplog.text
    assert "balance_sink_consumer_lag_messages{" not in metrics.render().decode()


def test_on_statement_counts_statements_rows_and_bytes() -> None:
    metrics = Metrics()
    metrics.on_statement(400, 52_000, 0.012)
    metrics.on_statement(100, 13_000, 0.004)
    assert value(metrics, "balance_sink_tdengine_statements_total") == 2
    assert value(metrics, "balance_sink_batch_rows_count") == 2
    assert value(metrics, "balance_sink_batch_rows_sum") == 500
    assert value(metrics, "balance_sink_batch_rows_bucket", le="100.0") == 1
    assert value(metrics, "balance_sink_batch_sql_bytes_sum") == 65_000
    assert value(metrics, "balance_sink_batch_sql_bytes_count") == 2


def test_on_retry_counts_retries() -> None:
    metrics = Metrics()
    metrics.on_retry(ConnectionError("reset by peer"))
    metrics.on_retry(TimeoutError())
    assert value(metrics, "balance_sink_tdengine_retries_total") == 2
    assert value(metrics, "balance_sink_tdengine_statements_total") == 0


def test_on_error_counts_by_kind() -> None:
    metrics = Metrics()
    metrics.on_error("transient", 0x000B)
    metrics.on_error("transient", None)
    metrics.on_error("fatal", 0x0357)
    assert value(metrics, "balance_sink_tdengine_errors_total", kind="transient") == 2
    assert value(metrics, "balance_sink_tdengine_errors_total", kind="fatal") == 1
    assert value(metrics, "balance_sink_tdengine_errors_total", kind="permanent") == 0


def test_on_error_rejects_an_unknown_kind_without_creating_a_series() -> None:
    metrics = Metrics()
    with pytest.raises(ValueError, match="'retriable'"):
        metrics.on_error("retriable", 1)
    assert value(metrics, "balance_sink_tdengine_errors_total", kind="retriable") is None


def test_on_affected_mismatch_counts_statements() -> None:
    metrics = Metrics()
    metrics.on_affected_mismatch(4, 1)
    assert value(metrics, "balance_sink_tdengine_affected_rows_mismatch_total") == 1
