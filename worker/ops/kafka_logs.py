"""librdkafka's log lines through the project's logging, with repeats collapsed.

Every Kafka client is built from :func:`kafka_client_config`, which adds
confluent-kafka's ``logger`` property: librdkafka then hands each line to
:class:`LibrdkafkaLogger` (on the thread that polls the client) instead of printing
``%3|...|FAIL|...`` on stderr. The line becomes a record of the ``librdkafka`` logger at
confluent-kafka's mapping of the syslog level (0-2 CRITICAL, 3 ERROR, 4 WARNING, 5-6
INFO, 7 DEBUG), with ``facility``, ``client`` and ``thread`` as context fields, so it is
rendered like every other line (JSON or human).

A broker that stays unreachable makes librdkafka repeat the same line several times a
second. The first one is logged; repeats within ``repeat_interval_s`` are counted, and
the count is logged once the interval is over (or at :func:`flush_kafka_logs`).
"""

from __future__ import annotations

import atexit
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = (
    "DEFAULT_REPEAT_INTERVAL_S",
    "LibrdkafkaLogger",
    "flush_kafka_logs",
    "kafka_client_config",
    "set_repeat_interval",
)

DEFAULT_REPEAT_INTERVAL_S: Final = 60.0
TARGET_LOGGER: Final = "librdkafka"
_MAX_KEYS: Final = 1000
"""Distinct lines remembered; beyond this the oldest windows are closed early."""
_CONFLUENT_FORMAT: Final = "%s [%s] %s"
"""How confluent-kafka calls ``logger.log``: facility, client name, text."""
_THREAD: Final = re.compile(r"^\[thrd:([^\]]*)\]:\s*")
_VOLATILE: Final = re.compile(
    r"\s*\(after \d+ms in state \w+(?:, \d+ identical error\(s\) suppressed)?\)"
    r"|, \d+ identical error\(s\) suppressed"
)
"""Parts of a librdkafka line that change between repeats of the same failure."""


@dataclass(slots=True)
class _Window:
    started: float
    level: int
    text: str
    context: dict[str, object]
    last: float = 0.0
    repeats: int = 0


class LibrdkafkaLogger(logging.Logger):
    """The ``logger`` given to confluent-kafka clients; forwards to ``librdkafka``.

    Only :meth:`handle` is specialised, so whichever ``Logger`` method the client
    calls ends here; the level threshold is that of the ``librdkafka`` logger (by
    default the root's).
    """

    def __init__(
        self,
        *,
        repeat_interval_s: float = DEFAULT_REPEAT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        target: logging.Logger | None = None,
    ) -> None:
        super().__init__(f"{TARGET_LOGGER}.client")
        self._target = target or logging.getLogger(TARGET_LOGGER)
        self.parent = self._target  # effective level follows the target's
        self.repeat_interval_s = repeat_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[tuple[int, str, str], _Window] = {}

    def isEnabledFor(self, level: int) -> bool:
        # Not cached here: this logger is not registered, so a level change would not
        # clear a cache of its own.
        return self._target.isEnabledFor(level)

    def handle(self, record: logging.LogRecord) -> None:
        """Collapse, then log through the target logger."""
        facility, client, text = _parse(record)
        thread = _THREAD.match(text)
        context: dict[str, object] = {"facility": facility, "client": client}
        if thread:
            context["thread"] = thread.group(1)
            text = text[thread.end() :]
        key = (record.levelno, facility, _VOLATILE.sub("", text))
        now = self._clock()
        out: list[tuple[int, str, dict[str, object]]] = []
        with self._lock:
            out.extend(self._expired(now, keep=key))
            window = self._windows.get(key)
            if window is not None and now - window.started < self.repeat_interval_s:
                window.repeats += 1
                window.last = now
            elif window is not None and window.repeats:
                window.repeats += 1
                window.last = now
                out.append(_summary(window))
                self._windows[key] = _Window(now, record.levelno, text, context)
            else:
                self._windows[key] = _Window(now, record.levelno, text, context)
                out.append((record.levelno, text, context))
            if len(self._windows) > _MAX_KEYS:
                out.extend(self._expired(float("inf"), keep=key))
        for level, message, ctx in out:
            self._emit(level, message, ctx)

    def flush(self) -> None:
        """Log the counts of repeats not reported yet (e.g. before exiting)."""
        with self._lock:
            out = list(self._expired(float("inf"), keep=None))
        for level, message, ctx in out:
            self._emit(level, message, ctx)

    def _expired(
        self, now: float, keep: tuple[int, str, str] | None
    ) -> list[tuple[int, str, dict[str, object]]]:
        """Close every window (but ``keep``) older than the interval; report its repeats."""
        out = []
        for key, window in list(self._windows.items()):
            if key != keep and now - window.started >= self.repeat_interval_s:
                del self._windows[key]
                if window.repeats:
                    out.append(_summary(window))
        return out

    def _emit(self, level: int, message: str, context: dict[str, object]) -> None:
        if self._target.isEnabledFor(level):
            self._target.log(level, "%s", message, extra={"ctx": context})


def _parse(record: logging.LogRecord) -> tuple[str, str, str]:
    args = record.args
    if record.msg == _CONFLUENT_FORMAT and isinstance(args, tuple) and len(args) == 3:
        return str(args[0]), str(args[1]), str(args[2])
    return "", "", record.getMessage()


def _summary(window: _Window) -> tuple[int, str, dict[str, object]]:
    seconds = max(0.0, window.last - window.started)
    context = {**window.context, "repeated": window.repeats, "seconds": round(seconds, 1)}
    message = f"repeated {window.repeats} times in {seconds:.0f} s: {window.text}"
    return window.level, message, context


_SHARED: Final = LibrdkafkaLogger()
atexit.register(_SHARED.flush)  # counts still pending when a command ends


def kafka_client_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` whose client logs through the project's logging."""
    return {**config, "logger": _SHARED}


def set_repeat_interval(seconds: float) -> None:
    """How long repeats of one librdkafka line are counted before the count is logged."""
    _SHARED.repeat_interval_s = seconds


def flush_kafka_logs() -> None:
    """Log the pending repeat counts of every client."""
    _SHARED.flush()
