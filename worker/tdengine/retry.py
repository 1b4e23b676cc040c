"""One retry budget for TDengine calls: retry transient errors until a time limit.

The limit is time only (``retry_max_elapsed_s`` for statements, ``startup_timeout_s``
for the first contact at start-up); there is no attempt cap that could end the
retries earlier. Waits grow exponentially with full jitter, from
``retry_initial_backoff_s`` up to ``retry_max_backoff_s``, and the last wait is cut so
that the last attempt starts when the budget ends: a call so returns or raises within
its budget plus one request (``request_timeout_s``).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Literal, Protocol, TypeVar

from worker.tdengine.errors import StoreError, TransientStoreError
from worker.tdengine.options import TDengineOptions

__all__ = ("Retrier", "RetryObserver", "hex_code")

logger = logging.getLogger("worker.tdengine.writer")

_T = TypeVar("_T")


class RetryObserver(Protocol):
    """The metrics hooks the retry loop calls."""

    def on_retry(self, error: StoreError) -> None:
        """A transient error; the call will be retried after a backoff."""

    def on_error(self, kind: Literal["transient", "permanent", "fatal"], code: int | None) -> None:
        """Any error answer, one call per failed attempt."""


def hex_code(code: int | None) -> str:
    """``0x2603`` or ``none``, for log lines."""
    return "none" if code is None else f"0x{code:04X}"


class Retrier:
    """Runs calls, retrying :class:`TransientStoreError` within a time budget.

    Parameters
    ----------
    options:
        Backoff settings and the default budget (``retry_max_elapsed_s``).
    observer:
        Told about every failed attempt and every retry.
    sleep, clock:
        Backoff sleep and monotonic clock (tests pass fakes).
    jitter:
        ``jitter(0, ceiling)`` picks a wait; ``random.uniform`` by default.
    """

    def __init__(
        self,
        options: TDengineOptions,
        observer: RetryObserver,
        *,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self._options = options
        self._observer = observer
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter

    def backoff_ceiling(self, attempt: int) -> float:
        """The longest wait after failed attempt number ``attempt`` (1-based)."""
        options = self._options
        growth = options.retry_initial_backoff_s * 2.0 ** min(attempt - 1, 60)
        return min(options.retry_max_backoff_s, growth)

    def run(
        self,
        call: Callable[[], _T],
        *,
        max_elapsed_s: float | None = None,
        no_retry: frozenset[int] = frozenset(),
        log_each_retry: bool = True,
    ) -> _T:
        """Return ``call()``, retrying transient errors for up to ``max_elapsed_s``.

        ``max_elapsed_s`` defaults to ``retry_max_elapsed_s``. Transient errors whose
        code is in ``no_retry`` are raised at once, like permanent and fatal errors.
        After the budget the last transient error is raised. With ``log_each_retry``
        false only the first retry is a warning (the others are debug lines).
        """
        budget = self._options.retry_max_elapsed_s if max_elapsed_s is None else max_elapsed_s
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                return call()
            except StoreError as exc:
                self._observer.on_error(exc.kind, exc.code)
                if exc.kind == "fatal":
                    logger.error(
                        "tdengine fatal error code=%s http=%s error=%s",
                        hex_code(exc.code),
                        exc.http_status,
                        exc.desc,
                    )
                if not isinstance(exc, TransientStoreError) or exc.code in no_retry:
                    raise
                remaining = budget - (self._clock() - started)
                if remaining <= 0:
                    logger.error(
                        "tdengine giving up after retries attempts=%d max_elapsed_s=%.1f "
                        "code=%s error=%s",
                        attempt,
                        budget,
                        hex_code(exc.code),
                        exc.desc,
                    )
                    raise
                wait = min(self._jitter(0.0, self.backoff_ceiling(attempt)), remaining)
                logger.log(
                    logging.WARNING if log_each_retry or attempt == 1 else logging.DEBUG,
                    "tdengine transient error, retrying attempt=%d wait_s=%.3f code=%s error=%s",
                    attempt,
                    wait,
                    hex_code(exc.code),
                    exc.desc,
                )
                self._observer.on_retry(exc)
                self._sleep(wait)
