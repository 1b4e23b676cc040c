"""The worker end to end against the server's own ceiling: same rows, per write path.

For each spread (``uniform-2000``, ``zipf-2000``, ``uniform-200000``, ``zipf-200000``),
one set of sample trades ``L`` (trade ids from 1) and its twin ``W`` (the same users,
times and amounts, trade ids from 10^9: other rows of the same subtables) are made
once. Then, per write path (the worker's ``tdengine.write_api``: ``sql`` over REST, and
``stmt2`` in its default shape):

* **ceiling**: a plain writer (:mod:`bench.bench_write_paths`) builds every request of
  ``L`` and ``W`` first, in batches of the worker's ``batch.max_rows``, then times only
  the sending: ``L`` into a fresh database (``first``: every subtable is created), then
  ``W`` into it (``exist``: the subtables exist);
* **worker**: the whole worker (:mod:`bench.bench_worker`: consume, decode, derive,
  build, write, commit) reads ``L`` from Kafka into a fresh database, then ``W`` into it;
* **alone**: the worker reads ``L`` with the path's build-only sink, which builds the
  requests and sends nothing: the most one worker process can do on this machine,
  whatever the server costs.

Each measurement runs in a fresh process. The report gives rows/s of both, their ratio
per path, the worker's best path against the best ceiling, and the worker's peak RSS
(with its stmt2 child's). A second table gives the worker alone against each ceiling.
A third says where the machine's CPU went in each timed interval
(:mod:`bench.cpu_use`): per 1,000 rows, the measured process, its children, a local
server, a local broker and the rest, how many cores were busy or stolen, and the ratio
the machine's cores allow at the worker's CPU per row.
Every measurement is a
JSON line in ``--out``. Needs a real TDengine (``TDENGINE_URL``) and uses a local Kafka
broker (or ``KAFKA_BOOTSTRAP``).

Run: ``TDENGINE_URL=http://root:taosdata@host:6041 python -m bench.bench_vs_ceiling``
``[--trades N] [--spreads uniform-2000,...] [--paths sql,stmt2] [--repeats N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import bench_worker, cpu_use
from bench.bench_write_paths import (
    SPREADS,
    Server,
    build_requests,
    derived_batches,
    rss_mib,
    spread_of,
)
from bench.cpu_use import ROLES
from worker.commands.demo import create_topics, produce_lines
from worker.ops.config import BatchSettings
from worker.tdengine.stmt2 import DEFAULT_SHAPE

OUT = Path(__file__).resolve().parent / "out"
CEILING_PATHS = {"sql": "rest-sql", "stmt2": f"stmt2-{DEFAULT_SHAPE}"}
"""The worker's write API -> the plain writer's path that sends the same requests."""
WRITES = ("first", "exist")
TWIN_FIRST_ID = 10**9


def write_lines(spread: str, trades: int, directory: Path) -> tuple[Path, Path]:
    """The sample trades ``L`` and their twin ``W`` as files of JSON lines."""
    files: list[Path] = []
    for name, first_id in (("L", 1), ("W", TWIN_FIRST_ID)):
        path = directory / f"{spread}-{name}.jsonl"
        with path.open("wb") as out:
            for line in bench_worker.sample(trades, spread_of(spread), first_id):
                out.write(line + b"\n")
        files.append(path)
    return files[0], files[1]


def read_lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def ceiling_child(args: argparse.Namespace) -> None:
    """Send ``L`` then ``W`` with the plain writer of one path; one JSON line per write."""
    server = Server(args.url)
    database = f"bench_{uuid.uuid4().hex[:12]}"
    server.create_ledger(database)
    version = server.version()
    try:
        stored = 0
        for write, path in zip(WRITES, (args.lines, args.twin), strict=True):
            batches = derived_batches(read_lines(path), args.batch_rows)
            rows = sum(map(len, batches))
            build, open_sender, close = build_requests(args.path, database, server, batches)
            requests = build()
            send = open_sender()
            before = cpu_use.snapshot()
            started = time.perf_counter()
            affected = sum(send(request) for request in requests)
            seconds = time.perf_counter() - started
            cpu = cpu_use.spent(before, cpu_use.snapshot())
            close()
            if affected != rows:
                raise RuntimeError(f"{args.path}: affected rows {affected} != {rows} sent")
            stored += rows
            print(json.dumps({"write": write, "rows": rows, "seconds": seconds,
                              "rss_mib": rss_mib(), "server_version": version, "cpu": cpu}),
                  flush=True)  # fmt: skip
        counted = server.sql(f"SELECT COUNT(*) FROM `{database}`.`balance_events`")
        if counted["data"][0][0] != stored:
            raise RuntimeError(f"{args.path}: {counted['data'][0][0]} rows stored, {stored} sent")
    finally:
        server.sql(f"DROP DATABASE IF EXISTS `{database}`")


def ceiling(url: str, api: str, lines: Path, twin: Path, batch_rows: int) -> list[dict[str, Any]]:
    """The plain writer's figures for ``api`` (a fresh process)."""
    command = [
        sys.executable, "-m", "bench.bench_vs_ceiling", "--child-ceiling", CEILING_PATHS[api],
        "--url", url, "--lines", str(lines), "--twin", str(twin),
        "--batch-rows", str(batch_rows),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"ceiling {api} failed:\n{done.stderr[-3000:]}")
    return [json.loads(text) for text in done.stdout.splitlines()]


def worker(url: str, api: str, bootstrap: str, topics: Sequence[str], count: int,
           database: str, batch: dict[str, Any]) -> list[dict[str, Any]]:  # fmt: skip
    """The worker's figures for ``api``: ``L`` then ``W`` into ``database`` (dropped after)."""
    os.environ["BENCH_WRITE_API"] = api  # read by bench_worker in its child processes
    server = Server(url)
    try:
        results: list[dict[str, Any]] = []
        for write, topic in zip(WRITES, topics, strict=True):
            result = bench_worker.measure("tdengine", bootstrap, topic, count, url, batch, database)
            results.append({"write": write, **result})
        return results
    finally:
        server.sql(f"DROP DATABASE IF EXISTS `{database}`")


PIPELINE_MODES = {"sql": "statements", "stmt2": "binds"}
"""The worker's write API -> its build-only sink in :mod:`bench.bench_worker`."""


def alone(
    api: str, bootstrap: str, topic: str, count: int, batch: dict[str, Any]
) -> dict[str, Any]:
    """The worker reading ``L`` with the build-only sink of ``api`` (no server): the
    most one worker process can do on this machine, whatever the server costs."""
    os.environ["BENCH_WRITE_API"] = api
    result = bench_worker.measure(PIPELINE_MODES[api], bootstrap, topic, count, batch=batch)
    return {"write": "first", **result}


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    batch_rows = BatchSettings().max_rows
    with (
        bench_worker.kafka_bootstrap() as bootstrap,
        tempfile.TemporaryDirectory() as scratch,
        args.out.open("a") as out,
    ):
        for spread in args.spreads:
            lines, twin = write_lines(spread, args.trades, Path(scratch))
            topics = []
            for path in (lines, twin):
                topic = f"bench-{uuid.uuid4().hex[:8]}"
                create_topics(bootstrap, {topic: bench_worker.PARTITIONS})
                produce_lines(bootstrap, topic, read_lines(path))
                topics.append(topic)
            for repeat in range(1, args.repeats + 1):
                for api in args.paths:
                    database = f"bench_{uuid.uuid4().hex[:12]}"
                    measured = {
                        "ceiling": ceiling(args.url, api, lines, twin, batch_rows),
                        "worker": worker(
                            args.url,
                            api,
                            bootstrap,
                            topics,
                            args.trades,
                            database,
                            json.loads(args.batch),
                        ),
                        "alone": [
                            alone(api, bootstrap, topics[0], args.trades, json.loads(args.batch))
                        ],
                    }
                    for kind, lines_ in measured.items():
                        for line in lines_:
                            record = {"spread": spread, "path": api, "kind": kind,
                                      "repeat": repeat, "trades": args.trades, **line}  # fmt: skip
                            record["rows_per_s"] = record["rows"] / record["seconds"]
                            results.append(record)
                            out.write(json.dumps(record) + "\n")
                            print(f"  {spread:>15} {api:>6} {kind:>8} {line['write']:>6}: "
                                  f"{record['rows_per_s']:>9,.0f} rows/s", flush=True)  # fmt: skip
    return results


def _median(
    results: Sequence[dict[str, Any]], cell: tuple[str, str, str, str], field: str
) -> float:
    """The median of ``field`` over the runs of ``cell`` (spread, write, path, kind)."""
    values = [r[field] for r in results if (r["spread"], r["write"], r["path"], r["kind"]) == cell]
    return statistics.median(values) if values else float("nan")


def report(results: Sequence[dict[str, Any]], paths: Sequence[str]) -> str:
    """Medians per spread and write: ceiling and worker per path, ratios, peak RSS."""

    def median(spread: str, write: str, path: str, kind: str, field: str) -> float:
        return _median(results, (spread, write, path, kind), field)

    version = next((r["server_version"] for r in results if "server_version" in r), "?")
    head = " ".join(f"{'ceil ' + p:>12} {'worker ' + p:>13} {'ratio':>5} {'RSS':>4}" for p in paths)
    lines = [
        f"Worker vs ceiling, rows/s, TDengine {version}, batches of {BatchSettings().max_rows:,}"
        " (RSS: the worker's peak MiB, its stmt2 child's included)",
        f"{'spread':>15} {'write':>5} {head} {'best/best':>9}",
    ]
    for spread in dict.fromkeys(r["spread"] for r in results):
        for write in WRITES:
            cells: list[str] = []
            ceilings: list[float] = []
            workers: list[float] = []
            rss: list[float] = []
            for p in paths:
                c = median(spread, write, p, "ceiling", "rows_per_s")
                w = median(spread, write, p, "worker", "rows_per_s")
                ceilings.append(c)
                workers.append(w)
                rss.append(
                    median(spread, write, p, "worker", "rss_mib")
                    + median(spread, write, p, "worker", "child_rss_mib")
                )
                cells.append(f"{c:>12,.0f} {w:>13,.0f} {w / c:>5.2f} {rss[-1]:>4.0f}")
            best = max(workers) / max(ceilings)
            lines.append(f"{spread:>15} {write:>5} {' '.join(cells)} {best:>9.2f}")
    return "\n".join([*lines, "", alone_report(results, paths), "", cpu_report(results, paths)])


def alone_report(results: Sequence[dict[str, Any]], paths: Sequence[str]) -> str:
    """Medians of the worker alone (build-only sink, no server) against each ceiling."""

    def median(spread: str, write: str, path: str, kind: str) -> float:
        return _median(results, (spread, write, path, kind), "rows_per_s")

    lines = [
        "The worker alone (its build-only sink, no server: the most one worker process does"
        " on this machine), rows/s, and against the ceiling",
        f"{'spread':>15} {'path':>5} {'alone':>9} {'/ ceil first':>12} {'/ ceil exist':>12}",
    ]
    for spread in dict.fromkeys(r["spread"] for r in results):
        for path in paths:
            most = median(spread, "first", path, "alone")
            shares = [most / median(spread, write, path, "ceiling") for write in WRITES]
            lines.append(
                f"{spread:>15} {path:>5} {most:>9,.0f} {shares[0]:>12.2f} {shares[1]:>12.2f}"
            )
    return "\n".join(lines)


def cpu_report(results: Sequence[dict[str, Any]], paths: Sequence[str]) -> str:
    """Medians of CPU ms per 1,000 rows by role (:mod:`bench.cpu_use`), ceiling and
    worker, with the machine's busy and stolen cores. ``bound`` is the highest ratio to
    the path's ceiling this machine's cores allow at the worker's CPU per row (all of
    it: the worker, its children, server, broker and the rest): ``cores / (CPU per row
    x ceiling rows/s)``; ``best/best bound`` is the best path's such rate over the best
    ceiling."""

    def per_row(spread: str, write: str, path: str, kind: str) -> dict[str, float]:
        runs = [r for r in results if (r["spread"], r["write"], r["path"], r["kind"])
                == (spread, write, path, kind) and r.get("cpu")]  # fmt: skip
        if not runs:
            return {}
        figures = {
            role: statistics.median(r["cpu"][role] / r["rows"] * 1e6 for r in runs)
            for role in ROLES
        }
        for share in ("busy_cores", "steal_cores"):
            figures[share] = statistics.median(r["cpu"].get(share, 0.0) for r in runs)
        return figures

    cores = next((r["cpu"]["cores"] for r in results if r.get("cpu")), 0.0)
    lines = [
        f"CPU ms per 1,000 rows ({' / '.join(ROLES)}), then busy+stolen cores of {cores:.0f}",
        f"{'spread':>15} {'write':>5} {'path':>5} {'ceiling':>41} {'worker':>41} {'bound':>5}",
    ]
    for spread in dict.fromkeys(r["spread"] for r in results):
        for write in WRITES:
            machine: list[float] = []  # rows/s per path with the cores all busy
            ceilings: list[float] = []
            for path in paths:
                cells: list[str] = []
                totals: list[float] = []
                for kind in ("ceiling", "worker"):
                    figures = per_row(spread, write, path, kind)
                    if not figures:
                        cells.append(f"{'-':>41}")
                        totals.append(float("nan"))
                        continue
                    roles = " / ".join(f"{figures[role]:.2f}" for role in ROLES)
                    busy = f"{figures['busy_cores']:.2f}+{figures['steal_cores']:.2f}"
                    cells.append(f"{roles:>31} {busy:>9}")
                    totals.append(sum(figures[role] for role in ROLES))
                ceilings.append(_median(results, (spread, write, path, "ceiling"), "rows_per_s"))
                machine.append(cores / (totals[1] / 1e6) if totals[1] else float("nan"))
                bound = machine[-1] / ceilings[-1]
                lines.append(f"{spread:>15} {write:>5} {path:>5} {' '.join(cells)} {bound:>5.2f}")
            best = max(machine) / max(ceilings)
            lines.append(
                f"{spread:>15} {write:>5} {'best':>5} {'best/best bound':>83} {best:>5.2f}"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", default=os.environ.get("TDENGINE_URL", ""))
    parser.add_argument("--trades", type=int, default=100_000, help="per spread (L and W each)")
    parser.add_argument("--spreads", default=",".join(SPREADS))
    parser.add_argument("--paths", default=",".join(CEILING_PATHS))
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--batch", default="{}", help='the worker\'s [batch] settings as JSON: {"max_in_flight": 2}'
    )
    parser.add_argument("--out", type=Path, default=OUT / "vs_ceiling.jsonl")
    parser.add_argument("--child-ceiling", dest="path", help=argparse.SUPPRESS)
    parser.add_argument("--lines", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--twin", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--batch-rows", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.url:
        print("bench_vs_ceiling needs a real TDengine: set TDENGINE_URL", file=sys.stderr)
        return 2
    if args.path:
        ceiling_child(args)
        return 0
    args.spreads = [s for s in args.spreads.split(",") if s]
    args.paths = [p for p in args.paths.split(",") if p]
    for spread in args.spreads:
        spread_of(spread)
    if set(args.paths) - set(CEILING_PATHS):
        parser.error(f"--paths: choose from {', '.join(CEILING_PATHS)}")
    print(f"{args.trades:,} trades per spread and write; JSON lines: {args.out}")
    print(report(run(args), args.paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
