"""The audit's error: a bad request, or a store or Kafka error that stops it."""

from __future__ import annotations

from worker.errors import BalanceSinkError

__all__ = ("AuditError",)


class AuditError(BalanceSinkError):
    """The audit cannot run (bad request) or cannot finish (store or Kafka error)."""
