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
    from worker.commands.derive import EXIT_OK, EXIT_REJECTED, EXIT_USAGE, derive_stream
    from worker.core.deriver import Deriver
    from worker.core.fee_schedule import load_fee_schedule
    from worker.errors import FeeScheduleError

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
    from worker.commands.run import run_worker

    return run_worker(args.config)


def _check_config(args: argparse.Namespace) -> int:
    from worker.commands.run import check_config

    return check_config(args.config)


def _init_db(args: argparse.Namespace) -> int:
    from worker.commands.run import init_db

    return init_db(args.config)


def _demo(args: argparse.Namespace) -> int:
    if not _standins_present("demo"):
        return 2
    from worker.commands.demo import run_demo

    return run_demo(trades=args.trades, kafka_wait_s=args.kafka_wait)


def _offset_spec(text: str) -> object:
    from worker.commands.specs import SpecError, parse_offset_spec

    try:
        return parse_offset_spec(text)
    except SpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _timestamp_ms(text: str) -> int:
    from worker.commands.specs import SpecError, parse_timestamp_ms

    try:
        return parse_timestamp_ms(text)
    except SpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _replay(args: argparse.Namespace) -> int:
    from worker.commands.replay import ReplayRequest, run_replay

    return run_replay(
        ReplayRequest(
            config=args.config,
            from_offset=args.from_offset,
            from_timestamp_ms=args.from_timestamp,
            from_beginning=args.from_beginning,
            to_offset=args.to_offset,
            to_timestamp_ms=args.to_timestamp,
            topics=tuple(args.topic or ()),
            commit_group=args.commit_group,
            resume=args.resume,
            fee_schedule=args.fee_schedule,
            dry_run=args.dry_run,
            dead_letter_topic=args.dead_letter_topic,
            no_dead_letter=args.no_dead_letter,
            summary_file=args.summary_file,
            progress=args.progress,
            progress_interval_s=args.progress_interval,
            max_retry_s=args.max_retry,
        )
    )


def _audit(args: argparse.Namespace) -> int:
    from worker.commands.audit import AuditRequest, run_audit

    return run_audit(
        AuditRequest(
            config=args.config,
            from_ms=args.from_ts,
            to_ms=args.to_ts,
            user_id=args.user_id,
            account_type=args.account_type,
            format=args.format,
            against_topic=args.against_topic,
            topic_from_offset=args.topic_from_offset,
            topic_from_timestamp_ms=args.topic_from_timestamp,
            topic_to_offset=args.topic_to_offset,
            topic_to_timestamp_ms=args.topic_to_timestamp,
            fee_schedule=args.fee_schedule,
            window_rows=args.window_rows,
            max_failures=args.max_failures,
        )
    )


def _non_negative(text: str) -> int:
    from worker.commands.specs import SpecError, parse_offset_spec

    try:
        value = parse_offset_spec(text)
    except SpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not isinstance(value, int):
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative integer")
    return value


def _positive(text: str) -> int:
    value = _non_negative(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _standins_present(command: str) -> bool:
    """Whether the stand-ins (a source checkout's ``standins`` package) can be imported."""
    try:
        import standins  # noqa: F401
    except ModuleNotFoundError:
        print(
            f"balance-sink {command}: needs the stand-ins of a source checkout, which a "
            "production install does not contain; run `make demo` (or "
            f"`python -m worker {command}`) from the repository",
            file=sys.stderr,
        )
        return False
    return True


def _tdengine_double(args: argparse.Namespace) -> int:
    if not _standins_present("tdengine-double"):
        return 2
    from standins.tdengine_double.cli import main as double_main

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
    demo.add_argument(
        "--kafka-wait",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="how long to wait for KAFKA_BOOTSTRAP's cluster to answer (default 20)",
    )
    demo.set_defaults(handler=_demo)

    _add_replay(commands)
    _add_audit(commands)

    double = commands.add_parser(
        "tdengine-double",
        help="serve the in-repo TDengine REST stand-in (tests and demos; NOT TDengine)",
        add_help=False,
    )
    double.add_argument("double_args", nargs=argparse.REMAINDER)
    double.set_defaults(handler=_tdengine_double)
    return parser


def _add_replay(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    replay = commands.add_parser(
        "replay",
        help="re-read a range of the trade topic into TDengine (backfill, corrected fees)",
        description="Replay a bounded range of the trade topic through the worker's pipeline "
        "(assigned partitions, never the worker's group; stops at the end of the range). "
        "Times are epoch milliseconds or ISO 8601 with a zone (2025-06-15T00:00:00Z). "
        "Exit 0: the whole range is stored; 1: stopped early (error or signal; see the "
        "summary, --resume continues); 2: usage, configuration, or a range that is gone.",
    )
    replay.add_argument("--config", required=True, metavar="FILE", help="worker TOML config")
    start = replay.add_mutually_exclusive_group()
    start.add_argument(
        "--from-offset",
        type=_offset_spec,
        metavar="N|P:N,...",
        help="start offset for every partition, or P:N pairs (only those partitions are replayed)",
    )
    start.add_argument(
        "--from-timestamp",
        type=_timestamp_ms,
        metavar="TIME",
        help="start at each partition's first message at or after TIME",
    )
    start.add_argument(
        "--from-beginning", action="store_true", help="start at each partition's low watermark"
    )
    end = replay.add_mutually_exclusive_group()
    end.add_argument(
        "--to-offset",
        type=_offset_spec,
        metavar="N|P:N,...",
        help="end offset (exclusive); default: the high watermark at start",
    )
    end.add_argument(
        "--to-timestamp",
        type=_timestamp_ms,
        metavar="TIME",
        help="end before the first message at or after TIME",
    )
    replay.add_argument(
        "--topic",
        action="append",
        metavar="TOPIC",
        help="replay this topic (repeatable); default: the config's topics",
    )
    replay.add_argument(
        "--commit-group",
        metavar="NAME",
        help="record progress as committed offsets of this group (never the worker's group)",
    )
    replay.add_argument(
        "--resume",
        action="store_true",
        help="continue from --commit-group's committed offsets (partitions "
        "without one use the start option)",
    )
    replay.add_argument(
        "--fee-schedule", metavar="FILE", help="fee schedule TOML to use instead of the config's"
    )
    replay.add_argument(
        "--dry-run",
        action="store_true",
        help="derive and count; write nothing, dead-letter nothing, commit nothing",
    )
    dead = replay.add_mutually_exclusive_group()
    dead.add_argument(
        "--dead-letter-topic", metavar="TOPIC", help="dead-letter topic (default: the config's)"
    )
    dead.add_argument(
        "--no-dead-letter",
        action="store_true",
        help="list invalid messages in the summary file instead",
    )
    replay.add_argument("--summary-file", metavar="FILE", help="write the summary as JSON")
    replay.add_argument(
        "--progress",
        choices=("auto", "bar", "log", "off"),
        default="auto",
        help="a progress bar on a terminal, log lines otherwise (auto)",
    )
    replay.add_argument(
        "--progress-interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="seconds between progress log lines (default 10)",
    )
    replay.add_argument(
        "--max-retry",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="how long a failing TDengine write is retried (default 300)",
    )
    replay.set_defaults(handler=_replay, parser=replay)


def _add_audit(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = commands.add_parser(
        "audit",
        help="check the ledger in TDengine: completeness, conservation, fees, totals",
        description="Check every trade in [--from, --to) with aggregations pushed to TDengine: "
        "four rows with event ids trade_id*4+0..3, per-asset conservation, FeeReceived = "
        "TradeSettled fee; report fee revenue per asset. Times are epoch milliseconds or "
        "ISO 8601 with a zone. Exit 0: every check passed; 1: some invariant failed (each "
        "failure names its trade); 2: usage or configuration error; 3: could not complete "
        "(TDengine or Kafka error).",
    )
    audit.add_argument("--config", required=True, metavar="FILE", help="worker TOML config")
    audit.add_argument(
        "--from",
        dest="from_ts",
        required=True,
        type=_timestamp_ms,
        metavar="TIME",
        help="start of the range (inclusive)",
    )
    audit.add_argument(
        "--to",
        dest="to_ts",
        required=True,
        type=_timestamp_ms,
        metavar="TIME",
        help="end of the range (exclusive)",
    )
    audit.add_argument(
        "--user-id",
        type=_non_negative,
        metavar="N",
        help="only the trades in which user N has a row (all four rows checked)",
    )
    audit.add_argument(
        "--account-type", type=_non_negative, metavar="N", help="only trades of account type N"
    )
    audit.add_argument("--format", choices=("table", "json", "csv"), default="table")
    audit.add_argument(
        "--against-topic",
        action="store_true",
        help="also check that the topic's valid trades and the ledger's match",
    )
    start = audit.add_mutually_exclusive_group()
    start.add_argument(
        "--topic-from-offset",
        type=_offset_spec,
        metavar="N|P:N,...",
        help="topic range start (default: the beginning)",
    )
    start.add_argument("--topic-from-timestamp", type=_timestamp_ms, metavar="TIME")
    end = audit.add_mutually_exclusive_group()
    end.add_argument(
        "--topic-to-offset",
        type=_offset_spec,
        metavar="N|P:N,...",
        help="topic range end, exclusive (default: the high watermarks)",
    )
    end.add_argument("--topic-to-timestamp", type=_timestamp_ms, metavar="TIME")
    audit.add_argument(
        "--fee-schedule",
        metavar="FILE",
        help="fee schedule for --against-topic (default: the config's)",
    )
    audit.add_argument(
        "--window-rows",
        type=_positive,
        default=200_000,
        metavar="N",
        help="most rows aggregated per query window (default 200000)",
    )
    audit.add_argument(
        "--max-failures",
        type=_positive,
        default=1000,
        metavar="N",
        help="failures listed in the report (all are counted; default 1000)",
    )
    audit.set_defaults(handler=_audit, parser=audit)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``balance-sink`` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["tdengine-double"]:  # its own options, which argparse would claim
        return _tdengine_double(argparse.Namespace(double_args=argv[1:]))
    args = build_parser().parse_args(argv)
    if getattr(args, "no_dead_letter", False) and not args.summary_file and not args.dry_run:
        args.parser.error("--no-dead-letter needs --summary-file (where invalid messages go)")
    if getattr(args, "resume", False) and not args.commit_group:
        args.parser.error("--resume needs --commit-group")
    code: int = args.handler(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
