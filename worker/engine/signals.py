"""Stopping on SIGTERM and SIGINT: one install, one restore."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from worker.ops.logs import log_context

__all__ = ("stop_on_signals",)

logger = logging.getLogger(__name__)

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """Inside the block, SIGTERM and SIGINT call ``stop``; the previous handlers return after.

    Call from the main thread (Python delivers signals only there).
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        logger.info("stop requested", extra=log_context(signal=signal.Signals(signum).name))
        stop()

    previous = {signum: signal.signal(signum, handler) for signum in _SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
