"""taos-ws-py bind views from plain values: the driver half of building a stmt2 request.

:class:`~worker.tdengine.stmt2.BindBuilder` checks and sorts a batch, then either makes
the views at once (the in-process sender) or keeps each request's rows as a
:class:`BindData` of plain ints, bools and ``None`` (picklable: taos-ws-py's
``stmt2_bind_param_view`` objects are not), which a sender in a child process
(:mod:`worker.tdengine.stmt2_process`) turns into views there with the same
:class:`ViewMaker`. Either way the views are made by the same code, from values
:mod:`worker.tdengine.stmt2_rows` has checked.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any, Final, NamedTuple

from worker.tdengine.errors import FatalStoreError
from worker.tdengine.sql import COLUMNS

__all__ = ("BindData", "ViewMaker", "load_taosws")

_NAME: Final = itemgetter(0)
_TAGS: Final = itemgetter(1)
_TAG_BUILDERS: Final = ("big_int_to_tag", "tiny_int_to_tag")
_COLUMN_BUILDERS: Final[Mapping[str, str]] = {
    "TIMESTAMP": "micros_timestamps_to_column",  # the database's precision is 'us'
    "BIGINT": "big_ints_to_column",
    "INT": "ints_to_column",
    "TINYINT": "tiny_ints_to_column",
    "BOOL": "bools_to_column",
}


def load_taosws() -> Any:
    """Import taos-ws-py, or fail with what to install."""
    try:
        return importlib.import_module("taosws")
    except ImportError as exc:  # pragma: no cover - taos-ws-py is a dependency
        raise FatalStoreError(
            "the stmt2 write path needs taos-ws-py: pip install 'taos-ws-py>=0.7'"
        ) from exc


class BindData(NamedTuple):
    """One request's rows as plain values, one view per entry of ``users``.

    Attributes
    ----------
    users, accounts:
        The tags of each view (plain ints, checked: the subtable name is made of them).
    starts:
        The first row of each view in ``columns``, then the number of rows.
    columns:
        The 12 data columns in schema order, this request's rows only.
    """

    users: list[int]
    accounts: list[int]
    starts: list[int]
    columns: tuple[Sequence[Any], ...]


DEFAULT_TAG_CACHE_SIZE: Final = 1 << 11
"""Subtables whose name and tag views are kept. Small on purpose: an entry costs about
480 bytes (taos-ws-py tag objects included: 126 MiB for 2**18 of them) and saves only
the 0.5 µs of making it again (0.07 µs to look it up), so a large cache buys no speed
where users are many, and the few hot subtables stay cached where they are few. Each
stmt2 child keeps one: at 200,000 users a child peaked at 62 MiB with 2**11 entries,
68 MiB with 2**14."""


class ViewMaker:
    """Makes taos-ws-py bind views; keeps each subtable's name and tag views.

    Parameters
    ----------
    taosws:
        The taos-ws-py module (tests pass a fake); imported when omitted.
    tag_cache_size:
        Most subtables whose (name, tag views) are kept between calls.
    """

    __slots__ = ("_builders", "_max_cached", "_tags", "_view", "_ws")

    def __init__(self, taosws: Any = None, *, tag_cache_size: int = DEFAULT_TAG_CACHE_SIZE) -> None:
        self._ws = taosws if taosws is not None else load_taosws()
        self._max_cached = tag_cache_size
        self._tags: dict[tuple[int, int], tuple[str, list[Any]]] = {}
        self._view = self._ws.stmt2_bind_param_view
        self._builders = tuple(getattr(self._ws, _COLUMN_BUILDERS[kind]) for _, kind in COLUMNS)

    def _subtable(self, user_id: int, account_type: int) -> tuple[str, list[Any]]:
        key = (user_id, account_type)
        cached = self._tags.get(key)
        if cached is not None:
            return cached
        if len(self._tags) >= self._max_cached:
            self._tags.clear()
        big_int, tiny_int = (getattr(self._ws, name) for name in _TAG_BUILDERS)
        # int() drops any int subclass (and its __str__/__format__), and columns_of
        # checked both ranges: the name is 'u', digits, '_a', digits.
        user, account = int(user_id), int(account_type)
        entry = (f"u{user:d}_a{account:d}", [big_int(user), tiny_int(account)])
        self._tags[key] = entry
        return entry

    def views(
        self,
        users: Sequence[int],
        accounts: Sequence[int],
        columns: Sequence[Sequence[Any]],
        starts: Sequence[int],
        ends: Sequence[int],
    ) -> list[Any]:
        """One view per subtable run: rows ``starts[i]:ends[i]`` of ``columns``, tagged
        ``users[i]``, ``accounts[i]``.

        Raises
        ------
        FatalStoreError
            taos-ws-py refused a column that passed our checks (a bug, never data).
        """
        slices = list(map(slice, starts, ends))
        subtables = list(map(self._subtable, users, accounts))
        try:
            # Column by column, so the loops run in C: one builder call per view and column.
            built = [
                list(map(build, map(column.__getitem__, slices)))
                for build, column in zip(self._builders, columns, strict=True)
            ]
            return list(
                map(
                    self._view,
                    map(_NAME, subtables),
                    map(_TAGS, subtables),
                    zip(*built, strict=True),
                )
            )
        except (TypeError, ValueError, OverflowError) as exc:
            raise FatalStoreError(f"taos-ws-py refused a checked column: {exc}") from None

    def views_of(self, data: BindData) -> list[Any]:
        """The views of a request kept as :class:`BindData` (in the child process)."""
        starts = data.starts
        return self.views(data.users, data.accounts, data.columns, starts[:-1], starts[1:])
