"""docker-compose.yml: valid for compose, ordered start-up, pinned images, consistent config."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path, PurePosixPath
from typing import Any, Final

import pytest

from tests.deploy.files import DEPLOY, REPO, load_toml, load_yaml, run
from worker.core.fee_schedule import load_fee_schedule

COMPOSE_FILE: Final = REPO / "docker-compose.yml"
COMPOSE_DIR: Final = DEPLOY / "compose"
INFRASTRUCTURE: Final = ("kafka", "tdengine", "prometheus", "grafana")
ONE_SHOTS: Final = ("kafka-init", "db-init", "sample-producer")
SINK_IMAGE: Final = "balance-sink:local"
CONDITIONS: Final = {"service_started", "service_healthy", "service_completed_successfully"}


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = load_yaml(COMPOSE_FILE)
    return compose


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return services


def _workers() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in _services().items()
        if service.get("image") == SINK_IMAGE and service.get("command", [None])[0] == "run"
    }


def _config() -> dict[str, Any]:
    return load_toml(COMPOSE_DIR / "config.toml")


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(number) * units[unit] for number, unit in parts)


def _docker_compose() -> list[str]:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("the docker command is absent: `docker compose config` cannot run here")
    probe = run(docker, "compose", "version")
    if probe.returncode != 0:
        pytest.skip(
            "docker is present but its compose plugin is not (`docker compose version` "
            f"failed: {probe.stderr.strip()[:200]})"
        )
    return [docker, "compose"]


def test_docker_compose_config_is_valid() -> None:
    result = run(*_docker_compose(), "-f", str(COMPOSE_FILE), "config", "-q", cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", f"compose warns: {result.stderr}"


def test_docker_compose_resolves_the_worker_anchors() -> None:
    """What compose itself resolves from the YAML anchors matches what these tests read."""
    command = [*_docker_compose(), "-f", str(COMPOSE_FILE), "config", "--format", "json"]
    result = run(*command, cwd=REPO)
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)["services"]
    for name, service in _workers().items():
        got = {dep: cond["condition"] for dep, cond in resolved[name]["depends_on"].items()}
        want = {dep: cond["condition"] for dep, cond in service["depends_on"].items()}
        assert got == want, name
        assert resolved[name]["healthcheck"]["test"] == service["healthcheck"]["test"], name


def test_two_worker_replicas_with_healthchecks_and_ordered_start() -> None:
    workers = _workers()
    assert sorted(workers) == ["worker-1", "worker-2"]
    for name, worker in workers.items():
        check = worker["healthcheck"]
        assert not check.get("disable"), name
        assert any("/healthz" in part for part in check["test"]), name
        conditions = {dep: spec["condition"] for dep, spec in worker["depends_on"].items()}
        assert conditions == {
            "kafka": "service_healthy",
            "tdengine": "service_healthy",
            "kafka-init": "service_completed_successfully",
            "db-init": "service_completed_successfully",
        }, name
        assert worker["restart"] == "unless-stopped", name


def test_workers_expose_distinct_host_ports_on_loopback() -> None:
    published = [port for worker in _workers().values() for port in worker["ports"]]
    assert len(published) == len(set(published)) == 2
    for service in _services().values():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{port}: bind host ports to loopback only"


def test_workers_stop_gracefully_and_run_locked_down() -> None:
    shutdown = _config()["worker"]["shutdown_timeout_s"]
    for name, worker in _workers().items():
        assert _seconds(worker["stop_grace_period"]) >= shutdown + 10, name
        assert worker["read_only"] is True, name
        assert worker["cap_drop"] == ["ALL"], name
        assert "/tmp" in worker["tmpfs"], name


@pytest.mark.parametrize("service", INFRASTRUCTURE)
def test_infrastructure_has_healthchecks(service: str) -> None:
    check = _services()[service]["healthcheck"]
    assert not check.get("disable")
    assert check["test"][0] in {"CMD", "CMD-SHELL"}
    assert _seconds(check["interval"]) <= 30
    assert check["retries"] >= 3


def test_dependencies_name_services_that_can_satisfy_them() -> None:
    services = _services()
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: use the long form with a condition"
        for dependency, spec in depends.items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            condition = spec["condition"]
            assert condition in CONDITIONS, f"{name}: {condition}"
            target = services[dependency]
            if condition == "service_healthy":
                assert "healthcheck" in target and not target["healthcheck"].get("disable")
            if condition == "service_completed_successfully":
                assert target.get("restart") == "no", f"{dependency} must be a one-shot"


def test_one_shot_jobs_depend_on_what_they_set_up() -> None:
    services = _services()
    assert services["kafka-init"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    assert services["db-init"]["depends_on"] == {"tdengine": {"condition": "service_healthy"}}
    assert services["db-init"]["command"][0] == "init-db"
    producer = services["sample-producer"]["depends_on"]
    assert producer["kafka-init"]["condition"] == "service_completed_successfully"
    for name in ONE_SHOTS:
        assert services[name]["restart"] == "no", name


def test_images_are_pinned() -> None:
    for name, service in _services().items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image}"
        if image == SINK_IMAGE:
            assert service["build"]["dockerfile"] == "Dockerfile", name
        else:
            assert re.fullmatch(r"v?\d+(\.\d+)+", tag), f"{name}: pin a release, not {tag!r}"


def test_images_meet_the_required_versions() -> None:
    services = _services()

    def version(service: str) -> tuple[int, ...]:
        tag = services[service]["image"].rpartition(":")[2].lstrip("v")
        return tuple(int(part) for part in tag.split("."))

    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert version("kafka") >= (4, 1)
    assert services["tdengine"]["image"].startswith("tdengine/tdengine:")
    assert version("tdengine") >= (3, 3, 6)
    assert services["kafka-init"]["image"] == services["kafka"]["image"]
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")


def test_kafka_init_creates_the_configured_topics() -> None:
    script = " ".join(" ".join(_services()["kafka-init"]["command"]).split())
    created = dict(re.findall(r"--topic (\S+) --partitions (\d+)", script))
    kafka = _config()["kafka"]
    for topic in [*kafka["topics"], kafka["dead_letter_topic"]]:
        assert topic in created, f"kafka-init does not create {topic}"
    assert int(created["trades"]) == 12
    assert script.count("--if-not-exists") == len(created), "re-running `up` must succeed"
    env = _services()["kafka"]["environment"]
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_config_endpoints_are_compose_services() -> None:
    config = _config()
    services = _services()
    host, port = config["kafka"]["bootstrap_servers"].split(":")
    assert host in services
    assert (
        f"PLAINTEXT://{host}:{port}" in services[host]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    )
    url = re.fullmatch(r"http://([\w-]+):(\d+)", config["tdengine"]["url"])
    assert url and url.group(1) in services and url.group(2) == "6041"
    assert "password" not in config["tdengine"], "the password comes from the compose secret"


def test_workers_get_config_fee_schedule_and_secret_where_config_expects() -> None:
    compose = _compose()
    config = _config()
    for name, service in {**_workers(), "db-init": _services()["db-init"]}.items():
        targets = {item["source"]: item["target"] for item in service["configs"]}
        command = service["command"]
        assert targets["balance-sink-config"] == command[command.index("--config") + 1], name
        assert targets["fee-schedule"] == config["fee_schedule"], name
        secret = PurePosixPath(config["tdengine"]["password_file"])
        assert secret.parent == PurePosixPath("/run/secrets")
        assert secret.name in service["secrets"], name
    for section in ("configs", "secrets"):
        for name, item in compose[section].items():
            assert (REPO / item["file"]).is_file(), f"{section}.{name}: {item['file']}"


def test_prometheus_scrapes_every_worker() -> None:
    config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "balance-sink"]
    targets = {target for group in job["static_configs"] for target in group["targets"]}
    port = _config()["metrics"]["port"]
    assert targets == {f"{name}:{port}" for name in _workers()}
    for name, worker in _workers().items():
        assert worker["hostname"] == name


def test_bind_mounts_exist() -> None:
    for name, service in _services().items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name}: {source}"


def test_compose_fee_schedule_loads() -> None:
    schedule = load_fee_schedule(COMPOSE_DIR / "fee_schedule.toml")
    assert {symbol for version in schedule.versions for symbol in version.symbols} == {1, 2, 3}


def test_compose_secret_is_only_tdengines_default() -> None:
    """The one committed credential is TDengine's documented out-of-the-box password."""
    secrets = sorted((COMPOSE_DIR / "secrets").iterdir())
    assert [path.name for path in secrets] == ["README.md", "tdengine_password"]
    assert (COMPOSE_DIR / "secrets" / "tdengine_password").read_text() == "taosdata"


def test_check_config_accepts_the_compose_config(tmp_path: Path) -> None:
    """`balance-sink check-config` on the compose config, paths pointed at local copies."""
    help_text = run(sys.executable, "-m", "worker", "--help").stdout
    if "check-config" not in help_text:
        pytest.skip("this worker has no check-config subcommand yet")
    config = _config()
    password = tmp_path / "tdengine_password"
    password.write_text("taosdata")
    fee = tmp_path / "fee_schedule.toml"
    fee.write_bytes((COMPOSE_DIR / "fee_schedule.toml").read_bytes())
    text = (COMPOSE_DIR / "config.toml").read_text(encoding="utf-8")
    text = text.replace(config["fee_schedule"], str(fee))
    text = text.replace(config["tdengine"]["password_file"], str(password))
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    result = run(
        sys.executable,
        "-m",
        "worker.commands.cli",
        "check-config",
        "--config",
        "config.toml",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
