"""``balance-sink replay`` itself: check the request, plan, replay, report, exit code."""

from __future__ import annotations

import logging
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaException

from worker.commands.replay.driver import Replayer
from worker.commands.replay.errors import RangeError, ReplayError
from worker.commands.replay.progress import make_progress
from worker.commands.replay.ranges import resolve_ranges
from worker.commands.replay.request import ReplayRequest
from worker.commands.replay.summary import report, summarize
from worker.core.deriver import Deriver
from worker.core.fee_schedule import load_fee_schedule
from worker.engine.dead_letters import DeadLetterProducer, DeadLetters, ListedDeadLetters
from worker.engine.engine import Engine, Totals
from worker.engine.kafka import range_consumer_config
from worker.engine.ranges import PartitionRange
from worker.engine.signals import stop_on_signals
from worker.engine.sink import CountingSink, Sink
from worker.errors import BalanceSinkError, ConfigError
from worker.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from worker.ops.config import ConfigErrors, Settings, load_settings
from worker.ops.kafka_logs import kafka_client_config
from worker.ops.logs import configure_logging, log_context
from worker.ops.metrics import Metrics

__all__ = ("run_replay",)

logger = logging.getLogger(__name__)


def _fail(message: str) -> int:
    print(f"balance-sink replay: {message}", file=sys.stderr)
    return EXIT_USAGE


def _load(request: ReplayRequest) -> tuple[Settings, str] | str:
    try:
        settings = load_settings(request.config)
    except ConfigErrors as exc:
        return "\n".join(f"config error: {p}" for p in exc.problems)
    schedule = request.fee_schedule or settings.fee_schedule
    return settings, schedule


def run_replay(request: ReplayRequest) -> int:
    """Run one replay; returns the exit code (0 done, 1 stopped early, 2 nothing started)."""
    loaded = _load(request)
    if isinstance(loaded, str):
        print(loaded, file=sys.stderr)
        return EXIT_USAGE
    settings, schedule_path = loaded
    try:
        deriver = Deriver(load_fee_schedule(schedule_path))
    except ConfigError as exc:
        return _fail(f"fee schedule error: {exc}")
    if request.resume and not request.commit_group:
        return _fail("--resume needs --commit-group (the group whose offsets to resume from)")
    if request.commit_group == settings.kafka.group_id:
        return _fail(
            f"--commit-group {request.commit_group!r} is the live worker's group; "
            "use a separate group so the worker's offsets never move"
        )
    if not request.has_start and not request.resume:
        return _fail("give a start: --from-offset, --from-timestamp, --from-beginning or --resume")
    topics = request.topics or settings.kafka.topics
    listed = request.dry_run or request.no_dead_letter
    dead_letter_topic = None if listed else (
        request.dead_letter_topic or settings.kafka.dead_letter_topic
    )  # fmt: skip
    if dead_letter_topic in topics:
        return _fail(f"dead-letter topic {dead_letter_topic!r} is one of the replayed topics")
    configure_logging(fmt=settings.log.format, level=settings.log.level, secrets=settings.secrets())
    group = request.commit_group or f"balance-sink-replay-{uuid.uuid4().hex[:12]}"
    consumer = Consumer(
        kafka_client_config(range_consumer_config(settings.consumer_config(), group))
    )
    started = time.monotonic()
    try:
        try:
            ranges = resolve_ranges(consumer, topics, request)
        except RangeError as exc:
            return _fail(str(exc))
        except (ReplayError, KafkaException) as exc:
            # The cluster did not answer (or not in full): a stop before the start.
            logger.critical("replay could not read the topic's offsets: %s", exc)
            report(
                summarize(request, ranges=[], totals=Totals(), next_offsets={}, complete=False,
                          schedule_path=schedule_path, dead_letter_topic=dead_letter_topic,
                          listed=None, started=started,
                          error=f"could not read the topic's offsets: {exc}"),
                request.summary_file,
            )  # fmt: skip
            return EXIT_FAILED
        return _replay(request, settings, schedule_path, deriver, consumer, ranges,
                       dead_letter_topic, started)  # fmt: skip
    finally:
        consumer.close()


def _replay(
    request: ReplayRequest,
    settings: Settings,
    schedule_path: str,
    deriver: Deriver,
    consumer: Consumer,
    ranges: list[PartitionRange],
    dead_letter_topic: str | None,
    started: float,
) -> int:
    logger.info(
        "replay planned",
        extra=log_context(
            ranges=[f"{r.topic}[{r.partition}] {r.start}..{r.end}" for r in ranges],
            messages=sum(r.size for r in ranges), dry_run=request.dry_run,
            commit_group=request.commit_group, fee_schedule=schedule_path,
            dead_letter_topic=dead_letter_topic,
        ),
    )  # fmt: skip
    sink: Sink
    if request.dry_run:
        sink = CountingSink()
    else:
        from worker.tdengine.sink import TDengineSink

        try:
            sink = TDengineSink.connect(settings.tdengine)
        except BalanceSinkError as exc:
            print(f"balance-sink replay: TDengine: {exc}", file=sys.stderr)
            return EXIT_FAILED
    listed = ListedDeadLetters()
    dead_letters: DeadLetters = (
        listed if dead_letter_topic is None
        else DeadLetterProducer(dead_letter_topic, settings.consumer_config())
    )  # fmt: skip
    engine = Engine(
        consumer=consumer, deriver=deriver, sink=sink, dead_letters=dead_letters,
        metrics=Metrics(), settings=settings.loop, give_up_after_s=request.max_retry_s,
    )  # fmt: skip
    progress = make_progress(
        request.progress, sum(r.size for r in ranges), request.progress_interval_s
    )
    replayer = Replayer(
        engine, ranges, commit=bool(request.commit_group) and not request.dry_run,
        progress=progress,
    )  # fmt: skip
    error: str | None = None
    try:
        with stop_on_signals(replayer.stop):
            replayer.run()
    except (ReplayError, KafkaException) as exc:
        error = str(exc)
        logger.critical("replay stopped: %s", exc)
    finally:
        progress.close()
        engine.close()
    summary = summarize(
        request, ranges=ranges, totals=replayer.totals, next_offsets=replayer.next_offsets,
        complete=replayer.complete, schedule_path=schedule_path,
        dead_letter_topic=dead_letter_topic, listed=listed.items, started=started, error=error,
    )  # fmt: skip
    report(summary, request.summary_file)
    return EXIT_OK if summary.completed else EXIT_FAILED
