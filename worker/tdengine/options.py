"""``TDengineOptions``: the ``[tdengine]`` section of the worker's configuration."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any, Final, Literal, get_args
from urllib.parse import urlsplit

import msgspec

from worker.tdengine.errors import OptionsError
from worker.tdengine.sql import (
    DEFAULT_MAX_STATEMENT_BYTES,
    MAX_SQL_BYTES,
    MIN_STATEMENT_BYTES,
    check_database_name,
)
from worker.tdengine.stmt2 import DEFAULT_MAX_ROWS as DEFAULT_BIND_MAX_ROWS

__all__ = (
    "DEFAULT_SQL_SENDERS",
    "DEFAULT_STMT2_SENDERS",
    "MAX_SQL_SENDERS",
    "MAX_STMT2_SENDERS",
    "SCHEMES",
    "WRITE_APIS",
    "TDengineOptions",
    "WriteApi",
)

SCHEMES: Final = ("http", "https", "ws", "wss")
"""URL schemes: http/https use the REST API, ws/wss the WebSocket API (taosws)."""

WriteApi = Literal["sql", "stmt2"]
WRITE_APIS: Final[tuple[WriteApi, ...]] = get_args(WriteApi)
"""How rows are written: SQL text (over the URL's API), or stmt2 binding (WebSocket)."""

DEFAULT_STMT2_SENDERS: Final = 2
"""stmt2 child senders by default: two overlap one request's views with another's
server time (measured: the write chain alone +28 % to +89 % over one); a third added
nothing on 2 cores."""
MAX_STMT2_SENDERS: Final = 8
DEFAULT_SQL_SENDERS: Final = 2
"""REST connections sending a batch's INSERT statements side by side by default: the
server works on two statements at once (measured against 3.3.6.13, sending only:
+13 % to +58 % over one connection, tables existing; a third added 2-16 %)."""
MAX_SQL_SENDERS: Final = 8

_DURATION: Final = re.compile(r"[1-9][0-9]{0,8}[mhd]?")
_KEEP: Final = re.compile(r"[1-9][0-9]{0,8}[mhd]?(,[1-9][0-9]{0,8}[mhd]?){0,2}")
_MASK: Final = "***"


class TDengineOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How to reach TDengine and how hard to try.

    The password never appears in ``repr``, ``str`` or rich output.

    Attributes
    ----------
    url:
        ``http(s)://host:port`` of taosAdapter's REST API, or ``ws(s)://host:port``
        for its WebSocket API. No path, query or credentials in the URL.
    user, password:
        TDengine credentials (Basic auth for REST).
    database:
        Database name, a plain identifier (always backquoted in SQL).
    create_database:
        Create the database when it is missing (``init-db`` and worker start-up).
        When false, a missing database is fatal.
    keep, duration, wal_level:
        ``CREATE DATABASE`` options, only sent when set (server defaults otherwise):
        ``keep`` like ``"3650d"`` (or up to three comma-separated tiers), ``duration``
        like ``"10d"``, ``wal_level`` 1 or 2.
    max_statement_bytes:
        Largest INSERT statement in bytes, at most 1,048,576 (TDengine's SQL limit).
    request_timeout_s:
        Connect and read timeout of one request, in seconds.
    retry_initial_backoff_s, retry_max_backoff_s, retry_max_elapsed_s:
        Retries of a statement after transient errors: exponential backoff with jitter
        from ``retry_initial_backoff_s`` up to ``retry_max_backoff_s``, for up to
        ``retry_max_elapsed_s`` (time is the only limit: no attempt count), then
        ``TransientStoreError``. A statement's retries so end within
        ``retry_max_elapsed_s`` plus one request (``request_timeout_s``), and the Kafka
        consumer keeps polling while the worker pauses its partitions and retries the
        flush later.
    startup_timeout_s:
        At start-up, how long to wait for the server to answer (retrying with the same
        backoff) before giving up with the URL and the last error. A refused password
        is fatal at once.
    write_api:
        ``"sql"`` (INSERT text over the URL's API: the simple path) or ``"stmt2"``
        (parameter binding over taosAdapter's WebSocket API on the same host and port,
        whatever the URL's scheme; DDL and queries still use the URL's API).
    bind_max_rows:
        Most rows in one stmt2 request (``write_api = "stmt2"``).
    stmt2_process:
        Send stmt2 requests from a child process (``write_api = "stmt2"``; default
        true). taos-ws-py holds the GIL for a whole call and has no timeout: from a
        child, the writer thread waits with the GIL released (so a write overlaps
        reading the next batch) and a request past ``request_timeout_s`` kills the
        child (a transient error; the next request starts another, whose start, well
        under a second on an idle machine, comes on top of that deadline). False sends
        from the worker's process, with neither.
    stmt2_senders:
        How many child processes send a batch's stmt2 requests side by side (1..8;
        ``None``: :data:`DEFAULT_STMT2_SENDERS` with ``stmt2_process``, else 1). One
        child's requests are serial: it makes a request's bind views (holding its GIL),
        then waits for the server. With two, one makes views while the other waits.
        Each child costs about 30 MiB idle plus its request's views. More than 1 needs
        ``stmt2_process``: in the worker's process, taos-ws-py serialises every call.
    sql_senders:
        How many connections send a batch's INSERT statements side by side
        (``write_api = "sql"``; 1..8; ``None``: :data:`DEFAULT_SQL_SENDERS` over REST,
        else 1). Each is a keep-alive REST connection; the server works on several
        statements at once. More than 1 needs an ``http(s)`` URL: WebSocket SQL
        (taos-ws-py) holds the GIL while it waits, so its statements cannot overlap.
    """

    url: str = "http://localhost:6041"
    user: str = "root"
    password: str = "taosdata"
    database: str = "ledger"
    create_database: bool = True
    keep: str | None = None
    duration: str | None = None
    wal_level: int | None = None
    max_statement_bytes: int = DEFAULT_MAX_STATEMENT_BYTES
    request_timeout_s: float = 10.0
    retry_initial_backoff_s: float = 0.1
    retry_max_backoff_s: float = 2.0
    retry_max_elapsed_s: float = 15.0
    startup_timeout_s: float = 60.0
    write_api: WriteApi = "sql"
    bind_max_rows: int = DEFAULT_BIND_MAX_ROWS
    stmt2_process: bool = True
    stmt2_senders: int | None = None
    sql_senders: int | None = None

    def __post_init__(self) -> None:
        _check_url(self.url)
        if not self.user or any(c in self.user for c in ":\r\n"):
            raise OptionsError("tdengine.user", "must be non-empty, without ':' or newlines")
        if not self.password or any(c in self.password for c in "\r\n"):
            raise OptionsError("tdengine.password", "must be non-empty, without newlines")
        try:
            check_database_name(self.database)
        except OptionsError as exc:
            raise OptionsError("tdengine.database", exc.problem) from None
        if self.keep is not None and _KEEP.fullmatch(self.keep) is None:
            raise OptionsError(
                "tdengine.keep", f"{self.keep!r} is not like '3650d' or '30d,365d,3650d'"
            )
        if self.duration is not None and _DURATION.fullmatch(self.duration) is None:
            raise OptionsError("tdengine.duration", f"{self.duration!r} is not like '10d'")
        if self.wal_level is not None and self.wal_level not in (1, 2):
            raise OptionsError("tdengine.wal_level", f"must be 1 or 2, got {self.wal_level!r}")
        if not MIN_STATEMENT_BYTES <= self.max_statement_bytes <= MAX_SQL_BYTES:
            raise OptionsError(
                "tdengine.max_statement_bytes",
                f"must be in {MIN_STATEMENT_BYTES}..{MAX_SQL_BYTES} (TDengine's SQL limit), "
                f"got {self.max_statement_bytes}",
            )
        for name in ("request_timeout_s", "retry_initial_backoff_s", "retry_max_backoff_s"):
            if not getattr(self, name) > 0:
                raise OptionsError(f"tdengine.{name}", "must be > 0")
        if self.retry_max_backoff_s < self.retry_initial_backoff_s:
            raise OptionsError("tdengine.retry_max_backoff_s", "must be >= retry_initial_backoff_s")
        if self.write_api not in WRITE_APIS:
            raise OptionsError(
                "tdengine.write_api",
                f"must be one of {', '.join(WRITE_APIS)}, got {self.write_api!r}",
            )
        if not 1 <= self.bind_max_rows <= 1_000_000:
            raise OptionsError("tdengine.bind_max_rows", "must be in 1..1000000")
        if type(self.stmt2_process) is not bool:
            raise OptionsError(
                "tdengine.stmt2_process", f"must be true or false, got {self.stmt2_process!r}"
            )
        self._check_senders()
        for name in ("retry_max_elapsed_s", "startup_timeout_s"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise OptionsError(f"tdengine.{name}", "must be a finite number >= 0")

    def _check_senders(self) -> None:
        """``stmt2_senders`` and ``sql_senders``: in range, and more than 1 only where
        requests can overlap."""
        overlap = {
            "stmt2_senders": None
            if self.stmt2_process
            else "tdengine.stmt2_process = true (in the worker's process taos-ws-py sends "
            "one request at a time)",
            "sql_senders": None
            if self.scheme in ("http", "https")
            else "an http(s) tdengine.url (WebSocket SQL holds the GIL while it waits, so "
            "its statements cannot overlap)",
        }
        limits = {"stmt2_senders": MAX_STMT2_SENDERS, "sql_senders": MAX_SQL_SENDERS}
        for name, needs in overlap.items():
            senders = getattr(self, name)
            if senders is None:
                continue
            if type(senders) is not int or not 1 <= senders <= limits[name]:
                raise OptionsError(
                    f"tdengine.{name}", f"must be an int in 1..{limits[name]}, got {senders!r}"
                )
            if senders > 1 and needs is not None:
                raise OptionsError(
                    f"tdengine.{name}", f"is {senders}, but more than 1 needs {needs}"
                )

    @property
    def senders(self) -> int:
        """How many stmt2 senders to run (``stmt2_senders`` resolved)."""
        if self.stmt2_senders is not None:
            return self.stmt2_senders
        return DEFAULT_STMT2_SENDERS if self.stmt2_process else 1

    @property
    def sql_sender_count(self) -> int:
        """How many SQL connections send side by side (``sql_senders`` resolved)."""
        if self.sql_senders is not None:
            return self.sql_senders
        return DEFAULT_SQL_SENDERS if self.scheme in ("http", "https") else 1

    @property
    def scheme(self) -> str:
        """The URL scheme, lower-case: ``http``, ``https``, ``ws`` or ``wss``."""
        return urlsplit(self.url).scheme.lower()

    def _public_fields(self) -> Iterator[tuple[str, Any]]:
        for name in self.__struct_fields__:
            yield name, (_MASK if name == "password" else getattr(self, name))

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={value!r}" for name, value in self._public_fields())
        return f"TDengineOptions({inner})"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return list(self._public_fields())


def _check_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise OptionsError("tdengine.url", f"is not a URL: {exc}") from None
    if parts.scheme.lower() not in SCHEMES:
        raise OptionsError("tdengine.url", f"scheme must be one of {', '.join(SCHEMES)}")
    if not parts.hostname:
        raise OptionsError("tdengine.url", "has no host")
    if parts.username is not None or parts.password is not None:
        raise OptionsError(
            "tdengine.url", "must not carry credentials: use tdengine.user and tdengine.password"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise OptionsError("tdengine.url", "must be scheme://host[:port] only")
    del port
