"""``balance-sink demo``: the whole pipeline on one machine, with nothing to set up.

Starts a local Apache Kafka broker (official jars from Maven Central) and, unless
``TDENGINE_URL`` is given, the in-repo TDengine REST *stand-in*; produces realistic
sample trades (mixed symbols and VIP levels, a fee schedule change in the middle, a few
invalid messages); runs the real worker on them with a live progress display; then
reads the ledger back through SQL and prints a summary. Everything it started, it
stops on exit or Ctrl-C. ``KAFKA_BOOTSTRAP`` and ``TDENGINE_URL`` select existing ones.
"""

from __future__ import annotations

import gc
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import Final
from urllib.parse import unquote, urlsplit

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from standins.samples import fee_schedule_text, trade_lines
from worker.commands.assemble import Worker, assemble_worker
from worker.core.deriver import Deriver
from worker.core.fee_schedule import parse_fee_schedule
from worker.engine.engine import EngineStopped
from worker.engine.signals import stop_on_signals
from worker.ops.config import BatchSettings, KafkaSettings, Settings, WorkerSettings
from worker.ops.logs import configure_logging
from worker.ops.metrics import DEAD_LETTER_REASONS, Metrics
from worker.tdengine.options import TDengineOptions
from worker.tdengine.sql import quote_identifier

__all__ = ("create_topics", "produce_lines", "run_demo")

PARTITIONS: Final = 4
_REVENUE_ROWS: Final = 5
"""Assets listed in the fee revenue summary, largest first."""
DATABASE: Final = "demo_ledger"


def run_demo(*, trades: int = 20_000, invalid_ratio: float = 0.02) -> int:
    """Run the demo; 0 when every message ended up stored or dead-lettered."""
    console = Console()
    configure_logging(fmt="human", level="WARNING")
    with ExitStack() as stack:
        bootstrap = _kafka(console, stack)
        options = _tdengine(console, stack)
        topic = f"trades-demo-{uuid.uuid4().hex[:6]}"
        dead_letter_topic = f"{topic}.dead-letter"
        create_topics(bootstrap, {topic: PARTITIONS, dead_letter_topic: 1})
        lines = trade_lines(trades, invalid_ratio=invalid_ratio)
        console.print(
            f"producing {trades:,} sample trades to [bold]{topic}[/] "
            f"({PARTITIONS} partitions, ~{invalid_ratio:.0%} invalid on purpose)"
        )
        produce_lines(bootstrap, topic, lines)
        return _run_worker(console, bootstrap, topic, dead_letter_topic, options, len(lines))
    return 0  # pragma: no cover - ExitStack does not swallow exceptions


def _kafka(console: Console, stack: ExitStack) -> str:
    given = os.environ.get("KAFKA_BOOTSTRAP")
    if given:
        console.print(f"Kafka: using KAFKA_BOOTSTRAP={given}")
        return given
    from standins.local_kafka import LocalKafkaBroker

    console.print(
        "Kafka: starting a local Apache Kafka broker (jars from Maven Central, "
        "cached after the first run) ..."
    )
    broker = LocalKafkaBroker()
    stack.callback(broker.stop)
    # Kafka clients caught in reference cycles (consumer callbacks <-> loop) would outlive
    # the broker and log disconnects; collect them before it stops (callbacks run LIFO).
    stack.callback(gc.collect)
    broker.start()
    console.print(f"Kafka: ready at {broker.bootstrap_servers} (log {broker.log_path})")
    return broker.bootstrap_servers


def _tdengine(console: Console, stack: ExitStack) -> TDengineOptions:
    url = os.environ.get("TDENGINE_URL")
    if url:
        parts = urlsplit(url)
        console.print(
            f"TDengine: using TDENGINE_URL={parts.scheme}://{parts.hostname}:{parts.port}"
        )
        return TDengineOptions(
            url=f"{parts.scheme}://{parts.hostname}:{parts.port or 6041}",
            user=unquote(parts.username or os.environ.get("TDENGINE_USER", "root")),
            password=unquote(parts.password or os.environ.get("TDENGINE_PASSWORD", "taosdata")),
            database=DATABASE,
        )
    from standins.tdengine_double import TDengineDouble

    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="balance-sink-demo-")))
    double = TDengineDouble(db_file=str(workdir / "ledger.sqlite3"))
    stack.callback(double.stop)
    double.start()
    console.print(
        f"TDengine: [yellow]local TDengine REST stand-in[/] at {double.url} "
        "(the in-repo test double, NOT TDengine; set TDENGINE_URL for a real server)"
    )
    return TDengineOptions(url=double.url, database=DATABASE)


def create_topics(bootstrap: str, topics: dict[str, int]) -> None:
    """Create topics (name -> partitions, replication 1) and wait until they exist."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(t, n, 1) for t, n in topics.items()])
    for future in futures.values():
        future.result(30)


def produce_lines(bootstrap: str, topic: str, lines: Iterable[bytes]) -> None:
    """Produce every line as a message value and wait until all are delivered."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "acks": "all",
            "compression.type": "lz4",
            "queue.buffering.max.messages": 500_000,
        }
    )
    for line in lines:
        while True:
            try:
                producer.produce(topic, line)
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(120):
        raise SystemExit(f"{topic}: not every message was delivered")


def _run_worker(
    console: Console,
    bootstrap: str,
    topic: str,
    dead_letter_topic: str,
    options: TDengineOptions,
    total: int,
) -> int:
    group = f"balance-sink-demo-{uuid.uuid4().hex[:6]}"
    settings = Settings(
        fee_schedule="(the demo's sample schedule)",
        kafka=KafkaSettings(
            bootstrap_servers=bootstrap,
            group_id=group,
            topics=(topic,),
            dead_letter_topic=dead_letter_topic,
        ),
        tdengine=options,
        batch=BatchSettings(linger_ms=200),
        worker=WorkerSettings(summary_interval_s=3600),
    )
    worker = assemble_worker(settings, deriver=Deriver(parse_fee_schedule(fee_schedule_text())))
    server = worker.health_server(host="127.0.0.1", port=0)
    server.start()
    metrics_url = server.url  # the bound port; read while the server is up
    console.print(f"worker: consuming with group {group}; metrics at {metrics_url}/metrics")
    started = time.monotonic()
    watcher = threading.Thread(target=_watch, args=(worker, total, console), daemon=True)
    watcher.start()
    try:
        with stop_on_signals(worker.stop):
            worker.run()
    except EngineStopped as exc:
        console.print(f"[red]worker stopped: {exc}[/]")
        return 1
    finally:
        server.stop()
    elapsed = time.monotonic() - started
    _summary(console, options, worker.metrics, bootstrap, group, topic, elapsed, metrics_url)
    return 0


def _watch(loop: Worker, total: int, console: Console) -> None:
    """Show progress; stop the loop once every message is stored or dead-lettered."""
    columns = (
        TextColumn("[bold]worker"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("messages  {task.fields[rows]:,} rows  {task.fields[dead]:,} dead-lettered"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("consume", total=total, rows=0, dead=0)
        while True:
            state = loop.progress
            done = state["messages"] >= total and loop.buffered_messages == 0
            progress.update(
                task, completed=state["messages"], rows=state["rows"], dead=state["dead"]
            )
            if done:
                loop.stop()
                return
            time.sleep(0.1)


def _summary(
    console: Console,
    options: TDengineOptions,
    metrics: Metrics,
    bootstrap: str,
    group: str,
    topic: str,
    elapsed: float,
    metrics_url: str,
) -> None:
    from worker.tdengine.transport import open_transport

    stable = f"{quote_identifier(options.database)}.{quote_identifier('balance_events')}"
    transport = open_transport(options)
    try:
        rows = transport.query(f"SELECT COUNT(*) FROM {stable}").rows[0][0]
        revenue = transport.query(
            f"SELECT credit_asset, SUM(credit_amt) FROM {stable} WHERE event_type = 2 "
            "GROUP BY credit_asset ORDER BY credit_asset"
        ).rows
    finally:
        transport.close()
    lag = _lag(bootstrap, group, topic)
    table = Table(title="balance-sink demo: the ledger read back through SQL")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("rows in balance_events", f"{rows:,}")
    for reason in DEAD_LETTER_REASONS:
        count = metrics.registry.get_sample_value(
            "balance_sink_messages_dead_lettered_total", {"reason": reason}
        )
        if count:
            table.add_row(f"dead-lettered: {reason}", f"{int(count):,}")
    ranked = sorted(revenue, key=lambda r: -int(r[1]))
    for asset, amount in ranked[:_REVENUE_ROWS]:
        table.add_row(f"fee revenue, asset {asset}", f"{int(amount):,}")
    if len(ranked) > _REVENUE_ROWS:
        table.add_row(f"fee revenue, {len(ranked) - _REVENUE_ROWS} more assets", "...")
    table.add_row("consumer lag (all partitions)", f"{lag:,}")
    table.add_row("duration", f"{elapsed:.1f} s")
    table.add_row("metrics endpoint (while running)", f"{metrics_url}/metrics")
    console.print(table)


def _lag(bootstrap: str, group: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        committed = consumer.committed(parts, 10)
        return sum(
            consumer.get_watermark_offsets(tp, 10)[1] - max(c.offset, 0)
            for tp, c in zip(parts, committed, strict=True)
        )
    finally:
        consumer.close()
