"""deploy/grafana: the dashboard queries real metrics with valid PromQL, and is provisioned."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Final

import yaml

from tests.deploy.files import DEPLOY, REPO, load_yaml, run
from tests.deploy.metric_names import (
    METRICS,
    dashboard_exprs,
    dashboard_metric_names,
    series_names_in,
)

GRAFANA: Final = DEPLOY / "grafana"
DASHBOARD: Final = GRAFANA / "balance-sink.json"

# Grafana expands these before Prometheus sees the query.
MACROS: Final = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
    '"$job"': '"balance-sink"',
    '"$pod"': '".*"',
    '"$topic"': '".*"',
}


def _dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return dashboard


def _panels() -> list[dict[str, Any]]:
    return [panel for panel in _dashboard()["panels"] if panel["type"] != "row"]


def _panel_exprs() -> list[str]:
    return [target["expr"] for panel in _panels() for target in panel["targets"]]


def _expand(expr: str) -> str:
    for macro, value in MACROS.items():
        expr = expr.replace(macro, value)
    return expr


def test_dashboard_identity_and_variables() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] == "balance-sink"
    assert dashboard["title"]
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert {"datasource", "job", "pod", "topic"} <= variables.keys()
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["pod"]["multi"] and variables["pod"]["includeAll"]
    # "All" must also match series without a pod label (a plain scrape config).
    assert variables["pod"]["allValue"] == ".*"


def test_panels_have_unique_ids_and_fit_the_grid() -> None:
    panels = _dashboard()["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area


def test_every_query_uses_the_datasource_variable() -> None:
    for panel in _panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_dashboard_reads_only_exported_metrics() -> None:
    used = dashboard_metric_names(DASHBOARD)
    unknown = used - METRICS.keys()
    assert not unknown, f"the dashboard reads metrics balance-sink does not export: {unknown}"


def test_dashboard_shows_every_exported_metric() -> None:
    missing = METRICS.keys() - dashboard_metric_names(DASHBOARD)
    assert not missing, f"no panel shows {sorted(missing)}"


def test_histograms_are_read_through_their_series() -> None:
    for expr in dashboard_exprs(DASHBOARD):
        for name in series_names_in(expr):
            assert METRICS.get(name) != "histogram", f"{name} needs _bucket/_sum/_count: {expr}"


def test_queries_are_scoped_to_the_selected_job() -> None:
    """Every selector names job="$job": two deployments in one Prometheus never mix."""
    for expr in _panel_exprs():
        selectors = re.findall(r"\b(?:balance_sink_[a-z0-9_]+|up)(\{[^}]*\}|(?![\w{]))", expr)
        assert selectors, expr
        for matchers in selectors:
            assert 'job="$job"' in matchers, f"unscoped selector in {expr}"


def test_flush_latency_panel_shows_p50_p95_p99() -> None:
    quantiles = set()
    for expr in _panel_exprs():
        found = re.match(r"histogram_quantile\((0\.\d+), .*balance_sink_flush_duration", expr)
        if found:
            quantiles.add(found.group(1))
    assert quantiles == {"0.50", "0.95", "0.99"}


def test_every_query_is_valid_promql(promtool: str, tmp_path: Path) -> None:
    """promtool parses each query (macros expanded) as a recording rule."""
    exprs = [_expand(expr) for expr in _panel_exprs()]
    assert not [expr for expr in exprs if "$" in expr], "an unexpanded Grafana variable"
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    result = run(promtool, "check", "rules", str(path))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"SUCCESS: {len(exprs)} rules found" in output, output


def test_provisioning_points_at_the_compose_services() -> None:
    datasources = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    compose = load_yaml(REPO / "docker-compose.yml")["services"]
    assert "prometheus" in compose
    assert "127.0.0.1:9090:9090" in compose["prometheus"]["ports"]

    providers = load_yaml(GRAFANA / "provisioning" / "dashboards" / "balance-sink.yml")
    (provider,) = providers["providers"]
    mounts = dict(volume.rsplit(":", 2)[:2] for volume in compose["grafana"]["volumes"])
    dashboard_target = mounts["./deploy/grafana/balance-sink.json"]
    assert Path(dashboard_target).parent == Path(provider["options"]["path"])
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
