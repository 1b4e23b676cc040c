"""Liveness and readiness of an engine, from what its loop reports."""

from __future__ import annotations

from collections.abc import Callable

from worker.engine.settings import EngineSettings

__all__ = ("EngineHealth",)

_MIN_LIVENESS_S = 60.0
"""An iteration may take this long at least (a flush, a rebalance) before it counts as stuck."""


class EngineHealth:
    """Alive while the loop iterates; ready once reading, unless flushes fail for too long."""

    __slots__ = ("_clock", "_heartbeat", "_settings", "_writing_since", "failing_since", "reading")

    def __init__(self, settings: EngineSettings, clock: Callable[[], float]) -> None:
        self._settings = settings
        self._clock = clock
        self._heartbeat = clock()
        self._writing_since: float | None = None
        self.reading = False
        """Partitions were assigned (by the group, or ranges)."""
        self.failing_since: float | None = None
        """When flushes started failing; None while they succeed."""

    def beat(self, writing_since: float | None = None) -> None:
        """The loop iterated; ``writing_since``: when the oldest write still running began."""
        self._heartbeat = self._clock()
        self._writing_since = writing_since

    def liveness(self) -> tuple[bool, str]:
        """Alive while the loop keeps iterating and writes end (a stuck poll or write is
        not alive)."""
        now = self._clock()
        idle = now - self._heartbeat
        limit = max(_MIN_LIVENESS_S, 4 * self._settings.shutdown_timeout_s)
        if idle > limit:
            return False, f"consumer loop has not iterated for {idle:.0f} s"
        since = self._writing_since
        if since is not None and now - since > limit:
            return False, f"a write has not ended for {now - since:.0f} s"
        return True, "ok"

    def readiness(self) -> tuple[bool, str]:
        """Ready once in the group, unless flushes have failed for too long."""
        if not self.reading:
            return False, "not yet assigned by the consumer group"
        if self.failing_since is not None:
            failing = self._clock() - self.failing_since
            if failing > self._settings.not_ready_after_failing_s:
                return False, f"flushes failing for {failing:.0f} s"
        return True, "ok"
