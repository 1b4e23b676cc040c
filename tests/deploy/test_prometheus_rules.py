"""deploy/prometheus: rules pass promtool's checks and unit tests, and read only real metrics."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Final

import pytest

from tests.deploy.files import DEPLOY, load_yaml, run
from tests.deploy.metric_names import (
    HISTOGRAM_SUFFIXES,
    METRICS,
    metric_names_in,
    rule_exprs,
    rules_metric_names,
    series_names_in,
)

PROMETHEUS: Final = DEPLOY / "prometheus"
RULES: Final = PROMETHEUS / "rules.yml"
RULES_TEST: Final = PROMETHEUS / "rules_test.yml"
SEVERITIES: Final = {"critical", "warning", "info"}

REQUIRED_ALERTS: Final = {
    "BalanceSinkConsumerLagHigh",
    "BalanceSinkLagGrowing",
    "BalanceSinkNoRowsWrittenWhileLagging",
    "BalanceSinkDeadLetters",
    "BalanceSinkFlushFailures",
    "BalanceSinkReplicaDown",
    "BalanceSinkPausedTooLong",
    "BalanceSinkAffectedRowsMismatch",
}


def _rules() -> list[dict[str, Any]]:
    document = load_yaml(RULES)
    return [rule for group in document["groups"] for rule in group["rules"]]


def _alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in _rules() if "alert" in rule}


def test_promtool_check_rules(promtool: str) -> None:
    result = run(promtool, "check", "rules", str(RULES))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "SUCCESS" in output, output


def test_promtool_unit_tests(promtool: str) -> None:
    result = run(promtool, "test", "rules", str(RULES_TEST))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "SUCCESS" in output, output


def test_promtool_check_compose_prometheus_config(promtool: str, tmp_path: Path) -> None:
    """prometheus.yml is valid and loads rules.yml (compose mounts it at the configured path)."""
    config = (PROMETHEUS / "prometheus.yml").read_text(encoding="utf-8")
    mounted = "/etc/prometheus/rules.yml"
    assert mounted in config
    (tmp_path / "prometheus.yml").write_text(config.replace(mounted, str(RULES)))
    result = run(promtool, "check", "config", str(tmp_path / "prometheus.yml"))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "SUCCESS" in output, output


def test_rules_read_only_exported_metrics() -> None:
    used = rules_metric_names(RULES)
    assert used, "no balance_sink_ metric found in rules.yml: the parser is broken"
    unknown = used - METRICS.keys()
    assert not unknown, f"rules.yml reads metrics balance-sink does not export: {sorted(unknown)}"


def test_histograms_are_read_through_their_series() -> None:
    """A histogram family has no series of its own: only _bucket, _sum and _count exist."""
    for expr in rule_exprs(RULES):
        for name in series_names_in(expr):
            assert METRICS.get(name) != "histogram", f"{name} needs a suffix in {expr!r}"
            if name.endswith(HISTOGRAM_SUFFIXES):
                assert metric_names_in(name) != {name}, f"{name} is not a histogram series"


def test_metric_names_in_annotations_are_exported() -> None:
    """Descriptions that name a metric for the on-call engineer name a real one."""
    for name, alert in _alerts().items():
        text = " ".join(str(value) for value in alert["annotations"].values())
        unknown = metric_names_in(text) - METRICS.keys()
        assert not unknown, f"{name} annotations mention unknown metrics {sorted(unknown)}"


def test_recording_rules_used_are_defined_here() -> None:
    recorded = {rule["record"] for rule in _rules() if "record" in rule}
    for expr in rule_exprs(RULES):
        for name in re.findall(r"\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b", expr):
            assert name in recorded, f"{expr!r} reads {name}, which no rule records"


def test_required_alerts_exist_with_severity_and_annotations() -> None:
    alerts = _alerts()
    assert alerts.keys() >= REQUIRED_ALERTS, sorted(REQUIRED_ALERTS - alerts.keys())
    for name, alert in alerts.items():
        assert alert["labels"]["severity"] in SEVERITIES, name
        annotations = alert["annotations"]
        assert annotations.get("summary", "").strip(), f"{name} has no summary"
        assert len(annotations.get("description", "").strip()) > 40, f"{name}: description"


def test_alert_names_are_unique() -> None:
    names = [rule["alert"] for rule in _rules() if "alert" in rule]
    assert len(names) == len(set(names))


def test_replica_alerts_select_the_scrape_job() -> None:
    """up{job=...} must name the job the compose scrape config and the PodMonitor produce."""
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    jobs = {scrape["job_name"] for scrape in config["scrape_configs"]}
    for name in ("BalanceSinkReplicaDown", "BalanceSinkNoReplicaUp"):
        selected = re.findall(r'up\{job="([^"]+)"\}', _alerts()[name]["expr"])
        assert selected == ["balance-sink"], name
        assert "balance-sink" in jobs


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    fires: set[str] = set()
    silent: set[str] = set()
    for case in load_yaml(RULES_TEST)["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check["exp_alerts"] else silent).add(check["alertname"])
    alerts = set(_alerts())
    assert alerts <= fires, f"never shown firing: {sorted(alerts - fires)}"
    assert alerts <= silent, f"never shown silent: {sorted(alerts - silent)}"


def test_every_recording_rule_is_unit_tested() -> None:
    tested = " ".join(
        check["expr"]
        for case in load_yaml(RULES_TEST)["tests"]
        for check in case.get("promql_expr_test", [])
    )
    recorded = {rule["record"] for rule in _rules() if "record" in rule}
    untested = {name for name in recorded if name not in tested}
    assert not untested, f"no promql_expr_test reads {sorted(untested)}"


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (
            "rate(balance_sink_flush_duration_seconds_bucket[5m])",
            {"balance_sink_flush_duration_seconds"},
        ),
        ("balance_sink_paused_count", {"balance_sink_paused_count"}),
        ("topic:balance_sink_consumer_lag_messages:sum > 0", set()),
        ('up{job="balance-sink"} == 0', set()),
        (
            "balance_sink_batch_rows_sum / balance_sink_batch_rows_count",
            {"balance_sink_batch_rows"},
        ),
    ],
)
def test_metric_name_parser(expr: str, expected: set[str]) -> None:
    assert metric_names_in(expr) == expected
