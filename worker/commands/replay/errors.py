"""Why a replay cannot start or go on."""

from __future__ import annotations

from worker.errors import BalanceSinkError

__all__ = ("ReplayError", "RetentionLostError")


class ReplayError(BalanceSinkError):
    """The replay cannot start or continue; the message says why."""


class RetentionLostError(ReplayError):
    """A requested start is below the partition's low watermark: those messages are gone."""
