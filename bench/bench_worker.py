"""End-to-end worker benchmark on a local broker.

Pre-produces trades to a 4-partition topic, then measures, each in a fresh process:
the raw confluent-kafka consume rate (no processing: the ceiling for a Python
consumer), (i) the worker with a sink that builds the INSERT statements and discards
them (the worker's own cost; ``binds``: the same with the stmt2 bind requests,
which needs taos-ws-py), (ii) the worker against the REST test double (run as its
own process), and (iii) against real TDengine when TDENGINE_URL is set (credentials may
be in the URL; each run writes a database of its own, dropped afterwards).

Each measurement runs ``--runs`` times; the median is reported (and every run with
``--verbose``). ``--spread zipf`` draws users from a Zipf distribution with half of the
trades on a market maker; ``--batch KEY=VALUE`` overrides a ``[batch]`` setting;
``--only`` picks measurements (``raw``, ``statements``, ``binds``, ``double``,
``tdengine``);
``--tables exist`` writes into a database already holding the subtables;
``--remote-us-per-row`` adds a statement-only run that also waits that long per row, as
for a server on another machine (how much a write's wait overlaps with reading). Every
sink here builds a due batch's requests on the engine's thread (``prepare``, as the
worker's ``TDengineSink`` does); ``--build-on-writer`` builds them on the writer thread
instead (inside ``write``), for comparison.
``--write-api stmt2`` writes the TDengine runs through stmt2, sent from a child process
or, with ``--stmt2-sender inline``, from the worker's process.

Run: ``python -m bench.bench_worker [--trades N] [--double-trades N] [--runs N]
[--spread uniform|zipf] [--users N] [--batch max_rows=50000]... [--only a,b]
[--tables first|exist] [--remote-us-per-row US] [--build-on-writer] [--write-api sql|stmt2
[--stmt2-sender process|inline]]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from confluent_kafka import Consumer

from bench import cpu_use
from standins.samples import UNIFORM, UserSpread, fee_schedule_text, trade_lines
from worker.commands.demo import create_topics, produce_lines
from worker.tdengine.options import WRITE_APIS, TDengineOptions
from worker.tdengine.sink import TDengineSink
from worker.tdengine.sql import quote_identifier
from worker.tdengine.transport import open_transport

PARTITIONS = 4
OUT = Path(__file__).resolve().parent / "out"
CHUNK = 100_000
"""Trades generated at a time (each chunk with a seed of its own)."""


def sample(count: int, spread: UserSpread = UNIFORM, first_id: int = 1) -> Iterator[bytes]:
    """``count`` sample trades with trade ids from ``first_id`` (unique: no row overwrites
    another). Another ``first_id`` gives the same users and times: other rows of the
    same subtables."""
    for chunk in range(0, count, CHUNK):
        n = min(CHUNK, count - chunk)
        yield from trade_lines(n, seed=chunk, spread=spread, first_trade_id=first_id + chunk)


def produce(bootstrap: str, topic: str, count: int, spread: UserSpread = UNIFORM) -> float:
    """Create a 4-partition topic and produce ``count`` sample trades; seconds taken."""
    create_topics(bootstrap, {topic: PARTITIONS})
    start = time.perf_counter()
    produce_lines(bootstrap, topic, sample(count, spread))
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
    from worker.engine.sink import MessageRows, PreparingSink, Sink, SinkResult
    from worker.ops.config import BatchSettings, KafkaSettings, Settings, WorkerSettings
    from worker.tdengine.sink import BindOnlySink, StatementOnlySink

    inner: Sink
    tdengine = tdengine_options(args.tdengine_url or "http://localhost:6041",
                                args.database or f"bench_{uuid.uuid4().hex[:8]}")  # fmt: skip
    if args.mode == "statements":
        inner = StatementOnlySink()
    elif args.mode == "binds":  # the worker's share: with the inline sender, the views too
        inner = BindOnlySink(make_views=not tdengine.stmt2_process)
    else:
        inner = TDengineSink.connect(tdengine)
    flushes: list[float] = []
    flushed_rows: list[int] = []
    wait_s = args.remote_us_per_row / 1e6 if args.mode == "statements" else 0.0

    def timed(store: Callable[[], SinkResult], rows: Callable[[], int]) -> SinkResult:
        """Run ``store`` as one timed flush (plus the remote wait, if any); ``rows``
        counts the flush's rows when it failed (this wrapper's cost is not the worker's)."""
        start = time.perf_counter()
        written: int | None = None
        try:
            result = store()
            written = result.rows_written
            if wait_s:  # a server elsewhere: waiting costs this process no CPU
                time.sleep(written * wait_s)
            return result
        finally:
            flushes.append(time.perf_counter() - start)
            flushed_rows.append(rows() if written is None else written)

    class TimedSink:
        def write(self, batch: Sequence[MessageRows]) -> SinkResult:
            return timed(lambda: inner.write(batch), lambda: sum(len(r.events) for r in batch))

        def close(self) -> None:
            inner.close()

    class PreparingTimedSink(TimedSink):
        """Keeps the inner sink's split: ``prepare`` on the engine's thread (untimed, as
        the worker's own work), ``send`` on the writer thread (timed as the flush)."""

        def prepare(self, batch: Sequence[MessageRows]) -> object:
            return cast(PreparingSink, inner).prepare(batch)

        def send(self, prepared: object) -> SinkResult:
            return timed(lambda: cast(PreparingSink, inner).send(prepared), lambda: 0)

    preparing = isinstance(inner, PreparingSink) and not args.build_on_writer
    sink = PreparingTimedSink() if preparing else TimedSink()
    settings = Settings(
        fee_schedule="(the sample schedule)",
        kafka=KafkaSettings(bootstrap_servers=args.bootstrap, group_id=uuid.uuid4().hex,
                            topics=(args.topic,), dead_letter_topic=f"{args.topic}.dlq"),
        tdengine=tdengine,
        batch=BatchSettings(**json.loads(args.batch_json)),
        worker=WorkerSettings(
            retry_initial_backoff_ms=200,
            retry_max_backoff_ms=5000,
            shutdown_timeout_s=30,
            not_ready_after_failing_s=60,
            summary_interval_s=3600,
        ),
    )  # fmt: skip
    worker = assemble_worker(
        settings, deriver=Deriver(parse_fee_schedule(fee_schedule_text())), sink=sink
    )
    started: list[float] = []
    stored: list[float] = []
    children: list[float] = []
    cpu: list[cpu_use.Snapshot] = []

    def watch() -> None:
        """Time from the first message read to the last row stored (the worker's start
        and shutdown are not throughput: they are reported apart)."""
        while True:
            progress = worker.progress
            if progress["messages"] and not started:
                started.append(time.perf_counter())
                cpu.append(cpu_use.snapshot())
            if progress["messages"] >= args.count and worker.buffered_messages == 0:
                stored.append(time.perf_counter())
                cpu.append(cpu_use.snapshot())
                children.append(_children_rss_mib())  # before the sink closes its child
                worker.stop()
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        worker.run()
    finally:
        if args.mode not in BUILD_ONLY and not args.database:
            _drop_database(tdengine)
    stopped = time.perf_counter()
    flushes.sort()
    progress = worker.progress
    return {
        "seconds": stored[0] - started[0],
        "shutdown_s": stopped - stored[0],
        "messages": progress["messages"],
        "rows": progress["rows"],
        "dead": progress["dead"],
        "flushes": len(flushes),
        "rows_per_flush": sum(flushed_rows) / len(flushed_rows) if flushed_rows else 0.0,
        "p99_flush_s": flushes[max(0, int(len(flushes) * 0.99) - 1)] if flushes else 0.0,
        "rss_mib": _rss_mib(),
        "child_rss_mib": children[0] if children else 0.0,
        "cpu": cpu_use.spent(cpu[0], cpu[1]) if len(cpu) == 2 else {},
    }


def tdengine_options(url: str, database: str) -> TDengineOptions:
    """Options for ``url`` (``http://user:password@host:port`` or without credentials),
    writing through ``$BENCH_WRITE_API`` (``sql`` or ``stmt2``; set by ``--write-api``),
    stmt2 sent as ``$BENCH_STMT2_SENDER`` says (``process`` or ``inline``; set by
    ``--stmt2-sender``)."""
    parts = urlsplit(url)
    plain = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    user = unquote(parts.username or "root")
    password = unquote(parts.password or "taosdata")
    write_api = os.environ.get(_WRITE_API_ENV, "sql")
    if write_api not in WRITE_APIS:
        raise SystemExit(f"{_WRITE_API_ENV}={write_api!r}: choose from {', '.join(WRITE_APIS)}")
    sender = os.environ.get(_STMT2_SENDER_ENV, "process")
    if sender not in STMT2_SENDERS:
        raise SystemExit(f"{_STMT2_SENDER_ENV}={sender!r}: choose from {', '.join(STMT2_SENDERS)}")
    return TDengineOptions(
        url=plain, database=database, user=user, password=password,
        write_api=write_api,  # narrowed by the check above
        stmt2_process=sender == "process",
    )  # fmt: skip


def _drop_database(options: TDengineOptions) -> None:
    transport = open_transport(options)
    try:
        transport.execute(f"DROP DATABASE IF EXISTS {quote_identifier(options.database)}")
    finally:
        transport.close()


_CHILD_MAIN = "import sys; from bench.bench_worker import main; sys.exit(main())"
"""The measured worker's entry, run with ``-c``: its stmt2 sender children (``spawn``)
then import no main module, as under ``python -m worker`` or the ``balance-sink``
script. Under ``-m bench.bench_worker`` each child imported this whole benchmark: 17 MiB
more per child than the worker's own."""


def _rss_mib() -> float:
    for row in Path("/proc/self/status").read_text().splitlines():
        if row.startswith("VmHWM:"):
            return int(row.split()[1]) / 1024
    return 0.0


def _children_rss_mib() -> float:
    """Peak RSS of this process's children (the stmt2 sender's child), summed."""
    total = 0.0
    for listing in Path("/proc/self/task").glob("*/children"):
        for pid in listing.read_text().split():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:  # gone meanwhile
                continue
            for row in status.splitlines():
                if row.startswith("VmHWM:"):
                    total += int(row.split()[1]) / 1024
    return total


def measure(
    mode: str,
    bootstrap: str,
    topic: str,
    count: int,
    url: str = "",
    batch: dict[str, Any] | None = None,
    database: str = "",
    remote_us_per_row: float = 0.0,
    build_on_writer: bool = False,
) -> dict[str, Any]:
    """One measurement in a fresh process: its JSON result (into ``database``, kept, if
    given; else into a database of its own, dropped after)."""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _CHILD_MAIN,
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
            "--batch-json",
            json.dumps(batch or {}),
            "--database",
            database,
            "--remote-us-per-row",
            str(remote_us_per_row),
            *(["--build-on-writer"] if build_on_writer else []),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


MODES = ("raw", "statements", "binds", "double", "tdengine")
BUILD_ONLY = ("statements", "binds")
"""Measurements whose sink builds the write requests and discards them."""
_WRITE_API_ENV = "BENCH_WRITE_API"
_STMT2_SENDER_ENV = "BENCH_STMT2_SENDER"
STMT2_SENDERS = ("process", "inline")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trades", type=int, default=1_000_000)
    parser.add_argument("--double-trades", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=1, help="runs per measurement (median)")
    parser.add_argument("--spread", choices=("uniform", "zipf"), default="uniform")
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument(
        "--batch",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a [batch] setting, e.g. max_rows=50000 (repeatable)",
    )
    parser.add_argument("--only", default=",".join(MODES), help="comma-separated measurements")
    parser.add_argument(
        "--tables",
        choices=("first", "exist"),
        default="first",
        help="first: each run writes a new database (every subtable created); exist: runs "
        "write into a database already holding other rows of the same subtables",
    )
    parser.add_argument("--verbose", action="store_true", help="print every run")
    parser.add_argument(
        "--write-api", choices=WRITE_APIS, default=None,
        help="tdengine.write_api of the TDengine runs (default sql)",
    )  # fmt: skip
    parser.add_argument(
        "--stmt2-sender", choices=STMT2_SENDERS, default=None,
        help="with --write-api stmt2: send from a child process (tdengine.stmt2_process, "
        "the default) or from the worker's process",
    )  # fmt: skip
    parser.add_argument("--child", dest="mode")
    parser.add_argument("--bootstrap")
    parser.add_argument("--topic")
    parser.add_argument("--count", type=int)
    parser.add_argument("--tdengine-url", default="")
    parser.add_argument("--batch-json", default="{}")
    parser.add_argument("--database", default="")
    parser.add_argument(
        "--build-on-writer",
        action="store_true",
        help="build a batch's requests on the writer thread (inside write), not on the "
        "engine's thread (prepare) as the worker does",
    )
    parser.add_argument(
        "--remote-us-per-row",
        type=float,
        default=0.0,
        help="statement-only sink: also wait this long per row, as for a server on another "
        "machine (a network wait that uses none of this machine's CPU)",
    )
    args = parser.parse_args(argv)  # fmt: skip
    if args.write_api is not None:  # read by tdengine_options in this and every child process
        os.environ[_WRITE_API_ENV] = args.write_api
    if args.stmt2_sender is not None:
        os.environ[_STMT2_SENDER_ENV] = args.stmt2_sender
    if args.mode:
        child(args)
        return 0
    only = set(args.only.split(","))
    if only - set(MODES):
        parser.error(f"--only: choose from {', '.join(MODES)}")
    batch = {key: int(value) for key, _, value in (b.partition("=") for b in args.batch)}
    spread = (
        UserSpread(users=args.users, kind="zipf", market_maker_share=0.5)
        if args.spread == "zipf" else UserSpread(users=args.users)
    )  # fmt: skip
    print(f"input: {spread.label}, batch {batch or 'defaults'}, tables {args.tables}, "
          f"median of {args.runs} run(s)")  # fmt: skip

    def runs(mode: str, topic: str, count: int, url: str = "") -> list[dict[str, Any]]:
        if mode != "tdengine" or args.tables == "first":
            return [measure(mode, bootstrap, topic, count, url, batch,
                            build_on_writer=args.build_on_writer)
                    for _ in range(args.runs)]  # fmt: skip
        with warmed_database(url, count, spread) as database:
            return [measure(mode, bootstrap, topic, count, url, batch, database,
                            build_on_writer=args.build_on_writer)
                    for _ in range(args.runs)]  # fmt: skip

    with kafka_bootstrap() as bootstrap:
        topic = f"bench-{uuid.uuid4().hex[:8]}"
        raw_rate = 0.0
        if only & {"raw", *BUILD_ONLY}:
            produced_s = produce(bootstrap, topic, args.trades, spread)
            print(f"produced {args.trades:,} trades in {produced_s:.1f} s")
        if "raw" in only:
            raw = runs("raw", topic, args.trades)
            raw_rate = statistics.median(r["messages"] / r["seconds"] for r in raw)
            print(f"raw confluent-kafka consume:  {raw_rate:,.0f} msg/s "
                  f"(RSS {statistics.median(r['rss_mib'] for r in raw):.0f} MiB)")  # fmt: skip
        if "statements" in only:
            _report("(i) worker, statement-only sink", runs("statements", topic, args.trades),
                    raw_rate, args.verbose)  # fmt: skip
        if "binds" in only:
            _report("(i) worker, bind-only sink (stmt2 columns)",
                    runs("binds", topic, args.trades), raw_rate, args.verbose)  # fmt: skip
        if "statements" in only and args.remote_us_per_row:
            remote = [measure("statements", bootstrap, topic, args.trades, "", batch, "",
                              args.remote_us_per_row, args.build_on_writer)
                      for _ in range(args.runs)]  # fmt: skip
            name = f"(i') statement-only + {args.remote_us_per_row:g} us/row remote wait"
            _report(
                name + (", built on the writer" if args.build_on_writer else ""),
                remote,
                raw_rate,
                args.verbose,
            )
        small = f"{topic}-double"
        real = os.environ.get("TDENGINE_URL")
        if only & {"double", "tdengine"}:
            produce(bootstrap, small, args.double_trades, spread)
        if "double" in only:
            with rest_double() as url:
                double = runs("tdengine", small, args.double_trades, url)
                _report("(ii) worker -> REST double", double, raw_rate, args.verbose)
        if "tdengine" in only and real:
            _report("(iii) worker -> TDengine", runs("tdengine", small, args.double_trades, real),
                    raw_rate, args.verbose)  # fmt: skip
        elif "tdengine" in only:
            print("(iii) worker -> TDengine: skipped, TDENGINE_URL is not set")
    return 0


@contextmanager
def warmed_database(url: str, count: int, spread: UserSpread) -> Iterator[str]:
    """A database holding other rows (trade ids from 10^9) of the subtables that the
    sample of ``count`` trades writes; dropped on exit."""
    from worker.core.deriver import Deriver
    from worker.core.fee_schedule import parse_fee_schedule
    from worker.core.rejections import Rejection
    from worker.engine.sink import MessageKey, MessageRows

    options = tdengine_options(url, f"bench_{uuid.uuid4().hex[:8]}")
    sink = TDengineSink.connect(options)
    derive = Deriver(parse_fee_schedule(fee_schedule_text())).derive
    try:
        try:
            groups: list[MessageRows] = []
            for offset, line in enumerate(sample(count, spread, first_id=10**9)):
                events = derive(line)
                if not isinstance(events, Rejection):
                    groups.append(MessageRows(MessageKey("warm-up", 0, offset), events))
                if len(groups) == 5000:
                    sink.write(groups)
                    groups = []
            sink.write(groups)
        finally:
            sink.close()
        yield options.database
    finally:
        _drop_database(options)


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


def _report(name: str, results: list[dict[str, Any]], raw_rate: float, verbose: bool) -> None:
    """Print the median of ``results`` (and each run with ``verbose``)."""
    rows = [_figures(r) for r in results]
    if verbose and len(rows) > 1:
        for i, figures in enumerate(rows, 1):
            print(f"  run {i}: " + _line(figures, raw_rate))
    median = {key: statistics.median(f[key] for f in rows) for key in rows[0]}
    print(f"{name}: " + _line(median, raw_rate))


def _figures(result: dict[str, Any]) -> dict[str, float]:
    seconds = result["seconds"]
    return {
        "trades_s": result["messages"] / seconds,
        "rows_s": result["rows"] / seconds,
        "p99_flush_ms": result["p99_flush_s"] * 1000,
        "flushes": result["flushes"],
        "rows_per_flush": result.get("rows_per_flush", 0.0),
        "rss_mib": result["rss_mib"],
        "child_rss_mib": result.get("child_rss_mib", 0.0),
        "shutdown_s": result.get("shutdown_s", 0.0),
    }


def _line(f: dict[str, float], raw_rate: float) -> str:
    of_raw = f", {f['trades_s'] / raw_rate:.2f} of raw" if raw_rate else ""
    return (
        f"{f['trades_s']:,.0f} trades/s, {f['rows_s']:,.0f} rows/s{of_raw}, p99 flush "
        f"{f['p99_flush_ms']:.0f} ms, {f['flushes']:.0f} flushes of {f['rows_per_flush']:,.0f} "
        f"rows, shutdown {f['shutdown_s']:.2f} s, peak RSS {f['rss_mib']:.0f} MiB"
        + (f" + child {f['child_rss_mib']:.0f} MiB" if f["child_rss_mib"] else "")
    )


if __name__ == "__main__":
    sys.exit(main())
