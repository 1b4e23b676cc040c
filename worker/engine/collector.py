"""The garbage collector while the engine runs: fewer collections of young objects.

Every message read leaves container objects the collector tracks in the batch until the
batch is stored (the Kafka record and its key; its rows, a TradeRows in a MessageRows,
are untracked Structs). With CPython's default threshold (a collection of the youngest
generation every 700 such allocations, and of the older ones every 10 of those) the
collector traverses the same batches again and again as they age: about a fifth of a
busy worker's time, measured with the benchmark (``bench.bench_worker``) when the rows
were still tracked tuples. What the engine allocates is freed by reference counting as
soon as a batch is stored, not by the collector, so collecting less often only delays
the rare cyclic garbage a little.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

__all__ = ("YOUNG_COLLECTION_THRESHOLD", "fewer_collections")

YOUNG_COLLECTION_THRESHOLD: Final = 50_000
"""Tracked objects allocated between two collections of the youngest generation while
the engine runs: a few polls' worth of messages (20,000 collected noticeably more often
for the same work; 200,000 gained nothing more)."""


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Raise the youngest generation's threshold to :data:`YOUNG_COLLECTION_THRESHOLD`
    (unless it is higher already) for the duration, then set the thresholds back."""
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], YOUNG_COLLECTION_THRESHOLD), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
