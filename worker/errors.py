"""The root of balance-sink's exception tree.

Every error the package raises on purpose derives from :class:`BalanceSinkError`.
Subpackages keep their own ``errors.py`` with subclasses (``worker.tdengine.errors``,
``standins.local_kafka.errors``), as msgspec and Quix Streams do.
"""

from __future__ import annotations

__all__ = (
    "BalanceSinkError",
    "ConfigError",
    "ConservationError",
    "FeeScheduleError",
    "SinkFatalError",
    "SinkTransientError",
)


class BalanceSinkError(Exception):
    """Base class of every error balance-sink raises on purpose."""


class ConfigError(BalanceSinkError):
    """A configuration file or value is invalid; the message names the field."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class FeeScheduleError(ConfigError):
    """The fee schedule file is invalid; the message names the exact field.

    ``file`` is the schedule's path when it was read from a file; the message then
    starts with it: ``fees.toml: versions[0].symbols[1].symbol_id: ...``.
    """

    def __init__(self, field: str, problem: str, *, file: str | None = None) -> None:
        super().__init__(field, problem)
        self.file = file
        if file is not None and field != file:
            self.args = (f"{file}: {field}: {problem}",)


class ConservationError(BalanceSinkError):
    """A derived trade does not conserve an asset (a bug, never bad input)."""


class SinkTransientError(BalanceSinkError):
    """The store is unavailable for now: retry the whole batch later.

    Part of the sink contract (:mod:`worker.engine.sink`); defined here, with the root,
    so a store's errors need not import the engine.
    """


class SinkFatalError(BalanceSinkError):
    """The store cannot be written as configured (credentials, schema, ...): stop."""
