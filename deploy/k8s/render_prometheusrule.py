"""Render deploy/k8s/prometheusrule.yaml from deploy/prometheus/rules.yml.

The PrometheusRule's spec.groups are rules.yml's groups, unchanged: one source of truth for
compose and Kubernetes. Run after editing rules.yml (tests/deploy/test_k8s.py fails while the
two differ)::

    .venv/bin/python deploy/k8s/render_prometheusrule.py
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE.parent / "prometheus" / "rules.yml"
OUTPUT = HERE / "prometheusrule.yaml"

HEADER = """\
# GENERATED from deploy/prometheus/rules.yml by deploy/k8s/render_prometheusrule.py: edit
# rules.yml, then re-run the script. The alerts and recording rules for the Prometheus
# Operator; add the label your Prometheus' ruleSelector expects (e.g. `release: ...`) in an
# overlay.
"""


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def manifest(rules_path: Path = RULES) -> dict[str, Any]:
    """The PrometheusRule object carrying ``rules_path``'s groups."""
    groups = yaml.safe_load(rules_path.read_text(encoding="utf-8"))["groups"]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "balance-sink", "labels": {"app.kubernetes.io/name": "balance-sink"}},
        "spec": {"groups": groups},
    }


def render(rules_path: Path = RULES) -> str:
    body = yaml.dump(manifest(rules_path), Dumper=_Dumper, sort_keys=False, width=100)
    return HEADER + body


def main() -> int:
    OUTPUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
