"""deploy/k8s: schema-valid manifests that agree with each other, the config and the image.

Built-in kinds are validated by kubernetes-validate (the Kubernetes OpenAPI schemas it
bundles, strict mode: unknown fields fail). PodMonitor, PrometheusRule and ScaledObject are
validated against the vendored schemas in tests/deploy/schemas (see generate.py there).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import shutil
import tomllib
from functools import cache
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any, Final

import jsonschema
import pytest
import yaml

from tests.deploy.files import DEPLOY, REPO, load_toml, load_yaml, load_yaml_all, run
from worker.core.fee_schedule import parse_fee_schedule

K8S: Final = DEPLOY / "k8s"
SCHEMAS: Final = Path(__file__).resolve().parent / "schemas"
OPTIONAL: Final = {"keda-scaledobject.yaml", "init-db-job.yaml"}
"""Applied by hand, not by the kustomization (see the comments in each)."""
KUBERNETES_VERSIONS: Final = ("1.28.0", "1.37.0")
"""Oldest and newest Kubernetes minor the manifests are checked against."""
CUSTOM_KINDS: Final = {
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("keda.sh/v1alpha1", "ScaledObject"),
}
PLACEHOLDER: Final = "change-me"
IMAGE_UID: Final = 10001
"""The Dockerfile's non-root user."""


def _kubernetes_validate() -> ModuleType:
    try:
        return importlib.import_module("kubernetes_validate.utils")
    except ModuleNotFoundError:
        pytest.fail(
            "kubernetes-validate is not installed: pip install 'kubernetes-validate>=1.37' "
            "(a test dependency: it bundles the Kubernetes JSON schemas used offline)",
            pytrace=False,
        )


@cache
def _manifests() -> dict[str, list[dict[str, Any]]]:
    return {
        path.name: load_yaml_all(path)
        for path in sorted(K8S.glob("*.yaml"))
        if path.name != "kustomization.yaml"
    }


def _all_objects() -> list[tuple[str, dict[str, Any]]]:
    return [(name, doc) for name, docs in _manifests().items() for doc in docs]


def _one(kind: str) -> dict[str, Any]:
    found = [doc for _, doc in _all_objects() if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _deployment() -> dict[str, Any]:
    return _one("Deployment")


def _pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = _pod_spec(workload)["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _config_map() -> dict[str, Any]:
    return _one("ConfigMap")


def _config() -> dict[str, Any]:
    return tomllib.loads(_config_map()["data"]["config.toml"])


def _mounts(workload: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Volume name -> (mountPath, volume source) of the workload's container."""
    volumes = {volume["name"]: volume for volume in _pod_spec(workload)["volumes"]}
    return {
        mount["name"]: (mount["mountPath"], volumes[mount["name"]])
        for mount in _container(workload)["volumeMounts"]
    }


def _mount_of(workload: dict[str, Any], source: str, name: str) -> str:
    for path, volume in _mounts(workload).values():
        ref = volume.get(source, {})
        if ref.get("name") == name or ref.get("secretName") == name:
            return path
    raise AssertionError(f"{workload['metadata']['name']} mounts no {source} {name}")


def _workloads() -> list[dict[str, Any]]:
    return [doc for _, doc in _all_objects() if doc["kind"] in {"Deployment", "Job"}]


# ------------------------------------------------------------------------------ schemas


def test_every_manifest_has_identity_and_no_namespace() -> None:
    objects = _all_objects()
    assert len(objects) >= 9
    for name, doc in objects:
        assert doc.get("apiVersion") and doc.get("kind"), name
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"]), name
        assert "namespace" not in doc["metadata"], f"{name}: manifests are namespace-agnostic"
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "balance-sink", name


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_builtin_kinds_validate_against_kubernetes_schemas(version: str) -> None:
    kv = _kubernetes_validate()
    validated = set()
    for name, doc in _all_objects():
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
            continue
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as exc:
            path = ".".join(str(part) for part in exc.path)
            pytest.fail(f"{name} {doc['kind']} at {path}: {exc.message}", pytrace=False)
        validated.add(doc["kind"])
    expected = {"Deployment", "ConfigMap", "Secret", "Service", "PodDisruptionBudget"}
    assert expected | {"ServiceAccount", "Job"} <= validated


def test_kubernetes_validate_rejects_a_misspelt_field() -> None:
    """Guards the strict mode the test above relies on."""
    kv = _kubernetes_validate()
    broken = json.loads(json.dumps(_deployment()))
    _container(broken)["livenessProbes"] = _container(broken).pop("livenessProbe")
    with pytest.raises(kv.ValidationError, match="livenessProbes"):
        kv.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def _custom_schema(api_version: str, kind: str) -> dict[str, Any]:
    path = SCHEMAS / f"{kind.lower()}-{api_version.replace('/', '_')}.json"
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def test_custom_resources_validate_against_vendored_schemas() -> None:
    seen = set()
    for name, doc in _all_objects():
        key = (doc["apiVersion"], doc["kind"])
        if key not in CUSTOM_KINDS:
            continue
        validator = jsonschema.Draft202012Validator(_custom_schema(*key))
        error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
        assert error is None, f"{name} {doc['kind']}: {list(error.absolute_path)}: {error.message}"
        seen.add(key)
    assert seen == CUSTOM_KINDS


@pytest.mark.parametrize(
    ("kind", "breakage"),
    [
        ("ScaledObject", lambda d: d["spec"].update(maxReplicas=12)),
        ("ScaledObject", lambda d: d["spec"].pop("scaleTargetRef")),
        ("ScaledObject", lambda d: d["spec"].update(maxReplicaCount="12")),
        ("PodMonitor", lambda d: d["spec"]["podMetricsEndpoints"][0].update(prot="metrics")),
        ("PrometheusRule", lambda d: d["spec"]["groups"][0]["rules"][0].pop("expr")),
    ],
)
def test_vendored_schemas_reject_broken_resources(kind: str, breakage: Any) -> None:
    doc = json.loads(json.dumps(_one(kind)))
    breakage(doc)
    validator = jsonschema.Draft202012Validator(_custom_schema(doc["apiVersion"], kind))
    assert not validator.is_valid(doc)


# ------------------------------------------------------------------------------ kustomize


def test_kustomization_lists_every_required_manifest() -> None:
    kustomization = load_yaml(K8S / "kustomization.yaml")
    listed = set(kustomization["resources"])
    assert listed == set(_manifests()) - OPTIONAL
    assert "namespace" not in kustomization
    images = {image["name"] for image in kustomization.get("images", [])}
    deployed = {_container(_deployment())["image"].rsplit(":", 1)[0]}
    assert images <= deployed


def test_kustomize_build() -> None:
    kustomize = shutil.which("kustomize")
    kubectl = shutil.which("kubectl")
    if kustomize is None and kubectl is None:
        pytest.skip(
            "neither kustomize nor kubectl on PATH (go install "
            "sigs.k8s.io/kustomize/kustomize/v5@v5.7.1 provides kustomize)"
        )
    command = [kustomize, "build"] if kustomize else [str(kubectl), "kustomize"]
    result = run(*command, str(K8S))
    assert result.returncode == 0, result.stderr
    built = {(doc["kind"], doc["metadata"]["name"]) for doc in _yaml_stream(result.stdout)}
    listed = load_yaml(K8S / "kustomization.yaml")["resources"]
    expected = {
        (doc["kind"], doc["metadata"]["name"]) for name in listed for doc in _manifests()[name]
    }
    assert built == expected


def _yaml_stream(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


# ------------------------------------------------------------------------------ Deployment


def test_deployment_selector_matches_its_pods() -> None:
    deployment = _deployment()
    selector = deployment["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    assert deployment["spec"]["replicas"] == 3


@pytest.mark.parametrize("kind", ["Service", "PodDisruptionBudget", "PodMonitor"])
def test_selectors_pick_the_worker_pods(kind: str) -> None:
    doc = _one(kind)
    selector = doc["spec"]["selector"]
    selector = selector.get("matchLabels", selector)  # Service: plain map
    pods = _deployment()["spec"]["template"]["metadata"]["labels"]
    assert selector and selector.items() <= pods.items(), kind


def test_probes_use_the_named_metrics_port() -> None:
    container = _container(_deployment())
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"metrics": 9108}
    expected = {
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
        "startupProbe": "/healthz",
    }
    for probe, path in expected.items():
        http = container[probe]["httpGet"]
        assert http["path"] == path, probe
        assert http["port"] in ports, f"{probe} port {http['port']!r} is not a named port"
    assert _config()["metrics"]["port"] == ports["metrics"]
    assert _config()["metrics"]["host"] == "0.0.0.0"


def test_grace_period_outlasts_the_worker_shutdown() -> None:
    grace = _pod_spec(_deployment())["terminationGracePeriodSeconds"]
    shutdown = _config()["worker"]["shutdown_timeout_s"]
    assert grace > 25
    assert grace >= shutdown + 10, "the final flush and commit need the shutdown timeout + margin"


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_workloads_set_resources_and_run_locked_down(kind: str) -> None:
    workload = _one(kind)
    pod = _pod_spec(workload)
    container = _container(workload)
    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= container["resources"][bound].keys(), bound
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == IMAGE_UID
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    # A read-only root still needs a writable /tmp (tempfile, librdkafka).
    assert _mounts(workload)["tmp"][0] == "/tmp"


def test_images_are_pinned_and_the_same() -> None:
    images = {_container(workload)["image"] for workload in _workloads()}
    assert len(images) == 1, images
    (image,) = images
    name, _, tag = image.rpartition(":")
    assert name and re.fullmatch(r"\d+\.\d+\.\d+", tag), f"{image}: pin a release tag"


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_config_and_secret_paths_line_up(kind: str) -> None:
    """The --config path, the files config.toml names, and the mounts agree."""
    workload = _one(kind)
    config_dir = PurePosixPath(_mount_of(workload, "configMap", "balance-sink-config"))
    secret_dir = PurePosixPath(_mount_of(workload, "secret", "balance-sink"))
    args = _container(workload)["args"]
    assert args[args.index("--config") + 1] == str(config_dir / "config.toml")
    config = _config()
    keys = _config_map()["data"].keys()
    fee = PurePosixPath(config["fee_schedule"])
    assert fee.parent == config_dir and fee.name in keys
    password = PurePosixPath(config["tdengine"]["password_file"])
    assert password.parent == secret_dir
    assert password.name in _one("Secret")["stringData"]


def test_config_map_holds_a_loadable_config_and_fee_schedule() -> None:
    data = _config_map()["data"]
    assert set(data) == {"config.toml", "fee_schedule.toml"}
    config = _config()
    assert {"kafka", "tdengine", "batch", "worker", "metrics", "log"} <= config.keys()
    assert config["kafka"]["topics"] == ["trades"]
    assert "password" not in config["tdengine"], "secrets belong in the Secret"
    schedule = parse_fee_schedule(data["fee_schedule.toml"], source="configmap.yaml")
    assert schedule.versions


def test_config_map_differs_from_compose_only_where_the_cluster_does() -> None:
    """Tuning stays in step with deploy/compose/config.toml; endpoints and paths may differ."""
    compose = load_toml(DEPLOY / "compose" / "config.toml")
    k8s = _config()
    for section in ("batch", "worker", "metrics", "log"):
        assert k8s[section] == compose[section], section
    for field in ("group_id", "topics", "dead_letter_topic"):
        assert k8s["kafka"][field] == compose["kafka"][field], field


def test_secret_holds_placeholders_only() -> None:
    secret = _one("Secret")
    assert "data" not in secret, "base64 `data` hides what is committed: use stringData"
    values = secret["stringData"]
    assert set(values) == {"tdengine-password", "kafka-sasl-password"}
    for key, value in values.items():
        assert value == PLACEHOLDER, f"{key}: only the {PLACEHOLDER!r} placeholder may be committed"


def test_no_other_manifest_carries_a_password() -> None:
    for name, doc in _all_objects():
        if doc["kind"] == "Secret":
            continue
        text = json.dumps(doc).lower()
        assert "taosdata" not in text, name
        for match in re.finditer(r'"(?:password|passwd|secret)"\s*:\s*"([^"]*)"', text):
            pytest.fail(f"{name}: literal credential {match.group(0)}")


# ------------------------------------------------------------------------------ scaling, monitoring


def _trades_partitions() -> int:
    """Partition count kafka-init gives the input topic in docker-compose.yml."""
    compose = load_yaml(REPO / "docker-compose.yml")
    script = "\n".join(compose["services"]["kafka-init"]["command"])
    found = re.search(r"--topic trades --partitions (\d+)", " ".join(script.split()))
    assert found, "kafka-init must create `trades` with an explicit partition count"
    return int(found.group(1))


def test_keda_scales_within_the_partition_count() -> None:
    scaled = _one("ScaledObject")
    spec = scaled["spec"]
    partitions = _trades_partitions()
    assert partitions == 12
    assert spec["minReplicaCount"] <= _deployment()["spec"]["replicas"] <= spec["maxReplicaCount"]
    assert spec["maxReplicaCount"] <= partitions, "replicas past the partition count sit idle"
    assert spec["scaleTargetRef"]["name"] == _deployment()["metadata"]["name"]
    (trigger,) = spec["triggers"]
    config = _config()["kafka"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == config["group_id"]
    assert trigger["metadata"]["topic"] in config["topics"]
    assert trigger["metadata"]["bootstrapServers"] == config["bootstrap_servers"]
    assert int(trigger["metadata"]["lagThreshold"]) > 0
    assert trigger["metadata"].get("allowIdleConsumers", "false") == "false"


def test_pod_monitor_produces_the_job_the_rules_select() -> None:
    monitor = _one("PodMonitor")
    pod_labels = _deployment()["spec"]["template"]["metadata"]["labels"]
    assert pod_labels[monitor["spec"]["jobLabel"]] == "balance-sink"
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics"
    assert endpoint["path"] == "/metrics"


def test_prometheus_rule_is_rendered_from_rules_yml() -> None:
    renderer = _load_renderer()
    expected = renderer.render()
    actual = (K8S / "prometheusrule.yaml").read_text(encoding="utf-8")
    assert actual == expected, "stale: run .venv/bin/python deploy/k8s/render_prometheusrule.py"
    rule = _one("PrometheusRule")
    assert rule["spec"]["groups"] == load_yaml(DEPLOY / "prometheus" / "rules.yml")["groups"]


def _load_renderer() -> Any:
    spec = importlib.util.spec_from_file_location(
        "render_prometheusrule", K8S / "render_prometheusrule.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pdb_allows_one_voluntary_disruption() -> None:
    pdb = _one("PodDisruptionBudget")["spec"]
    assert pdb.get("maxUnavailable") == 1 or pdb.get("minAvailable") == 2


def test_init_job_creates_the_database_and_the_workers_do_not() -> None:
    job = _one("Job")
    args = _container(job)["args"]
    assert args[0] == "init-db"
    env = {item["name"]: item["value"] for item in _container(job)["env"]}
    assert env["BALANCE_SINK_TDENGINE__CREATE_DATABASE"] == "true"
    assert _config()["tdengine"]["create_database"] is False
    assert _pod_spec(job)["restartPolicy"] in {"OnFailure", "Never"}
