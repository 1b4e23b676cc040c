"""What an operator sees when Kafka is not there: at start-up, and while running."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from standins.local_kafka import LocalKafkaBroker

from .test_worker import scrape
from .worker_support import WorkerProcess, free_port, wait_until, worker_config, write_schedule

UNREACHABLE = "127.0.0.1:1"


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line parsed as JSON (a raw ``%3|...|FAIL|`` line fails here)."""
    entries = []
    for line in text.splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}\n{text[-3000:]}") from None
    return entries


def test_run_with_an_unreachable_cluster_exits_1_in_a_few_json_lines(tmp_path: Path) -> None:
    schedule, _ = write_schedule(tmp_path)
    port = free_port()
    config = tmp_path / "config.toml"
    # TDengine is never contacted: the worker waits for Kafka before anything else.
    config.write_text(
        f'fee_schedule = "{schedule}"\n'
        f'[kafka]\nbootstrap_servers = "{UNREACHABLE}"\nstartup_wait_s = 6\n'
        '[tdengine]\nurl = "http://127.0.0.1:9"\npassword = "never-used-here"\n'
        f'[metrics]\nhost = "127.0.0.1"\nport = {port}\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("BALANCE_SINK_")}
    with subprocess.Popen(
        [sys.executable, "-m", "worker", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    ) as proc:
        # While it waits (bounded), probes keep it alive and out of service.
        wait_until(lambda: scrape(port, "/healthz")[0] != 0 or proc.poll() is not None, 30,
                   "the health endpoint")  # fmt: skip
        assert scrape(port, "/healthz") == (200, "ok\n")
        assert scrape(port, "/readyz") == (503, "starting\n")
        output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, output
    entries = json_lines(output)
    assert len(entries) <= 40, output
    last = entries[-1]
    assert last["level"] == "CRITICAL"
    assert last["msg"].startswith(f"cannot start: Kafka at {UNREACHABLE} did not answer within 6 s")
    assert "Connection refused" in last["msg"]  # the last error
    # librdkafka's own lines are there, structured, and collapsed.
    fails = [e for e in entries if e["logger"] == "librdkafka" and e["facility"] == "FAIL"]
    assert 1 <= len(fails) <= 3, output
    assert not any("tdengine" in e["logger"] for e in entries), output


@pytest.mark.kafka
@pytest.mark.tdengine
@pytest.mark.timeout(300)
def test_losing_every_broker_fails_liveness_and_is_logged_once(
    tmp_path: Path, tdengine_endpoint: Any, tdengine_database: str
) -> None:
    """A broker of its own, stopped under the running worker: /healthz turns 503."""
    schedule, _ = write_schedule(tmp_path)
    port = free_port()
    with LocalKafkaBroker() as broker:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        topic = f"trades-{uuid.uuid4().hex[:8]}"
        created = admin.create_topics([NewTopic(topic, 1, 1), NewTopic(f"{topic}.dlq", 1, 1)])
        for future in created.values():
            future.result(30)
        config = worker_config(
            bootstrap=broker.bootstrap_servers,
            topic=topic,
            dead_letter_topic=f"{topic}.dlq",
            group="outage",
            schedule_path=schedule,
            tdengine=tdengine_endpoint,
            database=tdengine_database,
            metrics_port=port,
        ).replace('group_id = "outage"\n', 'group_id = "outage"\nnot_alive_after_down_s = 3\n')
        worker = WorkerProcess(tmp_path, "w", config).start()
        try:
            wait_until(lambda: scrape(port, "/readyz")[0] == 200, 120, "the worker ready",
                       on_timeout=worker.log)  # fmt: skip
            assert scrape(port, "/healthz")[0] == 200
            broker.stop()
            wait_until(lambda: scrape(port, "/healthz")[0] == 503, 120, "liveness failing",
                       on_timeout=worker.log)  # fmt: skip
            _, reason = scrape(port, "/healthz")
            assert "no Kafka broker reachable" in reason
            wait_until(lambda: worker.log().count('"facility":"FAIL"') >= 1, 30, "FAIL lines")
        finally:
            worker.kill()
    entries = json_lines(worker.log())
    outage = [e for e in entries if e["msg"].startswith("no Kafka broker reachable")]
    assert len(outage) == 1, worker.log()[-3000:]
    assert outage[0]["level"] == "ERROR"
    assert not [e for e in entries if e["msg"].startswith("kafka client: KafkaError")]
