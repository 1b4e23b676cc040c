"""Is the Kafka cluster reachable: a bounded wait at start-up, a watch while running.

:func:`wait_for_kafka` asks for cluster metadata until a broker answers or the wait is
over, then raises :class:`KafkaUnreachable` naming the bootstrap servers and the last
error. :class:`BrokerWatch` follows a running client's ``error_cb`` and ``stats_cb``:
once no broker has been up for ``down_after_s``, its :meth:`~BrokerWatch.liveness`
fails (so the orchestrator restarts the worker) and one line is logged; a broker
coming back clears it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from confluent_kafka import Consumer, KafkaError, KafkaException

from worker.errors import BalanceSinkError
from worker.ops.kafka_logs import flush_kafka_logs, kafka_client_config
from worker.ops.logs import log_context

__all__ = ("BrokerWatch", "KafkaUnreachable", "log_client_error", "wait_for_kafka")

logger = logging.getLogger(__name__)

_ATTEMPT_S: Final = 1.0
"""Longest single metadata request; the client keeps connecting between requests, and
its log lines are served after each one."""
_PAUSE_S: Final = 1.0
"""Pause between metadata requests."""
_NO_BROKER: Final = frozenset({KafkaError._ALL_BROKERS_DOWN})
_TRANSPORT: Final = frozenset({KafkaError._TRANSPORT, KafkaError._RESOLVE})


class KafkaUnreachable(BalanceSinkError):
    """No broker answered within the start-up wait."""

    def __init__(self, bootstrap: str, waited_s: float, last_error: str) -> None:
        self.bootstrap = bootstrap
        self.last_error = last_error
        super().__init__(
            f"Kafka at {bootstrap} did not answer within {waited_s:g} s; last error: {last_error}"
        )


def wait_for_kafka(
    config: Mapping[str, Any],
    timeout_s: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once a broker of ``config['bootstrap.servers']`` answers a metadata request.

    Retries until ``timeout_s`` have passed, then raises :class:`KafkaUnreachable`.
    librdkafka's own lines about the failures go through :mod:`worker.ops.kafka_logs`
    (collapsed); the errors themselves are not logged again here.
    """
    bootstrap = str(config.get("bootstrap.servers", ""))
    errors: list[str] = []
    unwanted = ("stats_cb", "error_cb", "statistics.interval.ms")
    probe_config = {k: v for k, v in config.items() if k not in unwanted}
    probe_config["error_cb"] = lambda error: errors.append(str(error.str()))
    probe_config.setdefault("group.id", "balance-sink-probe")  # never joined: no subscribe
    probe = Consumer(kafka_client_config(probe_config))
    deadline = clock() + timeout_s
    last = "no answer"
    try:
        while True:
            remaining = deadline - clock()
            try:
                metadata = probe.list_topics(timeout=max(0.1, min(remaining, _ATTEMPT_S)))
            except KafkaException as exc:
                error = exc.args[0] if exc.args else exc
                last = error.str() if isinstance(error, KafkaError) else str(error)
            else:
                if metadata.brokers:
                    logger.info(
                        "Kafka cluster reachable",
                        extra=log_context(bootstrap=bootstrap, brokers=len(metadata.brokers)),
                    )
                    return
                last = "metadata without brokers"
            probe.poll(0)  # serves the error and log callbacks
            if errors:
                last = errors[-1]
            remaining = deadline - clock()
            if remaining <= 0:
                raise KafkaUnreachable(bootstrap, timeout_s, last)
            sleep(min(_PAUSE_S, remaining))
    finally:
        probe.close()
        flush_kafka_logs()  # the counts of repeated failures, before the caller's verdict


class BrokerWatch:
    """Whether a running client has a broker up; liveness fails after a long outage.

    Feed it the client's ``error_cb`` (:meth:`on_error`) and ``stats_cb``
    (:meth:`on_stats`). ``_ALL_BROKERS_DOWN``, or a transport error while the last
    statistics showed no broker up, starts an outage; statistics with a broker in
    state ``UP`` end it. Thread-safe: callbacks run on the polling thread, liveness
    on the HTTP server's.
    """

    def __init__(
        self,
        down_after_s: float,
        *,
        bootstrap: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.down_after_s = down_after_s
        self._bootstrap = bootstrap
        self._clock = clock
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._brokers_up: bool | None = None
        self._reported = False

    @property
    def down_since(self) -> float | None:
        """When the current outage began (the clock's time), or None."""
        return self._down_since

    def on_error(self, error: KafkaError) -> None:
        """An ``error_cb`` error: start an outage when it says no broker is up."""
        code = error.code()
        with self._lock:
            if code in _NO_BROKER or (code in _TRANSPORT and self._brokers_up is not True):
                self._outage()
        self._check()

    def on_stats(self, stats_json: str) -> None:
        """A ``stats_cb`` document: any broker ``UP`` ends an outage; none starts one."""
        try:
            brokers = json.loads(stats_json).get("brokers") or {}
            states = [b.get("state") for b in brokers.values() if isinstance(b, dict)]
        except (ValueError, AttributeError):
            return
        if not states:
            return
        up = "UP" in states
        recovered: float | None = None
        with self._lock:
            self._brokers_up = up
            if not up:
                self._outage()
            elif self._down_since is not None:
                recovered = self._clock() - self._down_since
                reported, self._reported, self._down_since = self._reported, False, None
                if not reported:
                    recovered = None
        if recovered is not None:
            logger.info(
                "Kafka broker reachable again after %.0f s",
                recovered,
                extra=log_context(bootstrap=self._bootstrap),
            )
        self._check()

    def liveness(self) -> tuple[bool, str]:
        """False with a reason once no broker has been up for ``down_after_s``."""
        down = self._check()
        if down is None:
            return True, "ok"
        return False, f"no Kafka broker reachable for {down:.0f} s"

    def _outage(self) -> None:
        if self._down_since is None:
            self._down_since = self._clock()

    def _check(self) -> float | None:
        """Seconds down when beyond the limit (logged once per outage), else None."""
        with self._lock:
            if self._down_since is None:
                return None
            down = self._clock() - self._down_since
            if down <= self.down_after_s:
                return None
            report, self._reported = not self._reported, True
        if report:
            logger.error(
                "no Kafka broker reachable for %.0f s: liveness fails so the worker is restarted",
                down,
                extra=log_context(bootstrap=self._bootstrap, limit_s=self.down_after_s),
            )
        return down


def log_client_error(watch: BrokerWatch | None) -> Callable[[KafkaError], None]:
    """An ``error_cb`` that feeds ``watch`` and logs only what librdkafka did not.

    librdkafka already logs connection, resolution and authentication failures itself
    (collapsed by :mod:`worker.ops.kafka_logs`), so they are kept at debug level here;
    a fatal error is logged as an error.
    """

    def on_error(error: KafkaError) -> None:
        if watch is not None:
            watch.on_error(error)
        context = log_context(code=error.name())
        if error.fatal():
            logger.error("fatal Kafka client error: %s", error.str(), extra=context)
        else:
            logger.debug("Kafka client error: %s", error.str(), extra=context)

    return on_error
