"""The ``balance-sink`` command line. Each subcommand imports only what it needs."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Final

from worker import __version__

__all__ = ("main",)

_INPUT_BUFFER: Final = 1 << 20


def _derive(args: argparse.Namespace) -> int:
    from worker.core import Deriver
    from worker.derive import EXIT_OK, EXIT_REJECTED, EXIT_USAGE, derive_stream
    from worker.errors import FeeScheduleError
    from worker.fee_schedule import load_fee_schedule

    try:
        schedule = load_fee_schedule(args.fee_schedule)
    except FeeScheduleError as exc:
        print(f"balance-sink derive: fee schedule error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.input in (None, "-"):
        stream = sys.stdin.buffer
    else:
        try:
            stream = open(args.input, "rb", buffering=_INPUT_BUFFER)  # noqa: SIM115
        except OSError as exc:
            print(f"balance-sink derive: cannot read {args.input}: {exc.strerror}", file=sys.stderr)
            return EXIT_USAGE
    try:
        with stream:
            rejected = derive_stream(
                Deriver(schedule), stream, sys.stdout.buffer, sys.stderr.buffer
            )
    except BrokenPipeError:  # e.g. `derive ... | head`: the reader left, not our failure
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    return EXIT_REJECTED if rejected else EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from worker.run import run_worker

    return run_worker(args.config)


def _check_config(args: argparse.Namespace) -> int:
    from worker.run import check_config

    return check_config(args.config)


def _init_db(args: argparse.Namespace) -> int:
    from worker.run import init_db

    return init_db(args.config)


def _demo(args: argparse.Namespace) -> int:
    from worker.demo import run_demo

    return run_demo(trades=args.trades)


def _tdengine_double(args: argparse.Namespace) -> int:
    from worker.tdengine_double.cli import main as double_main

    return double_main(args.double_args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="balance-sink",
        description="Trade settlements from Kafka into exact, idempotent TDengine ledger rows.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    derive = commands.add_parser(
        "derive",
        help="derive BalanceEvents from JSON lines (dry-run a fee schedule)",
        description="Read trade JSON lines (stdin when INPUT is absent or '-'); write one "
        "BalanceEvent JSON object per line on stdout and one JSON object per rejected line "
        "on stderr. Exit 0: nothing rejected; 3: some lines rejected; 2: usage or "
        "fee-schedule error.",
    )
    derive.add_argument("--fee-schedule", required=True, metavar="FILE", help="fee schedule TOML")
    derive.add_argument("input", nargs="?", metavar="INPUT", help="JSON lines file, or '-'")
    derive.set_defaults(handler=_derive)

    for name, handler, text in (
        ("run", _run, "run the consumer-group worker until SIGTERM/SIGINT"),
        ("check-config", _check_config, "validate a configuration file and its fee schedule"),
        ("init-db", _init_db, "create or check the TDengine database and super table"),
    ):
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("--config", required=True, metavar="FILE", help="worker TOML config")
        sub.set_defaults(handler=handler)

    demo = commands.add_parser(
        "demo",
        help="run the whole pipeline locally: Kafka broker, TDengine stand-in, sample trades",
        description="Start a local Kafka broker and (unless TDENGINE_URL is set) the TDengine "
        "REST stand-in, produce sample trades, run the worker on them and print a summary "
        "read back through SQL. KAFKA_BOOTSTRAP and TDENGINE_URL select existing services.",
    )
    demo.add_argument("--trades", type=int, default=20_000, help="sample trades to produce")
    demo.set_defaults(handler=_demo)

    double = commands.add_parser(
        "tdengine-double",
        help="serve the in-repo TDengine REST stand-in (tests and demos; NOT TDengine)",
        add_help=False,
    )
    double.add_argument("double_args", nargs=argparse.REMAINDER)
    double.set_defaults(handler=_tdengine_double)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``balance-sink`` console script."""
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
