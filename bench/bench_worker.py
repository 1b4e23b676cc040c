"""End-to-end worker benchmark on a local broker.

Pre-produces trades to a 4-partition topic, then measures, each in a fresh process:
the raw confluent-kafka consume rate (no processing: the ceiling for a Python
consumer), (i) the worker with a sink that builds the INSERT statements and discards
them (the worker's own cost), (ii) the worker against the REST test double (run as its
own process), and (iii) against real TDengine when TDENGINE_URL is set.

Run: ``python -m bench.bench_worker [--trades N] [--double-trades N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer

from standins.samples import fee_schedule_text, trade_lines
from worker.commands.demo import create_topics, produce_lines

PARTITIONS = 4
OUT = Path(__file__).resolve().parent / "out"


def produce(bootstrap: str, topic: str, count: int) -> float:
    """Create a 4-partition topic and produce ``count`` sample trades; seconds taken."""
    create_topics(bootstrap, {topic: PARTITIONS})
    start = time.perf_counter()
    produce_lines(
        bootstrap,
        topic,
        (
            line
            for chunk in range(0, count, 100_000)
            for line in trade_lines(min(100_000, count - chunk), seed=chunk)
        ),
    )
    return time.perf_counter() - start


def child(args: argparse.Namespace) -> None:
    """One measurement in this (fresh) process; prints a JSON result line."""
    if args.mode == "raw":
        consumer = Consumer(
            {
                "bootstrap.servers": args.bootstrap,
                "group.id": uuid.uuid4().hex,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe([args.topic])
        seen = 0
        start = 0.0
        while seen < args.count:
            batch = consumer.consume(2000, 1.0)
            if batch and not start:
                start = time.perf_counter()
            seen += sum(1 for m in batch if m.error() is None)
        elapsed = time.perf_counter() - start
        consumer.close()
        print(json.dumps({"seconds": elapsed, "messages": seen, "rss_mib": _rss_mib()}))
        return
    print(json.dumps(_run_worker(args)))


def _run_worker(args: argparse.Namespace) -> dict[str, Any]:
    from worker.commands.assemble import assemble_worker
    from worker.core.deriver import Deriver
    from worker.core.fee_schedule import parse_fee_schedule
    from worker.engine.sink import MessageRows, Sink, SinkResult
    from worker.ops.config import BatchSettings, KafkaSettings, Settings, WorkerSettings
    from worker.tdengine.options import TDengineOptions
    from worker.tdengine.sink import StatementOnlySink, TDengineSink

    inner: Sink
    tdengine = TDengineOptions(url=args.tdengine_url or "http://localhost:6041",
                               database=f"bench_{uuid.uuid4().hex[:8]}")  # fmt: skip
    inner = StatementOnlySink() if args.mode == "statements" else TDengineSink.connect(tdengine)
    flushes: list[float] = []

    class TimedSink:
        def write(self, batch: Sequence[MessageRows]) -> SinkResult:
            start = time.perf_counter()
            try:
                return inner.write(batch)
            finally:
                flushes.append(time.perf_counter() - start)

        def close(self) -> None:
            inner.close()

    settings = Settings(
        fee_schedule="(the sample schedule)",
        kafka=KafkaSettings(bootstrap_servers=args.bootstrap, group_id=uuid.uuid4().hex,
                            topics=(args.topic,), dead_letter_topic=f"{args.topic}.dlq"),
        tdengine=tdengine,
        batch=BatchSettings(max_rows=20_000, max_bytes=1_000_000, linger_ms=500),
        worker=WorkerSettings(
            retry_initial_backoff_ms=200,
            retry_max_backoff_ms=5000,
            shutdown_timeout_s=30,
            not_ready_after_failing_s=60,
            summary_interval_s=3600,
        ),
    )  # fmt: skip
    worker = assemble_worker(
        settings, deriver=Deriver(parse_fee_schedule(fee_schedule_text())), sink=TimedSink()
    )
    started: list[float] = []

    def watch() -> None:
        while True:
            progress = worker.progress
            if progress["messages"] and not started:
                started.append(time.perf_counter())
            if progress["messages"] >= args.count and worker.buffered_messages == 0:
                worker.stop()
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    worker.run()
    elapsed = time.perf_counter() - started[0]
    flushes.sort()
    progress = worker.progress
    return {
        "seconds": elapsed,
        "messages": progress["messages"],
        "rows": progress["rows"],
        "dead": progress["dead"],
        "flushes": len(flushes),
        "p99_flush_s": flushes[int(len(flushes) * 0.99) - 1] if flushes else 0.0,
        "rss_mib": _rss_mib(),
    }


def _rss_mib() -> float:
    for row in Path("/proc/self/status").read_text().splitlines():
        if row.startswith("VmHWM:"):
            return int(row.split()[1]) / 1024
    return 0.0


def measure(mode: str, bootstrap: str, topic: str, count: int, url: str = "") -> dict[str, Any]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.bench_worker",
            "--child",
            mode,
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--count",
            str(count),
            "--tdengine-url",
            url,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trades", type=int, default=1_000_000)
    parser.add_argument("--double-trades", type=int, default=100_000)
    parser.add_argument("--child", dest="mode")
    parser.add_argument("--bootstrap")
    parser.add_argument("--topic")
    parser.add_argument("--count", type=int)
    parser.add_argument("--tdengine-url", default="")
    args = parser.parse_args(argv)
    if args.mode:
        child(args)
        return 0

    with kafka_bootstrap() as bootstrap:
        topic = f"bench-{uuid.uuid4().hex[:8]}"
        produced_s = produce(bootstrap, topic, args.trades)
        print(f"produced {args.trades:,} trades in {produced_s:.1f} s")
        raw = measure("raw", bootstrap, topic, args.trades)
        raw_rate = raw["messages"] / raw["seconds"]
        print(f"raw confluent-kafka consume:  {raw_rate:,.0f} msg/s (RSS {raw['rss_mib']:.0f} MiB)")
        stm = measure("statements", bootstrap, topic, args.trades)
        _report("(i) worker, statement-only sink", stm, raw_rate)
        small = f"{topic}-double"
        produce(bootstrap, small, args.double_trades)
        with rest_double() as url:
            _report(
                "(ii) worker -> REST double",
                measure("tdengine", bootstrap, small, args.double_trades, url),
                raw_rate,
            )
        real = os.environ.get("TDENGINE_URL")
        if real:
            _report(
                "(iii) worker -> TDengine",
                measure("tdengine", bootstrap, small, args.double_trades, real),
                raw_rate,
            )
        else:
            print("(iii) worker -> TDengine: skipped, TDENGINE_URL is not set")
    return 0


@contextmanager
def kafka_bootstrap() -> Iterator[str]:
    """``KAFKA_BOOTSTRAP``, or a local broker started for the benchmark (stopped after)."""
    given = os.environ.get("KAFKA_BOOTSTRAP")
    if given:
        yield given
        return
    from standins.local_kafka import LocalKafkaBroker

    with LocalKafkaBroker() as broker:  # started on entry, stopped on exit
        yield broker.bootstrap_servers


@contextmanager
def rest_double() -> Iterator[str]:
    """The TDengine REST double in a process of its own; yields its URL."""
    double = subprocess.Popen(
        [sys.executable, "-m", "standins.tdengine_double", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        yield _double_url(double)
    finally:
        double.terminate()
        double.wait(10)


def _double_url(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    for line in proc.stdout:
        for word in line.split():
            if word.startswith("http://127.0.0.1:"):
                return word.rstrip(".,")
    raise SystemExit("the TDengine double did not print its URL")


def _report(name: str, result: dict[str, Any], raw_rate: float) -> None:
    trades_s = result["messages"] / result["seconds"]
    print(
        f"{name}: {trades_s:,.0f} trades/s, {result['rows'] / result['seconds']:,.0f} rows/s, "
        f"{trades_s / raw_rate:.2f} of raw, p99 flush {result['p99_flush_s'] * 1000:.0f} ms, "
        f"{result['flushes']} flushes, peak RSS {result['rss_mib']:.0f} MiB"
    )


if __name__ == "__main__":
    sys.exit(main())
