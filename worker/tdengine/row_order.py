"""The order both write paths send a batch's rows in: by subtable, then ``ts``, then
``event_id``, rows with the same identity keeping their input order (so the later one
is written last and wins).

A subtable is one int here, ``user_id << 7 | account_type``: the tags' checks
(:class:`~worker.tdengine.row_checks.Tags`) keep account types in 0..127, so the ints
order as the (user_id, account_type) pairs do.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import compress, repeat
from operator import and_, lshift, ne, or_, rshift
from typing import Final

__all__ = ("identity_order", "run_starts", "subtable_keys", "tags_of")

_ACCOUNT_BITS: Final = 7
_ACCOUNT_MASK: Final = (1 << _ACCOUNT_BITS) - 1


def subtable_keys(users: Sequence[int], accounts: Sequence[int]) -> list[int]:
    """Each row's subtable as one int, from its checked tags."""
    return list(map(or_, map(lshift, users, repeat(_ACCOUNT_BITS)), accounts))


def tags_of(subtables: Sequence[int]) -> tuple[list[int], list[int]]:
    """(user ids, account types) of subtables made by :func:`subtable_keys`."""
    return (
        list(map(rshift, subtables, repeat(_ACCOUNT_BITS))),
        list(map(and_, subtables, repeat(_ACCOUNT_MASK))),
    )


def identity_order(
    subtables: Sequence[int], ts: Sequence[int], event_id: Sequence[int]
) -> list[int]:
    """Row positions in identity order: three stable sorts of the positions, least
    significant key first, on C-level keys (cheap on input already nearly in order)."""
    order = list(range(len(subtables)))
    for key in (event_id, ts, subtables):
        order.sort(key=key.__getitem__)
    return order


def run_starts(subtables: Sequence[int]) -> list[int]:
    """Position of the first row of every subtable run in ``subtables`` (sorted)."""
    if not subtables:
        return []
    return [0, *compress(range(1, len(subtables)), map(ne, subtables[1:], subtables))]
