"""The Prometheus metric names balance-sink exports, and the names the deploy artifacts use.

:data:`METRICS` is the contract the rules and the dashboard are checked against. A later
integration test compares it, and :func:`dashboard_metric_names` / :func:`rules_metric_names`,
with a live ``/metrics`` scrape. Names are metric *families*: histogram series
(``_bucket``, ``_sum``, ``_count``) map to their family; counters keep their ``_total``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final, Literal

import yaml

__all__ = (
    "HISTOGRAM_SUFFIXES",
    "METRICS",
    "dashboard_exprs",
    "dashboard_metric_names",
    "metric_names_in",
    "rule_exprs",
    "rules_metric_names",
    "series_names_in",
)

MetricType = Literal["counter", "gauge", "histogram"]

METRICS: Final[dict[str, MetricType]] = {
    "balance_sink_messages_consumed_total": "counter",
    "balance_sink_events_written_total": "counter",
    "balance_sink_trades_written_total": "counter",
    "balance_sink_messages_dead_lettered_total": "counter",
    "balance_sink_flush_duration_seconds": "histogram",
    "balance_sink_batch_rows": "histogram",
    "balance_sink_batch_sql_bytes": "histogram",
    "balance_sink_tdengine_errors_total": "counter",
    "balance_sink_tdengine_retries_total": "counter",
    "balance_sink_tdengine_statements_total": "counter",
    "balance_sink_tdengine_affected_rows_mismatch_total": "counter",
    "balance_sink_consumer_lag_messages": "gauge",
    "balance_sink_committed_offset": "gauge",
    "balance_sink_assigned_partitions": "gauge",
    "balance_sink_paused": "gauge",
    "balance_sink_paused_partitions": "gauge",
    "balance_sink_rebalances_total": "counter",
    "balance_sink_commits_total": "counter",
    "balance_sink_buffered_rows": "gauge",
    "balance_sink_writes_in_flight": "gauge",
    "balance_sink_last_successful_flush_timestamp_seconds": "gauge",
    "balance_sink_build_info": "gauge",
}

HISTOGRAM_SUFFIXES: Final = ("_bucket", "_sum", "_count")

# A metric name is not part of a recording-rule name (`job:balance_sink_x:rate1m`) nor of a
# longer identifier; label values such as job="balance-sink" never match (hyphen).
_SERIES: Final = re.compile(r"(?<![\w:])balance_sink_[a-z0-9_]+(?![\w:])")


def series_names_in(expr: str) -> set[str]:
    """Series names exactly as written in a PromQL expression (``_bucket`` etc. kept)."""
    return set(_SERIES.findall(expr))


def _family(name: str) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        base = name.removesuffix(suffix)
        if base != name and METRICS.get(base) == "histogram":
            return base
    return name


def metric_names_in(expr: str) -> set[str]:
    """Metric families an expression reads: a histogram's ``_bucket``/``_sum``/``_count``
    series count as the histogram; any other name is returned unchanged (so
    ``balance_sink_paused_count`` stays unknown instead of turning into a gauge)."""
    return {_family(name) for name in series_names_in(expr)}


def _walk_panels(panels: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _walk_panels(panel.get("panels", []))  # rows keep collapsed panels here


def dashboard_exprs(path: str | Path) -> list[str]:
    """Every PromQL expression of a Grafana dashboard: panel targets and query variables."""
    dashboard = json.loads(Path(path).read_text(encoding="utf-8"))
    exprs = [
        target["expr"]
        for panel in _walk_panels(dashboard.get("panels", []))
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable.get("query")
            exprs.append(query["query"] if isinstance(query, dict) else str(query))
    return exprs


def dashboard_metric_names(path: str | Path) -> set[str]:
    """Metric families used by a dashboard's panels and variables."""
    return {name for expr in dashboard_exprs(path) for name in metric_names_in(expr)}


def rule_exprs(path: str | Path) -> list[str]:
    """The ``expr`` of every recording and alerting rule in a Prometheus rules file."""
    document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return [str(rule["expr"]) for group in document["groups"] for rule in group["rules"]]


def rules_metric_names(path: str | Path) -> set[str]:
    """Metric families used by a rules file's expressions."""
    return {name for expr in rule_exprs(path) for name in metric_names_in(expr)}
