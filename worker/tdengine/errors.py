"""TDengine store errors and the classification of TDengine error codes.

Three classes of failure, each with a different answer from the writer:

* :class:`TransientStoreError`: the server or the path to it is unwell (refused,
  reset, timed out, HTTP 5xx, busy, sync, "database starting up"). Back off and
  retry; after the retry budget the whole batch is retried later by the caller,
  which is safe because every row overwrites itself.
* :class:`PermanentStoreError`: the server rejected something that depends on the
  values of the rows we sent (timestamp outside KEEP, literal overflow, value too
  long). Retrying cannot help; the writer isolates the message(s) responsible.
* :class:`FatalStoreError`: retrying or isolating cannot help and continuing
  would be wrong (bad credentials, no privilege, missing database, schema drift,
  a statement shape the server does not understand). Stop and tell an operator.

The transient and fatal classes are the sink contract's errors
(:mod:`worker.engine.sink`), which is all the engine catches; a permanent error never
leaves the writer (it becomes a refused message).

Codes are compared as TDengine reports them over REST: ``code & 0xffff``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

from worker.errors import BalanceSinkError, ConfigError, SinkFatalError, SinkTransientError

__all__ = (
    "AUTH_CODES",
    "CODE_CLASSES",
    "GENERIC_ADAPTER_CODE",
    "TABLE_MISSING_CODES",
    "ErrorKind",
    "FatalStoreError",
    "OptionsError",
    "PermanentStoreError",
    "RowValueError",
    "SchemaMismatchError",
    "ServerUnavailableError",
    "StatementSizeError",
    "StoreError",
    "TransientStoreError",
    "UnsupportedServerError",
    "classify",
    "error_kind",
    "is_auth_failure",
    "make_store_error",
)

ErrorKind = Literal["transient", "permanent", "fatal"]


class StoreError(BalanceSinkError):
    """A TDengine operation failed.

    Parameters
    ----------
    desc:
        The server's message (``desc`` of the REST body), or our own description
        when the failure happened before a server answered.
    code:
        The TDengine error code masked to 16 bits, or ``None`` when there is none
        (connection refused, timeout, an HTTP error without a JSON body).
    http_status:
        The HTTP status of the response, when there was one.
    """

    kind: ErrorKind = "transient"

    def __init__(self, desc: str, *, code: int | None = None, http_status: int | None = None):
        self.desc = desc
        self.code = code
        self.http_status = http_status
        super().__init__(desc)

    def __str__(self) -> str:
        where = []
        if self.code is not None:
            where.append(f"code=0x{self.code:04X}")
        if self.http_status is not None:
            where.append(f"http={self.http_status}")
        return f"{self.desc} ({', '.join(where)})" if where else self.desc

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments do not survive the default exception pickling.
        return (_rebuild, (type(self), self.desc, self.code, self.http_status))


def _rebuild(
    cls: type[StoreError], desc: str, code: int | None, http_status: int | None
) -> StoreError:
    return cls(desc, code=code, http_status=http_status)


class TransientStoreError(StoreError, SinkTransientError):
    """Retry later: the server, the network or taosAdapter is temporarily unable."""

    kind: ErrorKind = "transient"


class PermanentStoreError(StoreError):
    """The server rejected values of a message; retrying the same rows cannot succeed."""

    kind: ErrorKind = "permanent"


class FatalStoreError(StoreError, SinkFatalError):
    """Stop: credentials, privileges, database or schema are wrong; never retried."""

    kind: ErrorKind = "fatal"


class RowValueError(PermanentStoreError):
    """A BalanceEvent value is not an integer in range of its column; never sent.

    ``code`` is ``None``: this is our own check, made before any SQL is built.
    """


class SchemaMismatchError(FatalStoreError):
    """The existing database or super table differs from what balance-sink writes.

    ``subject`` names it (e.g. ``super table `ledger`.`balance_events```);
    ``differences`` lists every difference, one human-readable line each.
    """

    def __init__(self, subject: str, differences: tuple[str, ...]):
        self.subject = subject
        self.differences = differences
        lines = "; ".join(differences)
        super().__init__(f"{subject} does not match balance-sink's schema: {lines}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.subject, self.differences))


class UnsupportedServerError(FatalStoreError):
    """The TDengine server is too old (or its version unreadable) for idempotent writes."""

    def __init__(self, version: str, reason: str):
        self.version = version
        self.reason = reason
        super().__init__(f"TDengine server version {version!r} is not supported: {reason}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.version, self.reason))


class ServerUnavailableError(FatalStoreError):
    """TDengine did not answer at start-up within ``startup_timeout_s``.

    Fatal: the caller stops (the worker exits 1). The message names the URL (never
    credentials) and the last error.
    """

    def __init__(self, url: str, waited_s: float, last: StoreError):
        self.url = url
        self.waited_s = waited_s
        self.last = last
        # The last error's code and HTTP status are in its text; not repeated after it.
        super().__init__(
            f"TDengine at {url} did not answer within {waited_s:g} s "
            f"(tdengine.startup_timeout_s); last error: {last}"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.url, self.waited_s, self.last))


class StatementSizeError(BalanceSinkError, ValueError):
    """A single row cannot fit in a statement of the configured size (a bug or bad config)."""


class OptionsError(ConfigError, ValueError):
    """A ``[tdengine]`` option is invalid.

    It is a :class:`ValueError` too, so msgspec reports it as a ``ValidationError``
    when the options are decoded from a configuration file.
    """


AUTH_CODES: Final = frozenset(range(0x0350, 0x0358)) | {0x1105, 0x1122, 0x1124}
"""Codes of refused credentials: the mnode's user codes and taosAdapter's header codes."""

GENERIC_ADAPTER_CODE: Final = 0xFFFF
"""taosAdapter's catch-all code (parameter errors, 503 limiters): the HTTP status decides."""

TABLE_MISSING_CODES: Final = frozenset({0x2603, 0x2662, 0x0362, 0x0218})
"""Codes a DESCRIBE or SELECT of a missing table may return, depending on the version."""

_TRANSIENT: Final = "transient"
_PERMANENT: Final = "permanent"
_FATAL: Final = "fatal"

CODE_CLASSES: Final[Mapping[int, ErrorKind]] = {
    # --- per-message: the values we sent were refused -------------------------------
    0x060B: _PERMANENT,  # Timestamp data out of range (outside KEEP / precision max)
    0x0216: _PERMANENT,  # syntax error near '...' (<type> data overflow, invalid bool ...)
    0x0224: _PERMANENT,  # Value out of range
    0x2610: _PERMANENT,  # Value too long for column/tag (docs' code)
    0x2653: _PERMANENT,  # Value too long for column/tag (code seen on a real server)
    0x267B: _PERMANENT,  # Primary key column should not be null
    0x061D: _PERMANENT,  # Table already exists in other stables (one subtable name)
    # --- fatal: credentials and privileges -------------------------------------------
    # 0x0350-0x0357: the mnode's user and authentication codes.
    0x0350: _FATAL,
    0x0351: _FATAL,  # Invalid user
    0x0352: _FATAL,
    0x0353: _FATAL,
    0x0354: _FATAL,
    0x0355: _FATAL,
    0x0356: _FATAL,
    0x0357: _FATAL,  # Authentication failure
    0x1105: _FATAL,  # taosAdapter: no auth info input
    0x1122: _FATAL,  # taosAdapter: invalid type of Authorization
    0x1124: _FATAL,  # taosAdapter: invalid basic Authorization
    0x0303: _FATAL,  # Insufficient privilege for operation
    0x0512: _FATAL,  # No writing privilege
    # --- fatal: database, schema, statement shape --------------------------------------
    0x0388: _FATAL,  # Database not exist
    0x2616: _FATAL,  # Database not specified (our statements always name it: a bug)
    0x0217: _FATAL,  # Database not specified or available
    0x0380: _FATAL,  # Database not specified or available
    0x0200: _FATAL,  # Invalid operation: db is not specified / key column left out
    0x2600: _FATAL,  # grammar syntax error: our fixed statement shape is not understood
    0x2602: _FATAL,  # Invalid column name: schema drift
    0x263F: _FATAL,  # Illegal number of columns: positional VALUES no longer match
    0x263C: _FATAL,  # Duplicated column names (DDL)
    0x2678: _FATAL,  # composite key must be the second column (DDL)
    0x2679: _FATAL,  # composite key type (DDL)
    0x0360: _FATAL,  # STable already exists (we always say IF NOT EXISTS: a bug)
    0x0219: _FATAL,  # SQL statement too long: server limit below max_statement_bytes
    # --- transient: the server is busy, starting, syncing or unreachable ---------------
    0x0102: _TRANSIENT,  # Out of Memory
    0x0126: _TRANSIENT,  # Out of memory in rpc queue
    0x0531: _TRANSIENT,  # Query busy
    0x000B: _TRANSIENT,  # Unable to establish connection (RPC network unavailable)
    0x0018: _TRANSIENT,  # Conn is broken
    0x0019: _TRANSIENT,  # Conn read timeout
    0x0020: _TRANSIENT,  # some vnode/qnode/mnode(s) out of service
    0x0903: _TRANSIENT,  # Sync timeout
    0x090C: _TRANSIENT,  # Sync leader is unreachable
    0x0914: _TRANSIENT,  # Sync leader is restoring
    0x0916: _TRANSIENT,  # Sync buffer is full
    0x0917: _TRANSIENT,  # Sync write stall
    0x0125: _TRANSIENT,  # Retry needed
    0x0130: _TRANSIENT,  # Database is starting up
    0x0131: _TRANSIENT,  # Database is closing down
    0x03D3: _TRANSIENT,  # Conflict transaction not completed
    0x0386: _TRANSIENT,  # Database in dropping status
    0x0396: _TRANSIENT,  # Database in creating status
    # Table missing. Our INSERTs always carry USING, so this is never about a message:
    # either a metadata race under heavy auto-create (reported in issue threads) or a
    # super table dropped under us. Retrying is right for the first; for the second the
    # worker keeps backing off until an operator restores the table (init-db).
    0x2603: _TRANSIENT,  # Table does not exist
    0x2662: _TRANSIENT,  # Fail to get table info (internal metadata error)
    0x0362: _TRANSIENT,  # Table does not exist (mnode)
    0x0218: _TRANSIENT,  # Table does not exist (client)
}
"""Our classification of TDengine codes (masked to 16 bits).

Unknown codes are transient: stalling a partition is visible and loses nothing,
while calling an unknown code "permanent" could divert valid rows.
"""

_KIND_CLASS: Final[Mapping[ErrorKind, type[StoreError]]] = {
    "transient": TransientStoreError,
    "permanent": PermanentStoreError,
    "fatal": FatalStoreError,
}

# HTTP statuses that say our request (not the server's state) is wrong.
_FATAL_HTTP: Final = frozenset({400, 401, 403, 404, 405, 411, 413, 414, 415, 431})


def error_kind(code: int | None, http_status: int | None = None) -> ErrorKind:
    """Return the kind of failure for a TDengine ``code`` and an HTTP status.

    Rules, first match wins:

    1. HTTP 401 or 403 → fatal (credentials, IP whitelist, reject-regex).
    2. A known TDengine code → its class in :data:`CODE_CLASSES`, whatever the
       status (with ``httpCodeServerError=true`` taosAdapter sends 400/500 with
       the real code).
    3. An HTTP status: 408, 429 and 5xx → transient; other 4xx → fatal.
    4. Anything else (no answer at all, an unknown code) → transient.
    """
    if http_status in (401, 403):
        return "fatal"
    if code is not None:
        masked = code & 0xFFFF
        if masked != GENERIC_ADAPTER_CODE:
            known = CODE_CLASSES.get(masked)
            if known is not None:
                return known
    if http_status is not None and http_status != 200:
        if http_status in (408, 429) or http_status >= 500:
            return "transient"
        if http_status in _FATAL_HTTP or 400 <= http_status < 500:
            return "fatal"
    return "transient"


def is_auth_failure(code: int | None, http_status: int | None = None) -> bool:
    """True when the server refused the credentials (HTTP 401 or an :data:`AUTH_CODES` code)."""
    return http_status == 401 or (code is not None and (code & 0xFFFF) in AUTH_CODES)


def classify(code: int | None, http_status: int | None = None) -> type[StoreError]:
    """Return the error class for ``code`` and an HTTP status (see :func:`error_kind`)."""
    return _KIND_CLASS[error_kind(code, http_status)]


def make_store_error(desc: str, code: int | None, http_status: int | None = None) -> StoreError:
    """Build the classified error for a failed request.

    The code is masked to 16 bits (native codes look like ``0x80002603``).
    """
    masked = None if code is None else code & 0xFFFF
    cls = classify(masked, http_status)
    return cls(desc, code=masked, http_status=http_status)
