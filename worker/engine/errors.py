"""Why the engine stopped."""

from __future__ import annotations

from worker.errors import BalanceSinkError

__all__ = ("EngineStopped", "SinkGaveUp")


class EngineStopped(BalanceSinkError):
    """The engine stopped on a fatal condition; nothing further was committed."""


class SinkGaveUp(EngineStopped):
    """The sink kept failing for longer than the engine was allowed to wait."""

    def __init__(self, failing_for_s: float, cause: Exception) -> None:
        self.failing_for_s = failing_for_s
        self.cause = cause
        super().__init__(f"the sink kept failing for {failing_for_s:.0f} s: {cause}")
