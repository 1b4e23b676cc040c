"""``balance-sink replay``: re-read a bounded range of the trade topic into TDengine.

The range is fixed when the replay starts: per partition, a start (an offset, the
first offset at or after a time, the beginning, or the offsets a progress group
committed) and an end (exclusive: an offset, a time, or by default the high watermark
read at start). The replay stops by itself once every partition reached its end; it
never follows new messages.

It reads with ``assign()``, so it never joins, rebalances or commits the live
worker's consumer group. It runs the worker's own engine (:mod:`worker.engine`:
decode, batch, write, dead-letter, backoff from ``[worker]``) with the same batch
limits, so its rows are the worker's rows: (subtable, ts, event_id) keyed, so a
replay over rows already stored overwrites them with the same values, and a replay
with a corrected fee schedule overwrites exactly the rows whose values change.
With ``--commit-group NAME`` the offsets of every stored batch are committed under
NAME (after its rows and dead letters are acknowledged, as the worker does), and
``--resume`` continues from them. A start below a partition's low watermark (its
messages are gone) fails before anything is read; an offset lost during the replay
stops it (``auto.offset.reset=error``): nothing is ever skipped silently.

Modules: ``request`` (what was asked), ``ranges`` (planning the offset ranges),
``driver`` (the engine, assigned to the ranges, with progress), ``progress`` (bar or
log lines), ``summary`` (the report) and ``command`` (checks, wiring, exit code).
"""

from worker.commands.replay.command import run_replay
from worker.commands.replay.driver import Replayer
from worker.commands.replay.errors import RangeError, ReplayError, RetentionLostError
from worker.commands.replay.progress import Progress, make_progress
from worker.commands.replay.ranges import plan_ranges, resolve_ranges
from worker.commands.replay.request import ProgressMode, ReplayRequest
from worker.commands.replay.summary import PartitionSummary, ReplaySummary, format_summary
from worker.engine.ranges import PartitionRange

__all__ = (
    "PartitionRange",
    "PartitionSummary",
    "Progress",
    "ProgressMode",
    "RangeError",
    "ReplayError",
    "ReplayRequest",
    "ReplaySummary",
    "Replayer",
    "RetentionLostError",
    "format_summary",
    "make_progress",
    "plan_ranges",
    "resolve_ranges",
    "run_replay",
)
