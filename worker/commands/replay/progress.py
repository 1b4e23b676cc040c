"""How far a replay got: a bar on a terminal, log lines otherwise, or nothing."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Protocol

from worker.commands.replay.request import ProgressMode
from worker.ops.logs import log_context

__all__ = ("Progress", "make_progress")

logger = logging.getLogger(__name__)


class Progress(Protocol):
    """Shows how far the replay got: ``update(done)`` with offsets covered so far."""

    def update(self, done: int) -> None: ...
    def close(self) -> None: ...


class _NoProgress:
    def update(self, done: int) -> None:
        pass

    def close(self) -> None:
        pass


class _LogProgress:
    """One log line every ``interval_s`` and a last one at the end: done, percent, rate, ETA."""

    def __init__(self, total: int, interval_s: float, clock: Callable[[], float]) -> None:
        self._total = total
        self._interval = interval_s
        self._clock = clock
        self._started = clock()
        self._last = self._started
        self._done = 0

    def update(self, done: int) -> None:
        self._done = done
        now = self._clock()
        if now - self._last >= self._interval:
            self._last = now
            self._log(now)

    def _log(self, now: float) -> None:
        done = self._done
        rate = done / max(now - self._started, 1e-9)
        eta = (self._total - done) / rate if rate > 0 else None
        logger.info(
            "replay progress",
            extra=log_context(
                done=done, total=self._total,
                percent=round(100 * done / self._total, 1) if self._total else 100.0,
                messages_per_s=round(rate), eta_s=None if eta is None else round(eta),
            ),
        )  # fmt: skip

    def close(self) -> None:
        self._log(self._clock())


class _RichProgress:
    """A rich progress bar: percent, offsets done/total, messages/s and ETA."""

    def __init__(self, total: int, description: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress as RichProgress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(file=sys.stdout),
        )
        self._task = self._bar.add_task(description, total=total, rate="")
        self._bar.start()

    def update(self, done: int) -> None:
        task = self._bar.tasks[0]
        speed = task.speed
        rate = f"{speed:,.0f} msg/s" if speed else ""
        self._bar.update(self._task, completed=done, rate=rate)

    def close(self) -> None:
        self._bar.stop()


def make_progress(mode: ProgressMode, total: int, interval_s: float) -> Progress:
    """A bar on a terminal (``auto``), log lines otherwise, or nothing (``off``)."""
    if mode == "off":
        return _NoProgress()
    if mode == "bar" or (mode == "auto" and sys.stdout.isatty()):
        return _RichProgress(total, "replay")
    return _LogProgress(total, interval_s, time.monotonic)
