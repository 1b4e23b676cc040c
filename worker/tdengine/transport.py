"""Transports to TDengine: REST (taosAdapter ``/rest/sql``) and WebSocket (``taosws``).

A :class:`Transport` runs one SQL statement per call and turns every failure into a
classified :class:`~worker.tdengine.errors.StoreError`; it never retries (the writer
does). The password is never logged and is scrubbed from driver messages.

REST uses a pooled keep-alive :class:`requests.Session` that POSTs to
``{url}/rest/sql`` with Basic auth, rather than ``taosrest.RestClient``: that one
opens a new connection per request and drops the TDengine code of any HTTP >= 400
response, which we need to classify errors (401 with code 0x0357, or 400/500 with
the real code when taosAdapter runs with ``httpCodeServerError=true``).
"""

from __future__ import annotations

import base64
import importlib
import logging
import re
import time
from collections.abc import Sequence
from typing import Any, Final, Protocol, runtime_checkable
from urllib.parse import quote, urlsplit

import msgspec
import requests

from worker.tdengine.errors import (
    FatalStoreError,
    StoreError,
    TransientStoreError,
    is_auth_failure,
    make_store_error,
)
from worker.tdengine.options import TDengineOptions

__all__ = (
    "QueryResult",
    "RestTransport",
    "Transport",
    "WebSocketTransport",
    "open_transport",
)

logger = logging.getLogger(__name__)

_JSON_DECODE = msgspec.json.Decoder().decode
_CODE_IN_TEXT: Final = re.compile(r"\[?0x([0-9A-Fa-f]{1,8})\]?")


class QueryResult(msgspec.Struct, frozen=True):
    """Rows of a query, as the server returned them (no type conversion).

    Attributes
    ----------
    columns:
        Column names.
    types:
        TDengine type names (``"BIGINT"``, ``"VARCHAR"``, ...), upper-case.
    rows:
        One sequence of values per row, in column order.
    """

    columns: tuple[str, ...]
    types: tuple[str, ...]
    rows: list[Sequence[Any]]


@runtime_checkable
class Transport(Protocol):
    """Runs one SQL statement per call; failures raise classified ``StoreError``."""

    def execute(self, sql: str) -> int:
        """Run an INSERT or DDL statement and return the affected-row count."""
        ...

    def query(self, sql: str) -> QueryResult:
        """Run a statement that returns rows."""
        ...

    def close(self) -> None:
        """Release connections; the transport may reconnect if used again."""
        ...


def open_transport(options: TDengineOptions) -> Transport:
    """Return the transport for ``options.url``: REST for http/https, WebSocket for ws/wss."""
    if options.scheme in ("ws", "wss"):
        return WebSocketTransport(
            options.url, options.user, options.password, timeout_s=options.request_timeout_s
        )
    return RestTransport(
        options.url, options.user, options.password, timeout_s=options.request_timeout_s
    )


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


def _name_credentials(error: StoreError, user: str, where: str) -> StoreError:
    """Add the user and the URL (never the password) to a refused-credentials error."""
    if not is_auth_failure(error.code, error.http_status):
        return error
    return type(error)(
        f"{error.desc}: TDengine at {where} refused user {user!r} (check tdengine.user and "
        "tdengine.password)",
        code=error.code,
        http_status=error.http_status,
    )


class RestTransport:
    """taosAdapter REST client over one keep-alive ``requests.Session``.

    Parameters
    ----------
    url:
        ``http(s)://host:port`` of taosAdapter.
    user, password:
        Sent as HTTP Basic auth.
    timeout_s:
        Connect and read timeout of each request.
    session:
        A session to use (tests); one is created otherwise.
    """

    def __init__(
        self,
        url: str,
        user: str,
        password: str,
        *,
        timeout_s: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        self._url = url.rstrip("/")
        self._endpoint = self._url + "/rest/sql"
        self._user = user
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self._headers = {
            "Authorization": f"Basic {token}",
            "Content-Type": "text/plain; charset=utf-8",
        }
        self._password = password
        self._timeout = (timeout_s, timeout_s)
        self._session = session if session is not None else requests.Session()

    def __repr__(self) -> str:
        return f"RestTransport(endpoint={self._endpoint!r})"

    def execute(self, sql: str) -> int:
        """POST ``sql`` and return ``affected_rows`` (0 for DDL)."""
        body = self._post(sql)
        meta = body.get("column_meta") or []
        data = body.get("data") or []
        if meta and meta[0] and meta[0][0] == "affected_rows" and data and data[0]:
            first = data[0]
            value = first.get("affected_rows") if isinstance(first, dict) else first[0]
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        return 0

    def query(self, sql: str) -> QueryResult:
        """POST ``sql`` and return its rows."""
        body = self._post(sql)
        meta = body.get("column_meta") or []
        data = body.get("data") or []
        return QueryResult(
            columns=tuple(str(m[0]) for m in meta),
            types=tuple(str(m[1]).upper() for m in meta),
            rows=list(data),
        )

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()

    def _post(self, sql: str) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            response = self._session.post(
                self._endpoint,
                data=sql.encode("utf-8"),
                headers=self._headers,
                timeout=self._timeout,
            )
            content = response.content
        except requests.exceptions.SSLError as exc:
            raise FatalStoreError(f"TLS failure talking to TDengine: {self._clean(exc)}") from None
        except requests.exceptions.Timeout as exc:
            raise TransientStoreError(f"TDengine request timed out: {self._clean(exc)}") from None
        except requests.exceptions.RequestException as exc:
            # Refused, reset, DNS, broken chunked body: the request may or may not have
            # been applied, which is harmless because every row overwrites itself.
            raise TransientStoreError(f"TDengine connection failed: {self._clean(exc)}") from None
        status = response.status_code
        body = self._decode(content)
        if isinstance(body, dict):
            code = body.get("code", 0)
            if status == 200 and code == 0:
                return body
            desc = str(body.get("desc") or body.get("message") or "")
            number = code if isinstance(code, int) and not isinstance(code, bool) else None
            if number == 0:
                number = None
        else:
            # A bare JSON string ("memory exceeds threshold" with 503), or no JSON at all.
            desc = body if isinstance(body, str) else content[:200].decode("utf-8", "replace")
            number = None
        error = make_store_error(
            _scrub(desc or f"HTTP {status}", self._password) or f"HTTP {status}",
            number,
            status,
        )
        error = _name_credentials(error, self._user, self._url)
        logger.debug(
            "tdengine rest error status=%d code=%s kind=%s elapsed_s=%.3f",
            status,
            None if error.code is None else f"0x{error.code:04X}",
            error.kind,
            time.perf_counter() - started,
        )
        raise error

    @staticmethod
    def _decode(content: bytes) -> Any:
        try:
            return _JSON_DECODE(content)
        except msgspec.DecodeError:
            return None

    def _clean(self, exc: BaseException) -> str:
        return _scrub(f"{type(exc).__name__}: {exc}", self._password)


class WebSocketTransport:
    """taosAdapter WebSocket client through ``taosws`` (taos-ws-py), connected lazily.

    taosws errors carry only a message; the TDengine code is read from a ``0x....``
    in it when present (format **UNCONFIRMED**), otherwise the error is transient.
    On any error the connection is dropped and re-opened on the next call.

    Parameters
    ----------
    url:
        ``ws(s)://host:port``.
    user, password:
        Credentials, passed in the DSN (never logged).
    timeout_s:
        Kept for symmetry; taosws exposes no per-request timeout we can set (it uses
        its own defaults), so this bounds nothing yet.
    """

    def __init__(self, url: str, user: str, password: str, *, timeout_s: float = 10.0) -> None:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = parts.port or 6041
        self._dsn = (
            f"{parts.scheme.lower()}://{quote(user, safe='')}:{quote(password, safe='')}"
            f"@{host}:{port}"
        )
        self._where = f"{parts.scheme.lower()}://{host}:{port}"
        self._user = user
        self._password = password
        self._timeout_s = timeout_s
        self._conn: Any = None
        self._module: Any = None

    def __repr__(self) -> str:
        return f"WebSocketTransport(url={self._where!r})"

    def _taosws(self) -> Any:
        if self._module is None:
            try:
                self._module = importlib.import_module("taosws")
            except ImportError as exc:  # pragma: no cover - taos-ws-py is a dependency
                raise FatalStoreError(
                    "ws:// URLs need the taos-ws-py package: pip install taos-ws-py"
                ) from exc
        return self._module

    def _connection(self) -> Any:
        if self._conn is None:
            module = self._taosws()
            try:
                self._conn = module.connect(self._dsn)
            except Exception as exc:
                raise self._error(exc, connecting=True) from None
        return self._conn

    def execute(self, sql: str) -> int:
        """Run ``sql`` and return the affected-row count."""
        conn = self._connection()
        try:
            affected = conn.execute(sql)
        except Exception as exc:
            self._drop()
            raise self._error(exc, connecting=False) from None
        return int(affected or 0)

    def query(self, sql: str) -> QueryResult:
        """Run ``sql`` and return its rows."""
        conn = self._connection()
        try:
            result = conn.query(sql)
            fields = list(result.fields)
            rows = [tuple(row) for row in result]
        except Exception as exc:
            self._drop()
            raise self._error(exc, connecting=False) from None
        return QueryResult(
            columns=tuple(str(_attr(f, "name")) for f in fields),
            types=tuple(str(_attr(f, "type")).upper() for f in fields),
            rows=list(rows),
        )

    def close(self) -> None:
        """Close the connection, if open."""
        self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # closing a broken connection may fail; nothing to do
                logger.debug("tdengine ws close failed url=%s", self._where)

    def _error(self, exc: BaseException, *, connecting: bool) -> StoreError:
        message = _scrub(str(exc), self._password)
        found = _CODE_IN_TEXT.search(message)
        code = int(found.group(1), 16) & 0xFFFF if found else None
        if code is None:
            prefix = "connect" if connecting else "request"
            return TransientStoreError(
                f"TDengine websocket {prefix} failed: {type(exc).__name__}: {message}"
            )
        return _name_credentials(make_store_error(message, code), self._user, self._where)


def _attr(obj: Any, name: str) -> Any:
    value = getattr(obj, name, None)
    return value() if callable(value) else value
