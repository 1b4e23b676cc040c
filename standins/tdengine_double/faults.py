"""Fault injection for the stand-in: refused connections, HTTP failures, delays, errors."""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ("MEMORY_EXCEEDS_BODY", "FaultInjector")

MEMORY_EXCEEDS_BODY = '"memory exceeds threshold"'
"""taosAdapter's 503 body when it pauses for memory: a bare JSON string."""


class FaultInjector:
    """Faults a test can switch on; all are off until asked for and cleared by :meth:`clear`.

    ``set_refusing`` is the server's hook that really closes (or reopens) the listening
    socket on the same port.
    """

    def __init__(self, set_refusing: Callable[[bool], None]) -> None:
        self._set_refusing = set_refusing
        self._lock = threading.Lock()
        self._refusing = False
        self._fail_count = 0
        self._fail_status = 503
        self._fail_body: str | None = None
        self._delay = 0.0
        self._subtable_errors: dict[str, tuple[int, str]] = {}

    def refuse_connections(self, on: bool) -> None:
        """Close the listening socket (clients get "connection refused") or reopen it."""
        with self._lock:
            if on == self._refusing:
                return
            self._refusing = on
        self._set_refusing(on)

    def fail_next(self, n: int, status: int = 503, body: str | None = None) -> None:
        """Answer the next ``n`` requests with ``status`` and ``body`` without running them.

        The default body for 503 is taosAdapter's ``"memory exceeds threshold"``; for any
        other status it is ``{"code":65535,"desc":"injected fault"}``.
        """
        if n < 0:
            raise ValueError("n must be >= 0")
        with self._lock:
            self._fail_count = n
            self._fail_status = status
            self._fail_body = body

    def delay(self, seconds: float) -> None:
        """Sleep ``seconds`` before handling each request (0 switches it off)."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        with self._lock:
            self._delay = seconds

    def error_for_subtable(self, name: str, code: int, desc: str) -> None:
        """Fail, whole, any INSERT that writes to subtable ``name`` with ``code``/``desc``."""
        with self._lock:
            self._subtable_errors[name] = (code, desc)

    def clear(self) -> None:
        """Switch every fault off (and reopen the port if it was closed)."""
        with self._lock:
            self._fail_count = 0
            self._fail_body = None
            self._delay = 0.0
            self._subtable_errors.clear()
        self.refuse_connections(False)

    # ---------------------------------------------------------- server side
    def take_failure(self) -> tuple[int, bytes] | None:
        """The injected (status, body) for this request, if one is due."""
        with self._lock:
            if self._fail_count <= 0:
                return None
            self._fail_count -= 1
            status, body = self._fail_status, self._fail_body
        if body is None:
            body = (
                MEMORY_EXCEEDS_BODY if status == 503 else '{"code":65535,"desc":"injected fault"}'
            )
        return status, body.encode()

    @property
    def current_delay(self) -> float:
        """Seconds to wait before handling a request."""
        with self._lock:
            return self._delay

    def subtable_errors(self) -> dict[str, tuple[int, str]]:
        """A copy of the per-subtable INSERT errors."""
        with self._lock:
            return dict(self._subtable_errors)
