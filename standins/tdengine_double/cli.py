"""Command line of the TDengine REST stand-in (``python -m standins.tdengine_double``)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

__all__ = ("main",)

BANNER = """\
==============================================================================
 TDengine REST *stand-in* (balance-sink test double) - this is NOT TDengine.
 It serves taosAdapter's /rest/sql API for a documented SQL subset, keeps
 data in SQLite, and exists for tests and local demos only.
=============================================================================="""


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, start the stand-in and serve until SIGINT/SIGTERM; returns 0."""
    from standins.tdengine_double.engine import DEFAULT_SERVER_VERSION
    from standins.tdengine_double.server import TDengineDouble

    parser = argparse.ArgumentParser(
        prog="tdengine-double",
        description="Local TDengine REST stand-in (not TDengine) for tests and demos.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=6041, help="port to listen on, 0 for any (default: %(default)s)"
    )
    parser.add_argument("--db-file", default=None, help="SQLite file (default: in memory)")
    parser.add_argument(
        "--user", default="root", help="the one user it accepts (default: %(default)s)"
    )
    parser.add_argument(
        "--password", default="taosdata", help="that user's password (default: %(default)s)"
    )
    parser.add_argument(
        "--server-version",
        default=DEFAULT_SERVER_VERSION,
        help="TDengine version it reports and whose behaviour it follows (default: %(default)s)",
    )
    args = parser.parse_args(argv)

    double = TDengineDouble(
        args.host,
        args.port,
        user=args.user,
        password=args.password,
        server_version=args.server_version,
        db_file=args.db_file,
    )
    try:
        double.start()
    except OSError as exc:
        print(f"tdengine-double: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    print(BANNER)
    print(f" listening on {double.url}  (user {args.user}, server_version {args.server_version})")
    print(f" storage: {args.db_file or 'in memory'}")
    sys.stdout.flush()
    stop.wait()
    double.stop()
    print("tdengine-double: stopped")
    return 0
