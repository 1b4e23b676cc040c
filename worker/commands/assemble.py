"""The one place that builds a worker from its settings (``run``, ``demo``, benchmarks).

:func:`assemble_worker` wires the engine to a group consumer, the fee schedule's
deriver, the TDengine sink and the dead-letter producer, with one :class:`Metrics`;
:class:`Worker` is the ``run`` driver of the engine: subscribe, run until stopped,
leave the group.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import Consumer

from worker.core.deriver import Deriver
from worker.core.fee_schedule import load_fee_schedule
from worker.engine.dead_letters import DeadLetterProducer
from worker.engine.engine import Engine
from worker.engine.sink import Sink
from worker.errors import BalanceSinkError
from worker.ops.config import Settings
from worker.ops.http_server import HealthServer
from worker.ops.kafka_health import BrokerWatch, log_client_error
from worker.ops.kafka_logs import kafka_client_config
from worker.ops.logs import log_context
from worker.ops.metrics import Metrics
from worker.tdengine.sink import TDengineSink

__all__ = ("Worker", "WorkerStartError", "assemble_worker", "group_consumer_config")

logger = logging.getLogger(__name__)


class WorkerStartError(BalanceSinkError):
    """A part of the worker could not be set up; the message names which."""


class Worker:
    """One consumer-group member: the engine over its topics, and its metrics."""

    def __init__(
        self,
        engine: Engine,
        metrics: Metrics,
        topics: tuple[str, ...],
        summary_interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.metrics = metrics
        self.topics = topics
        self._summary_interval_s = summary_interval_s
        self._clock = clock
        self._last_summary = clock()

    def health_server(self, *, host: str, port: int) -> HealthServer:
        """The /metrics, /healthz and /readyz server of this worker (not started)."""
        return HealthServer(
            self.metrics, host=host, port=port,
            liveness=self.engine.health.liveness, readiness=self.engine.health.readiness,
        )  # fmt: skip

    @property
    def progress(self) -> dict[str, int]:
        """Totals so far: messages read, rows stored, messages dead-lettered, flushes."""
        totals = self.engine.totals
        return {"messages": totals.messages, "rows": totals.rows,
                "dead": sum(totals.dead.values()), "flushes": totals.flushes}  # fmt: skip

    @property
    def buffered_messages(self) -> int:
        """Messages read but not yet flushed."""
        return self.engine.buffered_messages

    def stop(self) -> None:
        """Ask the worker to finish: flush, commit, leave the group."""
        self.engine.stop()

    def run(self) -> None:
        """Consume until :meth:`stop`; raises ``EngineStopped`` on a fatal condition."""
        self.engine.subscribe(self.topics)
        try:
            self.engine.run(on_step=self._summary_when_due)
        finally:
            self.engine.close()
        self._summary()
        logger.info("stopped cleanly")

    def _summary_when_due(self) -> None:
        if self._clock() - self._last_summary >= self._summary_interval_s:
            self._summary()

    def _summary(self) -> None:
        self._last_summary = self._clock()
        engine = self.engine
        logger.info("progress", extra=log_context(**self.progress, assigned=len(engine.assigned),
                                                  paused=engine.paused))  # fmt: skip


def group_consumer_config(
    settings: Settings, metrics: Metrics, watch: BrokerWatch | None = None
) -> dict[str, Any]:
    """The worker's consumer properties: librdkafka's logs through ours, statistics into
    ``metrics`` (and ``watch``), client errors to ``watch`` and logged once."""
    config = kafka_client_config(settings.consumer_config())

    config["stats_cb"] = metrics.observe_librdkafka_stats
    if watch is not None:
        on_broker_stats = watch.on_stats

        def on_stats(stats_json: str) -> None:
            metrics.observe_librdkafka_stats(stats_json)
            on_broker_stats(stats_json)

        config["stats_cb"] = on_stats
    config["error_cb"] = log_client_error(watch)
    return config


def assemble_worker(
    settings: Settings,
    *,
    deriver: Deriver | None = None,
    sink: Sink | None = None,
    metrics: Metrics | None = None,
    consumer_config: Mapping[str, Any] | None = None,
    producer_config: Mapping[str, Any] | None = None,
) -> Worker:
    """Build a worker from ``settings``; the keywords replace a part (demo, benchmarks).

    Parameters
    ----------
    deriver:
        Default: one over the fee schedule file ``settings.fee_schedule``.
    sink:
        Default: TDengine at ``settings.tdengine`` (connected, schema checked).
    metrics:
        Default: a new :class:`Metrics`.
    consumer_config, producer_config:
        librdkafka properties of the group consumer (default
        :func:`group_consumer_config`) and of the dead-letter producer (default: the
        consumer's, which the producer filters).

    Raises
    ------
    WorkerStartError
        TDengine could not be connected to or its schema is wrong.
    """
    metrics = Metrics() if metrics is None else metrics
    if deriver is None:
        deriver = Deriver(load_fee_schedule(settings.fee_schedule))
    if sink is None:
        try:
            sink = TDengineSink.connect(settings.tdengine, observer=metrics)
        except BalanceSinkError as exc:
            raise WorkerStartError(f"TDengine: {exc}") from exc
    if consumer_config is None:
        consumer_config = group_consumer_config(settings, metrics)
    if producer_config is None:
        producer_config = settings.consumer_config()
    engine = Engine(
        consumer=Consumer(dict(consumer_config)),
        deriver=deriver,
        sink=sink,
        dead_letters=DeadLetterProducer(settings.kafka.dead_letter_topic, producer_config),
        metrics=metrics,
        settings=settings.loop,
    )
    return Worker(engine, metrics, settings.kafka.topics, settings.worker.summary_interval_s)
