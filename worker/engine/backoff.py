"""Exponential backoff with jitter, for flush and commit retries."""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ("Backoff",)


class Backoff:
    """Delays that double from ``initial_s`` up to ``max_s``, each drawn from [d/2, d].

    The jitter keeps replicas that failed together from retrying in step.
    """

    __slots__ = ("_current", "_initial", "_max", "_random")

    def __init__(
        self, initial_s: float, max_s: float, *, rng: Callable[[], float] = random.random
    ) -> None:
        self._initial = initial_s
        self._max = max_s
        self._current = initial_s
        self._random = rng

    def next_delay(self) -> float:
        """The delay before the next attempt; the one after is twice as long (capped)."""
        delay = self._current * (0.5 + self._random() / 2)
        self._current = min(self._current * 2, self._max)
        return delay

    def reset(self) -> None:
        """Start again from ``initial_s`` (after a success)."""
        self._current = self._initial
