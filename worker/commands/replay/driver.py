"""The replay's driver of the engine: read assigned ranges to their end, show progress."""

from __future__ import annotations

from collections.abc import Sequence

from worker.commands.replay.errors import ReplayError
from worker.commands.replay.progress import Progress, make_progress
from worker.engine.engine import Engine, EngineStopped, SinkGaveUp, Totals
from worker.engine.ranges import PartitionRange, RangeBounds

__all__ = ("Replayer",)


class Replayer:
    """Reads ``ranges`` to their end through ``engine``, never joining a group.

    Parameters
    ----------
    engine:
        Over a consumer whose ``group.id`` is the progress group (or a throwaway one);
        it is only ever ``assign()``-ed. Its ``give_up_after_s`` bounds how long a
        failing store is retried.
    commit:
        Commit every start, then each stored batch's offsets, to that group.
    """

    def __init__(
        self,
        engine: Engine,
        ranges: Sequence[PartitionRange],
        *,
        commit: bool,
        progress: Progress | None = None,
    ) -> None:
        self._engine = engine
        self._bounds = RangeBounds(ranges)
        self._commit = commit
        self._progress = progress or make_progress("off", 0, 0.0)

    @property
    def totals(self) -> Totals:
        return self._engine.totals

    @property
    def next_offsets(self) -> dict[tuple[str, int], int]:
        """The next offset to read per partition (the end once a partition is done)."""
        return self._bounds.next_offsets

    @property
    def complete(self) -> bool:
        """Every range was read and stored."""
        return not self._bounds.reading and not self._engine.buffered_messages

    def stop(self) -> None:
        """Finish early: store and commit what was read, then return."""
        self._engine.stop()

    def run(self) -> None:
        """Read every range to its end (or until :meth:`stop`); raises :class:`ReplayError`."""
        try:
            self._engine.assign_ranges(self._bounds, commit=self._commit)
            self._engine.run(on_step=self._show)
        except SinkGaveUp as exc:
            raise ReplayError(
                f"TDengine kept failing for {exc.failing_for_s:.0f} s: {exc.cause}"
            ) from exc
        except EngineStopped as exc:
            raise ReplayError(str(exc)) from exc

    def _show(self) -> None:
        self._progress.update(self._bounds.done)
