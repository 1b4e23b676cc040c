"""The engine's garbage-collector setting: raised while it runs, set back after."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from worker.engine.collector import YOUNG_COLLECTION_THRESHOLD, fewer_collections


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    yield before
    gc.set_threshold(*before)


def test_the_young_threshold_is_raised_for_the_duration_then_set_back(
    thresholds: tuple[int, int, int],
) -> None:
    gc.set_threshold(700, 10, 10)
    with fewer_collections():
        assert gc.get_threshold() == (YOUNG_COLLECTION_THRESHOLD, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)


def test_a_higher_threshold_is_kept_and_set_back_after_an_error(
    thresholds: tuple[int, int, int],
) -> None:
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD * 2, 5, 7)
    with pytest.raises(RuntimeError), fewer_collections():
        assert gc.get_threshold() == (YOUNG_COLLECTION_THRESHOLD * 2, 5, 7)
        raise RuntimeError("stop")
    assert gc.get_threshold() == (YOUNG_COLLECTION_THRESHOLD * 2, 5, 7)
