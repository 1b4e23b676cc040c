"""Start-up against TDengine as an operator sees it: ``balance-sink run`` and ``init-db``
in a subprocess, their output checked. TDengine is the stand-in or ``TDENGINE_URL``,
reached through the fault proxy where a fault is needed. ``run`` gets a reachable Kafka
broker (it may wait for Kafka before it contacts TDengine), so TDengine is what fails.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from standins.fault_proxy import FaultProxy
from tests.fixtures.tdengine import TDengineEndpoint, through

from .worker_support import worker_config, write_schedule

pytestmark = [pytest.mark.tdengine, pytest.mark.timeout(300)]


def config_file(
    tmp_path: Path, endpoint: TDengineEndpoint, database: str, bootstrap: str = "127.0.0.1:9"
) -> Path:
    schedule_path, _ = write_schedule(tmp_path)
    path = tmp_path / "worker.toml"
    path.write_text(worker_config(
        bootstrap=bootstrap, topic="trades", dead_letter_topic="dlq", group="g",
        schedule_path=schedule_path, tdengine=endpoint, database=database,
    ))  # fmt: skip
    return path


def run(
    command: str, config: Path, *, startup_timeout_s: float
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BALANCE_SINK_TDENGINE__STARTUP_TIMEOUT_S": str(startup_timeout_s)}
    return subprocess.run(
        [sys.executable, "-m", "worker", command, "--config", str(config)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


def unreachable_url() -> str:
    with socket.socket() as s:  # a port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.kafka
def test_run_exits_1_after_the_wait_naming_the_url_and_the_last_error(
    tmp_path: Path, kafka_bootstrap: str, tdengine_database: str
) -> None:
    secret = "pw-" + tdengine_database
    endpoint = TDengineEndpoint(unreachable_url(), "root", secret, False, None)
    config = config_file(tmp_path, endpoint, tdengine_database, kafka_bootstrap)
    done = run("run", config, startup_timeout_s=2)
    assert done.returncode == 1, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    tdengine_lines = [entry for entry in lines if "kafka" not in str(entry.get("logger"))]
    # start, one warning for the wait, giving up, cannot start (and Kafka's own lines)
    assert len(tdengine_lines) <= 5, done.stderr
    fatal = [entry for entry in lines if "cannot start" in str(entry)]
    assert len(fatal) == 1, done.stderr
    message = json.dumps(fatal[0])
    assert endpoint.url in message and "did not answer within 2 s" in message
    assert "Connection" in message  # the last error: connection refused
    assert secret not in done.stdout + done.stderr


@pytest.mark.kafka
def test_run_with_a_wrong_password_names_user_and_url_never_the_password(
    tmp_path: Path,
    kafka_bootstrap: str,
    tdengine_endpoint: TDengineEndpoint,
    tdengine_database: str,
) -> None:
    wrong = "wrong-" + tdengine_database
    endpoint = TDengineEndpoint(
        tdengine_endpoint.url, tdengine_endpoint.user, wrong, tdengine_endpoint.is_double, None
    )
    # A wait of 600 s would outlast the subprocess timeout: exiting at all shows it is fatal
    # at once.
    config = config_file(tmp_path, endpoint, tdengine_database, kafka_bootstrap)
    done = run("run", config, startup_timeout_s=600)
    assert done.returncode == 1, done.stderr
    assert "Authentication failure" in done.stderr
    assert f"refused user {endpoint.user!r}" in done.stderr
    assert endpoint.url in done.stderr
    assert wrong not in done.stdout + done.stderr


def test_init_db_waits_for_a_server_that_refuses_then_accepts(
    tmp_path: Path,
    tdengine_endpoint: TDengineEndpoint,
    tdengine_database: str,
    tdengine_faults: FaultProxy,
) -> None:
    config = config_file(tmp_path, through(tdengine_faults, tdengine_endpoint), tdengine_database)
    tdengine_faults.refuse_connections(True)
    accept = threading.Timer(3.0, tdengine_faults.refuse_connections, args=(False,))
    accept.start()
    try:
        done = run("init-db", config, startup_timeout_s=60)
    finally:
        accept.cancel()
        tdengine_faults.refuse_connections(False)
    assert done.returncode == 0, done.stderr
    assert f"super table `{tdengine_database}`.`balance_events`: created" in done.stdout
    assert "tdengine transient error, retrying" in done.stderr  # it did wait


def test_init_db_gives_up_on_an_unreachable_port(
    tmp_path: Path, tdengine_endpoint: TDengineEndpoint, tdengine_database: str
) -> None:
    endpoint = TDengineEndpoint(unreachable_url(), "root", "pw", False, None)
    done = run("init-db", config_file(tmp_path, endpoint, tdengine_database), startup_timeout_s=1)
    assert done.returncode == 1
    assert f"init-db failed: TDengine at {endpoint.url} did not answer within 1 s" in done.stderr
