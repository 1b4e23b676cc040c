"""standins.local_kafka: config rendering, jar cache, missing tools, start-up failures.

Tests marked ``kafka`` launch short-lived broker JVMs (jars from the real cache); the
others need neither Java nor Maven.
"""

from __future__ import annotations

import base64
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import MethodType

import pytest
from confluent_kafka.admin import AdminClient

import standins.local_kafka.broker as broker_module
from standins.local_kafka import (
    BrokerConfigError,
    BrokerNotReadyError,
    JarDownloadError,
    JavaNotFoundError,
    LocalKafkaBroker,
    LocalKafkaError,
    MavenNotFoundError,
    PortInUseError,
    cache_root,
    ensure_jars,
)
from standins.local_kafka._config import (
    BROKER_DEFAULTS,
    RESERVED_KEYS,
    new_cluster_id,
    pick_free_ports,
    port_is_free,
    render_server_properties,
)
from worker.errors import BalanceSinkError

pytestmark = pytest.mark.timeout(60)  # tests that launch JVMs set their own

# ---------------------------------------------------------------- helpers


def _parse_properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return {key: value for key, value in pairs}


def _process_gone(pid: int) -> bool:
    """True if ``pid`` no longer exists (or is a zombie nobody reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _process_gone(pid):
            return True
        time.sleep(0.1)
    return _process_gone(pid)


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A loopback port held by a listening socket of this test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.fixture
def java_only_path(tmp_path: Path) -> str:
    """A PATH holding ``java`` and nothing else (in particular no ``mvn``)."""
    java = broker_module.find_java()
    bin_dir = tmp_path / "java-only-bin"
    bin_dir.mkdir()
    (bin_dir / "java").symlink_to(java)
    return str(bin_dir)


# ---------------------------------------------------------------- server.properties


def test_server_properties_wire_listeners_ports_and_data_dir(tmp_path: Path) -> None:
    text = render_server_properties(broker_port=19092, controller_port=19093, data_dir=tmp_path)
    props = _parse_properties(text)
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:19093"
    assert "controller.quorum.voters" not in props  # dynamic quorum: format --standalone
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == props["listeners"]
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["log.dirs"] == str(tmp_path)
    for key, value in BROKER_DEFAULTS.items():
        assert props[key] == value


def test_server_properties_single_broker_and_fast_group_settings(tmp_path: Path) -> None:
    props = _parse_properties(
        render_server_properties(broker_port=1, controller_port=2, data_dir=tmp_path)
    )
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.min.isr",
    ):
        assert props[key] == "1", key
    assert props["group.initial.rebalance.delay.ms"] == "0"
    # The broker refuses to start unless min <= value and heartbeat < session.
    session = int(props["group.consumer.session.timeout.ms"])
    heartbeat = int(props["group.consumer.heartbeat.interval.ms"])
    assert int(props["group.consumer.min.session.timeout.ms"]) <= session
    assert int(props["group.consumer.min.heartbeat.interval.ms"]) <= heartbeat < session
    assert int(props["group.min.session.timeout.ms"]) <= 6000  # the fixtures' session timeout


def test_server_properties_overrides_win_and_extend(tmp_path: Path) -> None:
    props = _parse_properties(
        render_server_properties(
            broker_port=1,
            controller_port=2,
            data_dir=tmp_path,
            overrides={"num.partitions": "3", "log.retention.ms": "1000"},
        )
    )
    assert props["num.partitions"] == "3"
    assert props["log.retention.ms"] == "1000"


@pytest.mark.parametrize("key", sorted(RESERVED_KEYS))
def test_server_properties_refuse_reserved_overrides(tmp_path: Path, key: str) -> None:
    with pytest.raises(BrokerConfigError, match="cannot be overridden") as info:
        render_server_properties(
            broker_port=1, controller_port=2, data_dir=tmp_path, overrides={key: "x"}
        )
    assert info.value.key == key


@pytest.mark.parametrize(
    ("overrides", "ports", "match"),
    [
        ({"num.partitions": "1\nlog.dirs=/elsewhere"}, (1, 2), "single line"),
        ({"bad key": "1"}, (1, 2), "plain property key"),
        ({}, (0, 2), r"1\.\.65535"),
        ({}, (5, 5), "must differ"),
    ],
)
def test_server_properties_reject_bad_input(
    tmp_path: Path, overrides: dict[str, str], ports: tuple[int, int], match: str
) -> None:
    with pytest.raises(BrokerConfigError, match=match):
        render_server_properties(
            broker_port=ports[0], controller_port=ports[1], data_dir=tmp_path, overrides=overrides
        )


def test_server_properties_escape_backslashes(tmp_path: Path) -> None:
    text = render_server_properties(
        broker_port=1, controller_port=2, data_dir=tmp_path, overrides={"x.y": r"a\b"}
    )
    assert "x.y=a\\\\b\n" in text


# ---------------------------------------------------------------- cluster id and ports


def test_cluster_id_is_22_char_base64url_of_16_bytes() -> None:
    ids = {new_cluster_id() for _ in range(500)}
    assert len(ids) == 500
    for cluster_id in ids:
        assert len(cluster_id) == 22
        assert not cluster_id.startswith("-")
        assert set(cluster_id) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_cluster_id_starting_with_dash_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    dash = uuid.UUID(bytes=base64.urlsafe_b64decode("-" + "A" * 21 + "=="))
    good = uuid.UUID(int=42)
    draws = iter([dash, dash, good])
    monkeypatch.setattr("standins.local_kafka._config.uuid.uuid4", lambda: next(draws))
    assert new_cluster_id() == base64.urlsafe_b64encode(good.bytes).decode().rstrip("=")


def test_picked_ports_are_distinct_and_free() -> None:
    ports = pick_free_ports(3)
    assert len(set(ports)) == 3
    assert all(port_is_free(p) for p in ports)


def test_port_is_free_sees_a_listener(listening_port: int) -> None:
    assert not port_is_free(listening_port)


# ---------------------------------------------------------------- jar cache

_FAKE_MVN = """#!/bin/sh
# Stand-in for Maven: records each call, then "downloads" two jars.
echo "$$" >> "$FAKE_MVN_CALLS"
for arg in "$@"; do
  case "$arg" in
    -DoutputDirectory=*) out="${arg#-DoutputDirectory=}" ;;
    -Dkafka.version=*) version="${arg#-Dkafka.version=}" ;;
  esac
done
sleep "${FAKE_MVN_SLEEP:-0}"
if [ -n "$FAKE_MVN_FAIL" ]; then echo "[ERROR] Could not resolve dependencies"; exit 1; fi
mkdir -p "$out"
touch "$out/kafka_2.13-$version.jar" "$out/kafka-clients-$version.jar"
"""


@pytest.fixture
def fake_mvn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put a fake ``mvn`` first on PATH; returns the file listing its invocations."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    script = bin_dir / "mvn"
    script.write_text(_FAKE_MVN)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    calls = tmp_path / "mvn-calls"
    calls.touch()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_MVN_CALLS", str(calls))
    return calls


def _calls(calls_file: Path) -> int:
    return len(calls_file.read_text().split())


def test_cache_root_prefers_balance_sink_cache_then_xdg_then_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BALANCE_SINK_CACHE", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "explicit"
    monkeypatch.delenv("BALANCE_SINK_CACHE")
    assert cache_root() == tmp_path / "xdg" / "balance-sink"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "balance-sink"


def test_ensure_jars_downloads_once_then_reuses_cache(fake_mvn: Path, tmp_path: Path) -> None:
    lib = ensure_jars("9.9.9", tmp_path / "cache")
    assert lib == (tmp_path / "cache" / "kafka-9.9.9" / "lib").resolve()
    assert (lib / "kafka_2.13-9.9.9.jar").is_file()
    assert (lib.parent / "pom.xml").read_text().count("<artifactId>kafka_2.13</artifactId>") == 1
    assert _calls(fake_mvn) == 1
    assert ensure_jars("9.9.9", tmp_path / "cache") == lib
    assert _calls(fake_mvn) == 1  # the marker short-circuits Maven


def test_ensure_jars_redoes_a_half_done_download(fake_mvn: Path, tmp_path: Path) -> None:
    home = tmp_path / "cache" / "kafka-9.9.9"
    (home / "lib").mkdir(parents=True)
    (home / "lib" / "truncated.jar").write_bytes(b"PK")  # killed mid-copy: no marker
    (home / "lib.partial").mkdir()
    lib = ensure_jars("9.9.9", tmp_path / "cache")
    assert _calls(fake_mvn) == 1
    assert sorted(p.name for p in lib.iterdir()) == [
        "kafka-clients-9.9.9.jar",
        "kafka_2.13-9.9.9.jar",
    ]
    assert not (home / "lib.partial").exists()


def test_ensure_jars_failure_leaves_no_marker(
    fake_mvn: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_MVN_FAIL", "1")
    with pytest.raises(JarDownloadError, match="Could not resolve dependencies") as info:
        ensure_jars("9.9.9", tmp_path / "cache")
    assert "mvn exited with status 1" in str(info.value)
    assert not (tmp_path / "cache" / "kafka-9.9.9" / ".complete").exists()
    monkeypatch.delenv("FAKE_MVN_FAIL")
    ensure_jars("9.9.9", tmp_path / "cache")  # the next run tries again
    assert _calls(fake_mvn) == 2


def test_concurrent_ensure_jars_run_maven_once(
    fake_mvn: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_MVN_SLEEP", "0.5")
    results: list[Path] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(ensure_jars("9.9.9", tmp_path / "cache", timeout=30.0))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30.0)
    assert not errors
    assert len(results) == 4 and len(set(results)) == 1
    assert _calls(fake_mvn) == 1


def test_ensure_jars_rejects_a_bad_version(tmp_path: Path) -> None:
    with pytest.raises(BrokerConfigError, match="not a Kafka version"):
        ensure_jars("4.3.1; rm -rf /", tmp_path)


# ---------------------------------------------------------------- missing tools


def test_missing_java_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory
    monkeypatch.delenv("JAVA_HOME", raising=False)
    broker = LocalKafkaBroker(cache_dir=tmp_path / "cache")
    with pytest.raises(JavaNotFoundError) as info:
        broker.start()
    message = str(info.value)
    assert "'java' not found on PATH" in message
    assert "Java 17" in message
    assert info.value.tool == "java"
    assert isinstance(info.value, LocalKafkaError)
    assert isinstance(info.value, BalanceSinkError)
    assert broker.pid is None
    assert not (tmp_path / "cache").exists()  # failed before touching the jar cache


def test_missing_maven_with_empty_cache_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, java_only_path: str
) -> None:
    monkeypatch.setenv("PATH", java_only_path)
    monkeypatch.setenv("BALANCE_SINK_CACHE", str(tmp_path / "cache"))
    broker = LocalKafkaBroker()
    with pytest.raises(MavenNotFoundError) as info:
        broker.start()
    lib = (tmp_path / "cache" / "kafka-4.3.1" / "lib").resolve()
    assert "'mvn' not found on PATH" in str(info.value)
    assert str(lib) in str(info.value)
    assert info.value.lib_dir == lib
    assert broker.pid is None


# ---------------------------------------------------------------- port retry logic (no JVM)


class _FakeLaunch:
    """Stands in for ``LocalKafkaBroker._launch``: the JVM fails to bind ``failures`` times."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.ports: list[tuple[int, int]] = []

    def __call__(
        self,
        broker: LocalKafkaBroker,
        _java: str,
        _lib: Path,
        broker_port: int,
        controller_port: int,
        _timeout: float,
    ) -> None:
        self.ports.append((broker_port, controller_port))
        if len(self.ports) <= self.failures:
            raise PortInUseError(broker_port, log_path=broker.log_path)


@pytest.fixture
def no_jvm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Skip java lookup and jar download; temporary dirs go under ``tmp_path``."""
    monkeypatch.setattr(broker_module, "find_java", lambda: "java")
    monkeypatch.setattr(broker_module, "ensure_jars", lambda *_a, **_k: tmp_path / "lib")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


@pytest.mark.usefixtures("no_jvm")
def test_bind_failure_on_picked_ports_is_retried_with_fresh_ports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    launch = _FakeLaunch(failures=2)
    broker = LocalKafkaBroker(port_attempts=3)
    monkeypatch.setattr(broker, "_launch", MethodType(launch, broker))
    broker.start()
    assert len(launch.ports) == 3
    assert len({port for pair in launch.ports for port in pair}) == 6


@pytest.mark.usefixtures("no_jvm")
def test_bind_failures_give_up_after_port_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    launch = _FakeLaunch(failures=99)
    broker = LocalKafkaBroker(port_attempts=3)
    monkeypatch.setattr(broker, "_launch", MethodType(launch, broker))
    with pytest.raises(PortInUseError, match="after 3 attempts with fresh ports") as info:
        broker.start()
    assert info.value.attempts == 3
    assert info.value.port == launch.ports[-1][0]
    assert len(launch.ports) == 3


@pytest.mark.usefixtures("no_jvm")
def test_bind_failure_on_a_fixed_port_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    launch = _FakeLaunch(failures=99)
    fixed = pick_free_ports(1)[0]
    broker = LocalKafkaBroker(broker_port=fixed, port_attempts=3)
    monkeypatch.setattr(broker, "_launch", MethodType(launch, broker))
    with pytest.raises(PortInUseError) as info:
        broker.start()
    assert info.value.port == fixed
    assert info.value.attempts == 1
    assert [b for b, _ in launch.ports] == [fixed]


def test_port_attempts_must_be_positive() -> None:
    with pytest.raises(BrokerConfigError, match="port_attempts"):
        LocalKafkaBroker(port_attempts=0)


# ---------------------------------------------------------------- real broker JVMs


@pytest.mark.kafka
@pytest.mark.timeout(600)  # a cold cache downloads ~45 MB of jars first
def test_cached_jars_are_one_consistent_kafka_version() -> None:
    lib = ensure_jars()
    names = sorted(p.name for p in lib.glob("*.jar"))
    kafka_jars = [n for n in names if n.startswith("kafka")]
    assert "kafka_2.13-4.3.1.jar" in kafka_jars
    assert all(n.endswith("-4.3.1.jar") for n in kafka_jars), kafka_jars
    assert "log4j-slf4j-impl-2.25.4.jar" in names  # otherwise the broker logs nothing
    assert "slf4j-api-1.7.36.jar" in names
    assert not [n for n in names if n.startswith("slf4j-api-2")]
    assert [n for n in names if n.startswith("lz4-java")] == ["lz4-java-1.10.2.jar"]
    assert [n for n in names if n.startswith("scala-library")] == ["scala-library-2.13.18.jar"]


@pytest.mark.kafka
@pytest.mark.timeout(60)
def test_fixed_port_in_use_fails_fast_without_a_jvm(
    listening_port: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    broker = LocalKafkaBroker(broker_port=listening_port)
    with pytest.raises(PortInUseError) as info:
        broker.start()
    assert info.value.port == listening_port
    assert f"127.0.0.1:{listening_port} is already in use" in str(info.value)
    assert broker.pid is None
    assert not broker.is_running
    assert list(tmp_path.iterdir()) == []  # nothing ran, so no work dir is kept


@pytest.mark.kafka
@pytest.mark.timeout(90)
def test_port_taken_before_the_jvm_binds_is_reported_and_the_jvm_is_gone(
    listening_port: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Simulate losing the race: the pre-check says free, the JVM then fails to bind.
    monkeypatch.setattr(broker_module, "port_is_free", lambda _port: True)
    broker = LocalKafkaBroker(broker_port=listening_port, work_dir=tmp_path / "kafka")
    with pytest.raises(PortInUseError) as info:
        broker.start(timeout=60.0)
    assert info.value.port == listening_port
    assert info.value.log_path == broker.log_path
    assert str(broker.log_path) in str(info.value)
    assert "Address already in use" in broker.log_path.read_text()
    assert broker.pid is not None
    assert _process_gone(broker.pid)
    assert not broker.is_running


@pytest.mark.kafka
@pytest.mark.timeout(120)
def test_life_cycle_skips_a_taken_picked_port_and_cleans_up(
    listening_port: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The first pick is a taken port; the pre-bind check notices and picks again.
    picks = iter([(listening_port, *pick_free_ports(2))])
    monkeypatch.setattr(
        "standins.local_kafka.broker.pick_free_ports",
        lambda n=2: next(picks, None) or pick_free_ports(n),
    )
    broker = LocalKafkaBroker()
    caplog.set_level(logging.WARNING, logger="standins.local_kafka.broker")
    broker.start(timeout=60.0)
    try:
        assert broker.bootstrap_servers != f"127.0.0.1:{listening_port}"
        assert f"port={listening_port} attempt=1" in caplog.text
        assert broker.log_path.read_text().count("=== balance-sink: format + start") == 1
        with pytest.raises(LocalKafkaError, match="already running"):
            broker.start()
        metadata = AdminClient({"bootstrap.servers": broker.bootstrap_servers}).list_topics(
            timeout=10.0
        )
        assert list(metadata.brokers) == [1]
        pid = broker.pid
        work_dir = broker.data_dir.parent
    finally:
        broker.stop()
    assert pid is not None and _process_gone(pid)
    assert not work_dir.exists()  # a clean run cleans up after itself
    broker.stop()  # idempotent
    with pytest.raises(LocalKafkaError, match="not running"):
        _ = broker.bootstrap_servers


@pytest.mark.kafka
@pytest.mark.timeout(60)
def test_not_ready_in_time_names_the_log_and_kills_the_jvm(tmp_path: Path) -> None:
    broker = LocalKafkaBroker(work_dir=tmp_path / "kafka")
    with pytest.raises(BrokerNotReadyError) as info:
        broker.start(timeout=0.01)
    assert info.value.log_path == broker.log_path
    assert str(broker.log_path) in str(info.value)
    assert "within 0.01s" in str(info.value)
    assert broker.log_path.is_file()  # kept for inspection after a failure
    assert broker.pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(broker.pid, 0)
    assert not broker.is_running


def _start_cli(tmp_path: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """Run ``python -m standins.local_kafka`` (temp files under ``tmp_path``) until it is ready."""
    process = subprocess.Popen(
        [sys.executable, "-m", "standins.local_kafka"],
        env={**os.environ, "TMPDIR": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    info: dict[str, str] = {}
    for line in process.stdout:
        key, _, value = line.strip().partition("=")
        info[key] = value
        if key == "pid":
            break
    process.stdout.close()
    assert {"bootstrap_servers", "log", "pid"} <= set(info), info
    return process, info


@pytest.mark.kafka
@pytest.mark.timeout(90)
def test_cli_runs_until_sigterm_and_stops_the_jvm(tmp_path: Path) -> None:
    process, info = _start_cli(tmp_path)
    try:
        metadata = AdminClient({"bootstrap.servers": info["bootstrap_servers"]}).list_topics(
            timeout=10.0
        )
        assert 1 in metadata.brokers
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30.0) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert _wait_gone(int(info["pid"]), 5.0)
    assert not Path(info["log"]).exists()  # a clean stop removes the temporary work dir


@pytest.mark.kafka
@pytest.mark.timeout(90)
def test_jvm_dies_with_a_killed_parent(tmp_path: Path) -> None:
    process, info = _start_cli(tmp_path)
    process.kill()  # SIGKILL: no atexit, no finally; only the parent-death signal remains
    process.wait()
    assert _wait_gone(int(info["pid"]), 30.0), f"broker JVM {info['pid']} outlived its parent"
