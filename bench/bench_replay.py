"""Replay benchmark: ``balance-sink replay`` against the worker, on the same messages.

Replay and the worker run the same engine (:mod:`worker.engine`: decode, batch, write,
dead-letter) with the same batch limits, so their rates should match; this measures it.
On a local broker (or ``KAFKA_BOOTSTRAP``), a 4-partition topic gets N generated
trades; then, each in a fresh process: ``replay --dry-run`` (derive and count, no
store), ``replay`` into the REST double (its own process), and the worker
(``bench_worker``'s measurement) into the same double.

Run: ``python -m bench.bench_replay [--trades N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from bench.bench_worker import kafka_bootstrap, measure, produce, rest_double
from standins.samples import fee_schedule_text


def _replay(config: Path, summary: Path, *extra: str) -> dict[str, float]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "worker", "replay", "--config", str(config),
         "--from-beginning", "--progress", "off", "--summary-file", str(summary), *extra],
        capture_output=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"replay failed:\n{done.stdout.decode()}\n{done.stderr.decode()[-3000:]}")
    data = json.loads(summary.read_text())
    return {"messages": data["messages_read"], "rate": data["rate_messages_per_s"], "wall": wall}


def _show(name: str, run: dict[str, float]) -> None:
    print(f"{name + ':':<42}{run['rate']:>9,.0f} msg/s ({run['messages']:,.0f} messages, "
          f"{run['wall']:.1f} s with start-up)")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=200_000)
    args = parser.parse_args(argv)

    with kafka_bootstrap() as bootstrap, rest_double() as url:
        topic = f"bench-replay-{uuid.uuid4().hex[:8]}"
        produced_s = produce(bootstrap, topic, args.trades)
        print(f"produced {args.trades:,} trades in {produced_s:.1f} s")
        with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
            work = Path(tmp)
            schedule = work / "fee_schedule.toml"
            schedule.write_text(fee_schedule_text())
            config = work / "config.toml"
            config.write_text(
                f'fee_schedule = "{schedule}"\n[kafka]\nbootstrap_servers = "{bootstrap}"\n'
                f'topics = ["{topic}"]\ndead_letter_topic = "{topic}-dlq"\n'
                f'[tdengine]\nurl = "{url}"\npassword = "taosdata"\n'
                f'database = "bench_replay_{uuid.uuid4().hex[:8]}"\n'
                '[log]\nlevel = "WARNING"\n'
            )
            dry = _replay(config, work / "dry.json", "--dry-run")
            _show("replay --dry-run (derive, batch, count)", dry)
            stored = _replay(config, work / "stored.json")
            _show("replay -> REST double", stored)
        worker = measure("tdengine", bootstrap, topic, args.trades, url)
        rate = worker["messages"] / worker["seconds"]
        print(f"{'worker -> REST double (same messages):':<42}{rate:>9,.0f} msg/s")
        print(f"replay / worker: {stored['rate'] / rate:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
