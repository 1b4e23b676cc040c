"""``balance-sink demo``: the whole pipeline on one machine, with nothing to set up.

Starts a local Apache Kafka broker (official jars from Maven Central) and, unless
``TDENGINE_URL`` is given, the in-repo TDengine REST *stand-in*; produces realistic
sample trades (mixed symbols and VIP levels, a fee schedule change in the middle, a few
invalid messages); runs the real worker on them with a live progress display; then
reads the ledger back through SQL and prints a summary. Everything it started, it
stops on exit or Ctrl-C. ``KAFKA_BOOTSTRAP`` and ``TDENGINE_URL`` select existing ones;
each run writes to a database of its own, so the summary counts only its rows.

A failure to start (no ``java`` or ``mvn``, Kafka not answering within ``kafka_wait_s``,
TDengine refusing the password) ends the demo with one line on stderr and exit 1.
"""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Final, TextIO, cast
from urllib.parse import unquote, urlsplit

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from standins.samples import fee_schedule_text, trade_lines
from worker.commands.assemble import Worker, assemble_worker
from worker.commands.audit.checks import sum_may_wrap
from worker.core.deriver import Deriver
from worker.core.fee_schedule import parse_fee_schedule
from worker.engine.engine import EngineStopped
from worker.engine.signals import stop_on_signals
from worker.errors import BalanceSinkError
from worker.ops.config import BatchSettings, KafkaSettings, Settings, WorkerSettings
from worker.ops.kafka_health import wait_for_kafka
from worker.ops.kafka_logs import TARGET_LOGGER, flush_kafka_logs, kafka_client_config
from worker.ops.logs import configure_logging
from worker.ops.metrics import DEAD_LETTER_REASONS, Metrics
from worker.tdengine.options import TDengineOptions
from worker.tdengine.sink import TDengineSink
from worker.tdengine.sql import quote_identifier
from worker.tdengine.transport import Transport

__all__ = ("DEFAULT_KAFKA_WAIT_S", "create_topics", "produce_lines", "run_demo")

PARTITIONS: Final = 4
_REVENUE_ROWS: Final = 5
"""Assets listed in the fee revenue summary, largest first."""
DATABASE_PREFIX: Final = "demo_ledger"
DEFAULT_KAFKA_WAIT_S: Final = 20.0
"""How long the demo waits for an existing cluster (``KAFKA_BOOTSTRAP``) to answer."""
_TOPIC_TIMEOUT_S: Final = 30.0


class _CurrentStderr(io.TextIOBase):
    """Writes to whatever ``sys.stderr`` is now: while the progress bar shows, that is
    rich's proxy, which prints log lines above the bar instead of through it."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def run_demo(
    *, trades: int = 20_000, invalid_ratio: float = 0.02, kafka_wait_s: float = DEFAULT_KAFKA_WAIT_S
) -> int:
    """Run the demo; 0 when every message ended up stored or dead-lettered, 1 when it
    could not start or the worker stopped (one line on stderr says why)."""
    console = Console()
    configure_logging(fmt="human", level="WARNING", stream=cast(TextIO, _CurrentStderr()))
    # librdkafka's transient warnings (e.g. GETPID while a fresh broker loads) are noise
    # here; its errors still show, above the progress bar.
    logging.getLogger(TARGET_LOGGER).setLevel(logging.ERROR)
    try:
        with ExitStack() as stack:
            return _demo(console, stack, trades, invalid_ratio, kafka_wait_s)
    except (BalanceSinkError, KafkaException) as exc:
        flush_kafka_logs()
        print(f"balance-sink demo: {_one_line(exc)}", file=sys.stderr)
        return 1


def _demo(
    console: Console, stack: ExitStack, trades: int, invalid_ratio: float, kafka_wait_s: float
) -> int:
    options = _tdengine(console, stack)
    metrics = Metrics()
    try:  # first: a wrong password stops the demo before a broker is started
        with _quiet():
            sink = TDengineSink.connect(options, observer=metrics)
    except BalanceSinkError as exc:
        raise _DemoError(f"TDengine at {options.url}: {exc}") from None
    stack.callback(_close_quietly, sink)  # when the worker did not run to its end
    bootstrap = _kafka(console, stack, kafka_wait_s)
    topic = f"trades-demo-{uuid.uuid4().hex[:6]}"
    dead_letter_topic = f"{topic}.dead-letter"
    create_topics(bootstrap, {topic: PARTITIONS, dead_letter_topic: 1})
    lines = trade_lines(trades, invalid_ratio=invalid_ratio)
    console.print(
        f"producing {trades:,} sample trades to [bold]{topic}[/] "
        f"({PARTITIONS} partitions, ~{invalid_ratio:.0%} invalid on purpose)"
    )
    produce_lines(bootstrap, topic, lines)
    return _run_worker(
        console, bootstrap, topic, dead_letter_topic, options, sink, metrics, len(lines)
    )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No log lines while checking a service: a failure is said in one line after."""
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def _close_quietly(sink: TDengineSink) -> None:
    with contextlib.suppress(Exception):
        sink.close()


class _DemoError(BalanceSinkError):
    """The demo cannot go on; the message is the one line shown."""


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, KafkaException) and exc.args and hasattr(exc.args[0], "str"):
        return f"Kafka: {exc.args[0].str()}"
    return " ".join(str(exc).split()) or type(exc).__name__


def _kafka(console: Console, stack: ExitStack, wait_s: float) -> str:
    given = os.environ.get("KAFKA_BOOTSTRAP")
    if given:
        console.print(f"Kafka: using KAFKA_BOOTSTRAP={given}")
        with _quiet():
            wait_for_kafka({"bootstrap.servers": given}, wait_s)
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
        database = f"{DATABASE_PREFIX}_{time.strftime('%Y%m%d_%H%M%S')}_{uuid.uuid4().hex[:4]}"
        console.print(f"TDengine: this run writes to its own database {database}")
        return TDengineOptions(
            url=f"{parts.scheme}://{parts.hostname}:{parts.port or 6041}",
            user=unquote(parts.username or os.environ.get("TDENGINE_USER", "root")),
            password=unquote(parts.password or os.environ.get("TDENGINE_PASSWORD", "taosdata")),
            database=database,
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
    return TDengineOptions(url=double.url, password=double.password, database=DATABASE_PREFIX)


def create_topics(bootstrap: str, topics: dict[str, int]) -> None:
    """Create topics (name -> partitions, replication 1) and wait until they exist."""
    admin = AdminClient(kafka_client_config({"bootstrap.servers": bootstrap}))
    futures = admin.create_topics([NewTopic(t, n, 1) for t, n in topics.items()])
    try:
        for future in futures.values():
            future.result(_TOPIC_TIMEOUT_S)
    except TimeoutError:
        raise _DemoError(
            f"Kafka at {bootstrap}: topics not created within {_TOPIC_TIMEOUT_S:.0f} s"
        ) from None
    finally:
        admin.poll(0)  # serves its log lines


def produce_lines(bootstrap: str, topic: str, lines: Iterable[bytes]) -> None:
    """Produce every line as a message value and wait until all are delivered."""
    producer = Producer(
        kafka_client_config(
            {
                "bootstrap.servers": bootstrap,
                "linger.ms": 20,
                "acks": "all",
                "compression.type": "lz4",
                "queue.buffering.max.messages": 500_000,
            }
        )
    )
    for line in lines:
        while True:
            try:
                producer.produce(topic, line)
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(120):
        raise _DemoError(f"{topic}: not every message was delivered within 120 s")


def _run_worker(
    console: Console,
    bootstrap: str,
    topic: str,
    dead_letter_topic: str,
    options: TDengineOptions,
    sink: TDengineSink,
    metrics: Metrics,
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
    worker = assemble_worker(
        settings,
        deriver=Deriver(parse_fee_schedule(fee_schedule_text())),
        sink=sink,
        metrics=metrics,
    )
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
        raise _DemoError(f"worker stopped: {exc}") from None
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
        revenue = _revenue(transport, stable)
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
    ranked = sorted(revenue, key=lambda r: -r[1])
    for asset, amount in ranked[:_REVENUE_ROWS]:
        table.add_row(f"fee revenue, asset {asset}", f"{int(amount):,}")
    if len(ranked) > _REVENUE_ROWS:
        table.add_row(f"fee revenue, {len(ranked) - _REVENUE_ROWS} more assets", "...")
    table.add_row("consumer lag (all partitions)", f"{lag:,}")
    table.add_row("duration", f"{elapsed:.1f} s")
    table.add_row("metrics endpoint (while running)", f"{metrics_url}/metrics")
    console.print(table)


def _revenue(transport: Transport, stable: str) -> list[tuple[int, int]]:
    """Fee revenue per asset; exact: an asset whose SUM could wrap in TDengine's 64-bit
    accumulator (:func:`~worker.commands.audit.checks.sum_may_wrap`) is summed here."""
    fees = f"FROM {stable} WHERE event_type = 2"
    groups = transport.query(
        f"SELECT credit_asset, SUM(credit_amt), COUNT(*), MIN(credit_amt), MAX(credit_amt) "
        f"{fees} GROUP BY credit_asset ORDER BY credit_asset"
    ).rows
    revenue: list[tuple[int, int]] = []
    for asset, total, count, low, high in groups:
        if sum_may_wrap(int(count), low, high):
            amounts = transport.query(
                f"SELECT credit_amt {fees} AND credit_asset = {int(asset):d}"
            ).rows
            total = sum(int(amount) for (amount,) in amounts)
        revenue.append((int(asset), int(total)))
    return revenue


def _lag(bootstrap: str, group: str, topic: str) -> int:
    consumer = Consumer(kafka_client_config({"bootstrap.servers": bootstrap, "group.id": group}))
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        committed = consumer.committed(parts, 10)
        return sum(
            consumer.get_watermark_offsets(tp, 10)[1] - max(c.offset, 0)
            for tp, c in zip(parts, committed, strict=True)
        )
    finally:
        consumer.close()
