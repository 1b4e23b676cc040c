"""``python -m standins.local_kafka``: run a local Kafka broker in the foreground.

Prints ``bootstrap_servers`` and the log path, then runs until Ctrl-C or SIGTERM.
Exit status: 0 after a requested stop, 1 if the broker failed or died on its own,
130 if interrupted during start-up.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from standins.local_kafka._jars import DEFAULT_KAFKA_VERSION
from standins.local_kafka.broker import LocalKafkaBroker
from standins.local_kafka.errors import LocalKafkaError

__all__ = ("main",)

logger = logging.getLogger(__name__)

_WATCH_INTERVAL_S = 0.5


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m standins.local_kafka",
        description="Run a single-node Kafka broker (KRaft) from Maven Central jars.",
    )
    parser.add_argument("--kafka-version", default=DEFAULT_KAFKA_VERSION)
    parser.add_argument("--port", type=int, default=None, help="PLAINTEXT port (default: free)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for readiness")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Start a broker, print how to reach it, and block until asked to stop."""
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stop_requested = threading.Event()

    def _request_stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("stop requested signal=%s", signal.Signals(signum).name)
        stop_requested.set()

    broker = LocalKafkaBroker(args.kafka_version, broker_port=args.port)
    try:
        # Ctrl-C during start() raises KeyboardInterrupt; start() then kills the JVM.
        broker.start(timeout=args.timeout)
    except LocalKafkaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted during start-up; the broker JVM was stopped", file=sys.stderr)
        return 130
    previous = {sig: signal.signal(sig, _request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(f"bootstrap_servers={broker.bootstrap_servers}", flush=True)
        print(f"log={broker.log_path}", flush=True)
        print(f"pid={broker.pid}", flush=True)
        while not stop_requested.wait(_WATCH_INTERVAL_S):
            if not broker.is_running:
                print(
                    f"error: the broker exited on its own; see {broker.log_path}", file=sys.stderr
                )
                return 1
        return 0
    finally:
        broker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
