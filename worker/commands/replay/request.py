"""What ``balance-sink replay`` was asked to do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from worker.commands.specs import OffsetSpec

__all__ = ("ProgressMode", "ReplayRequest")

ProgressMode = Literal["auto", "bar", "log", "off"]


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    """Everything ``balance-sink replay`` was asked to do (see ``--help``)."""

    config: str
    from_offset: OffsetSpec | None = None
    from_timestamp_ms: int | None = None
    from_beginning: bool = False
    to_offset: OffsetSpec | None = None
    to_timestamp_ms: int | None = None
    topics: tuple[str, ...] = ()
    commit_group: str | None = None
    resume: bool = False
    fee_schedule: str | None = None
    dry_run: bool = False
    dead_letter_topic: str | None = None
    no_dead_letter: bool = False
    summary_file: str | None = None
    progress: ProgressMode = "auto"
    progress_interval_s: float = 10.0
    max_retry_s: float = 300.0

    @property
    def has_start(self) -> bool:
        return (
            self.from_offset is not None
            or self.from_timestamp_ms is not None
            or self.from_beginning
        )
