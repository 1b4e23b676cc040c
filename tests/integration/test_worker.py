"""The worker end to end: real Kafka broker, TDengine REST double (or TDENGINE_URL).

Each test runs the real ``balance-sink run`` process(es) and compares the full row set
in TDengine with what the core derives for the produced messages.
"""

from __future__ import annotations

import json
import random
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.metric_names import dashboard_exprs, series_names_in
from tests.fixtures.tdengine import through

from .worker_support import (
    WorkerProcess,
    caught_up,
    committed_offsets,
    expected_ledger,
    free_port,
    high_watermarks,
    read_dead_letters,
    read_rows,
    sample_lines,
    wait_until,
    worker_config,
    write_schedule,
)

pytestmark = [pytest.mark.kafka, pytest.mark.tdengine, pytest.mark.timeout(600)]

PARTITIONS = 4
TRADES = 50_000
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "balance-sink.json"


class Scenario:
    """Topics, database, schedule and expected ledger of one test."""

    def __init__(
        self,
        tmp_path: Path,
        kafka_bootstrap: str,
        topic_factory: Any,
        consumer_config: Any,
        tdengine_endpoint: Any,
        tdengine_database: str,
    ) -> None:
        self.tmp_path = tmp_path
        self.bootstrap = kafka_bootstrap
        self.topic = topic_factory(PARTITIONS, prefix="trades")
        self.dead_letter_topic = topic_factory(1, prefix="dlq")
        self.group = f"bs-{uuid.uuid4().hex[:8]}"
        self.consumer_conf = consumer_config()
        self.endpoint = tdengine_endpoint
        self.database = tdengine_database
        self.schedule_path, self.schedule_text = write_schedule(tmp_path)
        self.started: list[WorkerProcess] = []

    def config(self, *, metrics_port: int | None = None) -> str:
        return worker_config(
            bootstrap=self.bootstrap, topic=self.topic, dead_letter_topic=self.dead_letter_topic,
            group=self.group, schedule_path=self.schedule_path, tdengine=self.endpoint,
            database=self.database, metrics_port=metrics_port,
        )  # fmt: skip

    def worker(self, name: str, *, metrics_port: int | None = None) -> WorkerProcess:
        worker = WorkerProcess(self.tmp_path, name, self.config(metrics_port=metrics_port))
        self.started.append(worker)
        return worker

    def kill_leftovers(self) -> None:
        """Kill workers a failed test left running, so none outlives its test."""
        for worker in self.started:
            worker.kill()

    def wait_all_committed(self, workers: list[WorkerProcess], timeout: float = 300) -> None:
        marks = high_watermarks(self.consumer_conf, self.topic, PARTITIONS)

        def done() -> bool:
            committed = committed_offsets(self.consumer_conf, self.group, self.topic, PARTITIONS)
            return caught_up(committed, marks)

        wait_until(done, timeout, f"committed offsets at the high watermarks {marks}",
                   on_timeout=lambda: "\n".join(w.log()[-3000:] for w in workers))  # fmt: skip


@pytest.fixture
def scenario(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_factory: Any,
    consumer_config: Any,
    tdengine_endpoint: Any,
    tdengine_database: str,
) -> Iterator[Scenario]:
    scenario = Scenario(
        tmp_path, kafka_bootstrap, topic_factory, consumer_config, tdengine_endpoint,
        tdengine_database,
    )  # fmt: skip
    yield scenario
    scenario.kill_leftovers()


def assert_exact_ledger(rows: list[tuple[Any, ...]], expected: set[tuple[Any, ...]]) -> None:
    assert len(rows) == len(set(rows)), "duplicate rows in TDengine"
    missing = expected - set(rows)
    extra = set(rows) - expected
    assert not missing and not extra, f"{len(missing)} rows missing, {len(extra)} extra"


def scrape(port: int, path: str = "/metrics") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, ConnectionError):  # not listening yet
        return 0, ""


def metric_value(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_end_to_end_exact_rows_dead_letters_offsets_and_sigterm(
    scenario: Scenario, produce_messages: Any, tdengine_sql: Any
) -> None:
    lines = sample_lines(TRADES)
    placed = produce_messages(scenario.topic, lines)
    expected, reasons = expected_ledger(lines, scenario.schedule_text)
    port = free_port()
    worker = scenario.worker("w1", metrics_port=port).start()
    scenario.wait_all_committed([worker])
    status, ready = scrape(port, "/readyz")
    assert status == 200, ready
    _, text = scrape(port)
    assert metric_value(text, "balance_sink_events_written_total") >= len(expected)
    exported = {line.split("{")[0].split(" ")[0] for line in text.splitlines()
                if line and not line.startswith("#")}  # fmt: skip
    dashboard = {n for expr in dashboard_exprs(DASHBOARD) for n in series_names_in(expr)}
    assert dashboard, "the dashboard queries no metric?"
    assert dashboard <= exported, (
        f"dashboard queries series the worker does not export: {dashboard - exported}"
    )
    assert metric_value(text, "balance_sink_messages_dead_lettered_total") == len(reasons)
    assert worker.terminate() == 0, worker.log()[-3000:]
    assert "stopped cleanly" in worker.log()

    assert_exact_ledger(read_rows(tdengine_sql, scenario.database), expected)
    dead = read_dead_letters(scenario.consumer_conf, scenario.dead_letter_topic)
    assert Counter(d["headers"]["reason"] for d in dead) == Counter(reasons)
    origin = {pos: line for pos, line in zip(placed, lines, strict=True)}
    for record in dead:
        h = record["headers"]
        assert h["source_topic"] == scenario.topic
        source = (int(h["source_partition"]), int(h["source_offset"]))
        assert record["value"] == origin[source]  # the original value, unchanged
        assert h["detail"] and h["worker_version"]


def test_sigkill_at_random_points_loses_and_duplicates_nothing(
    scenario: Scenario, produce_messages: Any, tdengine_sql: Any
) -> None:
    """Six workers are killed in turn, each at a random point of progress, then one finishes.

    The kill points are chosen by committed progress, not by wall time, so a faster worker
    or a slower machine moves them but cannot push them past the end of the stream.
    """
    lines = sample_lines(TRADES, seed=23)
    produce_messages(scenario.topic, lines)
    expected, _ = expected_ledger(lines, scenario.schedule_text)
    rng = random.Random(5)
    marks = high_watermarks(scenario.consumer_conf, scenario.topic, PARTITIONS)
    total = sum(marks)

    def committed() -> list[int]:
        return committed_offsets(scenario.consumer_conf, scenario.group, scenario.topic,
                                 PARTITIONS)  # fmt: skip

    def progress() -> int:
        return sum(max(offset, 0) for offset in committed())

    def reached(worker: WorkerProcess, target: int) -> Callable[[], bool]:
        return lambda: progress() >= target or not worker.alive()

    workers: list[WorkerProcess] = []
    kills_mid_stream = 0
    kill_points: list[int] = []  # committed messages when each kill landed
    for attempt in range(6):
        worker = scenario.worker(f"w{attempt}").start()
        workers.append(worker)
        if rng.random() < 1 / 3:  # during start-up, the join or the first batch
            time.sleep(rng.uniform(0.2, 3.0))
        else:  # after a random share of the remaining work has been committed
            before = progress()
            target = before + max(1, int(rng.uniform(0.02, 0.12) * (total - before)))
            wait_until(reached(worker, target), 180,
                       f"committed progress {target}/{total}", every=0.05,
                       on_timeout=worker.log)  # fmt: skip
            assert worker.alive(), worker.log()[-3000:]
        offsets = committed()
        kill_points.append(sum(max(offset, 0) for offset in offsets))
        kills_mid_stream += not caught_up(offsets, marks)
        worker.kill()
    assert kills_mid_stream >= 5, f"the kills should land while work remains: {kill_points}"
    final = scenario.worker("final").start()
    workers.append(final)
    scenario.wait_all_committed(workers)
    assert final.terminate() == 0
    assert_exact_ledger(read_rows(tdengine_sql, scenario.database), expected)


def test_three_replicas_join_one_by_one_and_one_leaves(
    scenario: Scenario, produce_messages: Any, tdengine_sql: Any
) -> None:
    lines = sample_lines(TRADES, seed=31)
    expected, _ = expected_ledger(lines, scenario.schedule_text)
    produce_messages(scenario.topic, lines[: TRADES // 2])
    workers = [scenario.worker("r1").start()]
    time.sleep(2)
    workers.append(scenario.worker("r2").start())
    produce_messages(scenario.topic, lines[TRADES // 2 :])
    time.sleep(2)
    workers.append(scenario.worker("r3").start())
    time.sleep(3)
    assert workers[1].terminate() == 0  # leaves mid-stream: its partitions move on
    scenario.wait_all_committed(workers)
    for worker in (workers[0], workers[2]):
        assert worker.terminate() == 0, worker.log()[-3000:]
    assert_exact_ledger(read_rows(tdengine_sql, scenario.database), expected)
    revokes = sum(w.log().count("partitions revoked") for w in workers)
    assert revokes >= 2, "rebalances should have moved partitions"


def test_tdengine_outage_pauses_resumes_and_loses_nothing(
    scenario: Scenario, produce_messages: Any, tdengine_sql: Any, tdengine_faults: Any
) -> None:
    lines = sample_lines(TRADES, seed=41, invalid_ratio=0.0)
    expected, _ = expected_ledger(lines, scenario.schedule_text)
    produce_messages(scenario.topic, lines[:5000])
    port = free_port()
    scenario.endpoint = through(tdengine_faults, scenario.endpoint)  # the worker's path only
    worker = scenario.worker("w1", metrics_port=port).start()
    wait_until(lambda: metric_value(scrape(port)[1], "balance_sink_events_written_total") > 0
               if worker.alive() else True, 120, "first rows written",
               on_timeout=worker.log)  # fmt: skip
    tdengine_faults.refuse_connections(True)
    try:
        produce_messages(scenario.topic, lines[5000:])
        wait_until(lambda: metric_value(scrape(port)[1], "balance_sink_paused") == 1, 60,
                   "partitions paused", on_timeout=worker.log)  # fmt: skip
        peak_rss_kib = 0
        for _ in range(10):  # the outage lasts; memory must stay bounded
            peak_rss_kib = max(peak_rss_kib, worker.rss_kib())
            time.sleep(0.5)
        status, reason = scrape(port, "/healthz")
        assert status == 200, reason
    finally:
        tdengine_faults.refuse_connections(False)
    scenario.wait_all_committed([worker])
    _, text = scrape(port)
    assert metric_value(text, "balance_sink_paused") == 0
    assert metric_value(text, "balance_sink_messages_dead_lettered_total") == 0
    failed_flushes = 'balance_sink_flush_duration_seconds_count{outcome="transient_error"}'
    assert metric_value(text, failed_flushes) >= 1
    assert worker.terminate() == 0
    assert peak_rss_kib < 300 * 1024, f"RSS {peak_rss_kib} KiB during the outage"
    assert_exact_ledger(read_rows(tdengine_sql, scenario.database), expected)
    assert read_dead_letters(scenario.consumer_conf, scenario.dead_letter_topic) == []


def test_poison_messages_and_refused_rows_go_to_dead_letters_without_blocking(
    scenario: Scenario, produce_messages: Any, tdengine_sql: Any, tdengine_faults: Any
) -> None:
    good = sample_lines(2000, seed=51, invalid_ratio=0.0)
    refused = json.loads(good[100])
    refused["buyer_user_id"] = 987_654_321  # its own subtable, which the fault proxy refuses
    refused["account_type"] = 1
    good[100] = json.dumps(refused).encode()
    poison = [b"{not json", b"[1,2,3]", json.dumps({**refused, "qty": "7"}).encode(),
              json.dumps({**refused, "taker_side": "both"}).encode()]  # fmt: skip
    lines = good[:50] + poison + good[50:]
    tdengine_faults.error_for_subtable("u987654321_a1", 0x060B, "Timestamp data out of range")
    scenario.endpoint = through(tdengine_faults, scenario.endpoint)
    # All on one partition: the other three stay empty, with nothing to commit.
    produce_messages(scenario.topic, lines, partition=0)
    expected, _ = expected_ledger([x for x in lines if x != good[100]], scenario.schedule_text)
    worker = scenario.worker("w1").start()
    scenario.wait_all_committed([worker])
    assert worker.terminate() == 0
    assert_exact_ledger(read_rows(tdengine_sql, scenario.database), expected)
    dead = read_dead_letters(scenario.consumer_conf, scenario.dead_letter_topic)
    assert Counter(d["headers"]["reason"] for d in dead) == Counter(
        {"invalid_json": 1, "invalid_type": 2, "invalid_value": 1, "sink_rejected": 1}
    )
    sink_rejected = next(d for d in dead if d["headers"]["reason"] == "sink_rejected")
    assert sink_rejected["value"] == good[100]
    assert "Timestamp data out of range" in sink_rejected["headers"]["detail"]
