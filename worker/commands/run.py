"""``balance-sink run``: load the configuration, assemble the worker, run it until stopped."""

from __future__ import annotations

import logging
import sys

from worker import __version__
from worker.commands.assemble import assemble_worker, group_consumer_config
from worker.core.fee_schedule import load_fee_schedule
from worker.engine.engine import EngineStopped
from worker.engine.signals import stop_on_signals
from worker.errors import BalanceSinkError, ConfigError
from worker.exit_codes import EXIT_CONFIG, EXIT_FATAL, EXIT_OK
from worker.ops.config import ConfigErrors, Settings, load_settings
from worker.ops.http_server import Check, HealthServer
from worker.ops.kafka_health import BrokerWatch, wait_for_kafka
from worker.ops.kafka_logs import flush_kafka_logs, set_repeat_interval
from worker.ops.logs import configure_logging, log_context
from worker.ops.metrics import Metrics
from worker.tdengine.sink import TDengineSink

__all__ = (
    "EXIT_CONFIG",
    "EXIT_FATAL",
    "EXIT_OK",
    "check_config",
    "init_db",
    "load_or_report",
    "run_worker",
)

logger = logging.getLogger(__name__)


def load_or_report(path: str, *, with_fee_schedule: bool = True) -> Settings | None:
    """Load and validate the settings (and the fee schedule, so start-up fails early);
    on problems print one line each on stderr and return None."""
    try:
        settings = load_settings(path)
        if with_fee_schedule:
            load_fee_schedule(settings.fee_schedule)
    except ConfigError as exc:
        problems = exc.problems if isinstance(exc, ConfigErrors) else [exc]
        for problem in problems:
            print(f"config error: {problem}", file=sys.stderr)
        return None
    return settings


def check_config(path: str) -> int:
    """Validate a configuration file and its fee schedule; print every problem."""
    settings = load_or_report(path)
    if settings is None:
        return EXIT_CONFIG
    print(f"configuration OK: {path} (fee schedule {settings.fee_schedule})")
    return EXIT_OK


def run_worker(path: str) -> int:
    """Run the worker until SIGTERM/SIGINT (exit 0) or a fatal condition (exit 1)."""
    settings = load_or_report(path)
    if settings is None:
        return EXIT_CONFIG
    configure_logging(fmt=settings.log.format, level=settings.log.level, secrets=settings.secrets())
    set_repeat_interval(settings.log.kafka_repeat_interval_s)
    logger.info(
        "starting balance-sink %s", __version__, extra=log_context(config=settings.redacted())
    )
    try:
        return _run(settings)
    finally:
        flush_kafka_logs()


class _Probes:
    """What /healthz and /readyz answer; the checks change once the worker exists.

    While starting (bounded waits for Kafka and TDengine), the worker is alive and not
    ready, so an orchestrator's probes neither kill it nor route to it: it exits by
    itself, with its reason, if a wait runs out.
    """

    def __init__(self) -> None:
        self.live: Check = lambda: (True, "ok")
        self.ready: Check = lambda: (False, "starting")

    def liveness(self) -> tuple[bool, str]:
        return self.live()

    def readiness(self) -> tuple[bool, str]:
        return self.ready()


def _run(settings: Settings) -> int:
    metrics = Metrics()
    probes = _Probes()
    server: HealthServer | None = None
    if settings.metrics.enabled:
        server = HealthServer(
            metrics, host=settings.metrics.host, port=settings.metrics.port,
            liveness=probes.liveness, readiness=probes.readiness,
        )  # fmt: skip
        try:
            server.start()
        except BalanceSinkError as exc:
            logger.critical("cannot start: %s", exc)
            return EXIT_FATAL
        logger.info("metrics and health on %s", server.url)
    try:
        return _start_and_consume(settings, metrics, probes)
    finally:
        if server is not None:
            server.stop()


def _start_and_consume(settings: Settings, metrics: Metrics, probes: _Probes) -> int:
    kafka = settings.kafka
    try:  # Kafka first: nothing else is worth starting without it
        wait_for_kafka(settings.consumer_config(), kafka.startup_wait_s)
        watch = BrokerWatch(kafka.not_alive_after_down_s, bootstrap=kafka.bootstrap_servers)
        worker = assemble_worker(
            settings,
            metrics=metrics,
            consumer_config=group_consumer_config(settings, metrics, watch),
        )
    except BalanceSinkError as exc:
        logger.critical("cannot start: %s", exc)
        return EXIT_FATAL
    health = worker.engine.health

    def liveness() -> tuple[bool, str]:
        """The engine iterates, and some broker is reachable (or was, not long ago)."""
        for check in (health.liveness, watch.liveness):
            alive, reason = check()
            if not alive:
                return alive, reason
        return True, "ok"

    probes.live, probes.ready = liveness, health.readiness
    try:
        with stop_on_signals(worker.stop):
            worker.run()
    except EngineStopped as exc:
        logger.critical("worker stopped: %s", exc)
        return EXIT_FATAL
    return EXIT_OK


def init_db(path: str) -> int:
    """Create what is missing in TDengine and check the super table; print a report."""
    settings = load_or_report(path, with_fee_schedule=False)
    if settings is None:
        return EXIT_CONFIG
    try:
        print(TDengineSink.init_database(settings.tdengine))
    except BalanceSinkError as exc:
        print(f"init-db failed: {exc}", file=sys.stderr)
        return EXIT_FATAL
    return EXIT_OK
