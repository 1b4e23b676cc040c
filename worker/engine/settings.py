"""What the engine reads from the configuration."""

from __future__ import annotations

from typing import Protocol

__all__ = ("EngineSettings",)


class EngineSettings(Protocol):
    """What the engine reads from the configuration (``[batch]`` and ``[worker]``)."""

    @property
    def max_rows(self) -> int: ...
    @property
    def max_bytes(self) -> int: ...
    @property
    def linger_ms(self) -> int: ...
    @property
    def poll_timeout_ms(self) -> int: ...
    @property
    def retry_initial_backoff_ms(self) -> int: ...
    @property
    def retry_max_backoff_ms(self) -> int: ...
    @property
    def dead_letter_timeout_s(self) -> float: ...
    @property
    def shutdown_timeout_s(self) -> float: ...
    @property
    def not_ready_after_failing_s(self) -> float: ...
