"""Why a replay cannot start or go on."""

from __future__ import annotations

from worker.errors import BalanceSinkError

__all__ = ("RangeError", "ReplayError", "RetentionLostError")


class ReplayError(BalanceSinkError):
    """The replay cannot start or continue; the message says why."""


class RangeError(ReplayError):
    """The requested range does not fit the topic (a usage error: nothing was read)."""


class RetentionLostError(RangeError):
    """A requested start is below the partition's low watermark: those messages are gone."""
