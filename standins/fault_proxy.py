"""A fault-injecting HTTP proxy in front of any TDengine REST URL (test support, not TDengine).

:class:`FaultProxy` listens on loopback in a background thread and forwards every request
to an upstream ``/rest/sql`` endpoint: the in-repo stand-in or a real taosAdapter. On
demand it breaks the path the way networks and servers break:

- :meth:`~FaultProxy.refuse_connections`: close the listening port (clients get
  "connection refused") and cut open connections; reopen on the same port;
- :meth:`~FaultProxy.hang`: read requests and never answer, until switched off;
- :meth:`~FaultProxy.fail_next`: answer the next requests with HTTP 503 (taosAdapter's
  bare ``"memory exceeds threshold"`` body) or another status, without forwarding;
- :meth:`~FaultProxy.close_mid_answer`: forward the next requests (the server runs
  them), then send only half of the answer and close the connection;
- :meth:`~FaultProxy.error_for_subtable`: answer any statement that names a subtable
  with a TDengine error, as a real server does (HTTP 200, ``{"code","desc","timing"}``),
  without forwarding it: nothing of that statement is stored.

The same faults so run against the stand-in and against a real server.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import re
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Final, Self
from urllib.parse import urlsplit

from standins.tracked_http import TrackedHTTPServer, read_request_body

__all__ = ("MEMORY_EXCEEDS_BODY", "FaultProxy")

logger = logging.getLogger(__name__)

MEMORY_EXCEEDS_BODY: Final = '"memory exceeds threshold"'
"""taosAdapter's 503 body when it pauses for memory: a bare JSON string."""

_JSON_TYPE: Final = "application/json; charset=utf-8"
_HOP_BY_HOP: Final = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host"}
)


class FaultProxy:
    """Forwards HTTP to ``upstream`` and injects faults when asked; all are off at first.

    Parameters
    ----------
    upstream:
        ``http(s)://host:port`` of taosAdapter (or the stand-in), without credentials:
        requests carry their own ``Authorization`` header, which is forwarded as is.
    host, port:
        Where to listen; port 0 picks a free port (kept when connections are refused
        and accepted again).
    upstream_timeout_s:
        Connect and read timeout towards the upstream.

    ``counts`` tells what happened to requests that reached the proxy: ``forwarded``,
    ``hung``, ``failed`` (:meth:`fail_next`), ``cut`` and ``subtable_error``.
    """

    def __init__(
        self,
        upstream: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        upstream_timeout_s: float = 120.0,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"upstream must be http(s)://host[:port], got {upstream!r}")
        if parts.username or parts.password:
            raise ValueError("upstream must not carry credentials")
        self.upstream = upstream.rstrip("/")
        self._upstream_parts = (parts.scheme, parts.hostname, parts.port)
        self.host = host
        self.port = port
        self.upstream_timeout_s = upstream_timeout_s
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._refusing = False
        self._fail_count = 0
        self._fail_status = 503
        self._fail_body: str | None = None
        self._cut_count = 0
        self._subtable_errors: dict[str, tuple[re.Pattern[str], int, str]] = {}
        self._released = threading.Event()
        self._released.set()
        self._stopped = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------- life cycle
    @property
    def url(self) -> str:
        """``http://host:port`` of the proxy: give this to the client under test."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        """Listen and serve in a background thread."""
        with self._lock:
            self._stopped.clear()
            if self._server is None:
                self._serve()
        return self

    def stop(self) -> None:
        """Release hung requests, stop listening and cut every connection."""
        self._stopped.set()
        self._released.set()
        with self._lock:
            self._shutdown_server()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --------------------------------------------------------------- faults
    def refuse_connections(self, on: bool) -> None:
        """Close the port and cut open connections (``True``), or listen again (``False``)."""
        with self._lock:
            if on == self._refusing:
                return
            self._refusing = on
            if on:
                self._shutdown_server()
            elif not self._stopped.is_set():
                self._serve()

    def hang(self, on: bool) -> None:
        """Read requests and never answer them (``True``); ``False`` closes the hung ones."""
        if on:
            self._released.clear()
        else:
            self._released.set()

    def fail_next(self, n: int, status: int = 503, body: str | None = None) -> None:
        """Answer the next ``n`` requests with ``status`` and ``body``, without forwarding.

        The default body for 503 is taosAdapter's ``"memory exceeds threshold"``; for
        any other status it is ``{"code":65535,"desc":"injected fault"}``.
        """
        if n < 0:
            raise ValueError("n must be >= 0")
        with self._lock:
            self._fail_count, self._fail_status, self._fail_body = n, status, body

    def close_mid_answer(self, n: int) -> None:
        """Forward the next ``n`` requests, then send half of each answer and close."""
        if n < 0:
            raise ValueError("n must be >= 0")
        with self._lock:
            self._cut_count = n

    def error_for_subtable(self, name: str, code: int, desc: str) -> None:
        """Answer any statement naming subtable ``name`` with TDengine error ``code``/``desc``."""
        pattern = re.compile(rf"(?<![\w]){re.escape(name)}(?![\w])", re.IGNORECASE)
        with self._lock:
            self._subtable_errors[name] = (pattern, code & 0xFFFF, desc)

    def clear(self) -> None:
        """Switch every fault off (and listen again if connections were refused)."""
        with self._lock:
            self._fail_count = 0
            self._fail_body = None
            self._cut_count = 0
            self._subtable_errors.clear()
        self._released.set()
        self.refuse_connections(False)

    # --------------------------------------------------------- request side
    def _count(self, kind: str) -> None:
        with self._lock:
            self.counts[kind] += 1

    def _take_failure(self) -> tuple[int, bytes] | None:
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

    def _subtable_error(self, sql: str) -> tuple[int, str] | None:
        with self._lock:
            errors = list(self._subtable_errors.values())
        for pattern, code, desc in errors:
            if pattern.search(sql):
                return code, desc
        return None

    def _take_cut(self) -> bool:
        with self._lock:
            if self._cut_count <= 0:
                return False
            self._cut_count -= 1
            return True

    def _wait_while_hung(self) -> bool:
        """Block while hanging; ``True`` when the request was hung (then it is dropped)."""
        if self._released.is_set():
            return False
        self._count("hung")
        self._released.wait()
        return True

    def _upstream(self) -> http.client.HTTPConnection:
        scheme, hostname, port = self._upstream_parts
        if scheme == "https":
            return http.client.HTTPSConnection(hostname, port, timeout=self.upstream_timeout_s)
        return http.client.HTTPConnection(hostname, port, timeout=self.upstream_timeout_s)

    # --------------------------------------------------------------- server
    def _serve(self) -> None:
        server = _Server((self.host, self.port), self)
        self.port = server.server_address[1]
        self._server = server
        self._thread = server.serve_in_background(f"fault-proxy:{self.port}")

    def _shutdown_server(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.stop(thread)


class _Server(TrackedHTTPServer):
    def __init__(self, address: tuple[str, int], proxy: FaultProxy) -> None:
        self.proxy = proxy
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("fault-proxy %s " + format, self.address_string(), *args)

    def do_POST(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = _JSON_TYPE,
        encoding: str | None = None,
        *,
        cut: bool = False,
    ) -> None:
        """Answer; with ``cut``, send only half of the body (the headers announce it all)."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if encoding:
            self.send_header("Content-Encoding", encoding)  # taosAdapter gzips when asked
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if cut else body)

    def _drop(self) -> None:
        """End this connection without (the rest of) an answer."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)

    def _handle(self) -> None:
        started = time.perf_counter_ns()
        proxy = self.server.proxy
        body = read_request_body(self)
        if proxy._wait_while_hung():
            self._drop()
            return
        failure = proxy._take_failure()
        if failure is not None:
            proxy._count("failed")
            self._send(*failure)
            return
        error = proxy._subtable_error(body.decode("utf-8", "replace"))
        if error is not None:
            proxy._count("subtable_error")
            code, desc = error
            timing = time.perf_counter_ns() - started
            text = f'{{"code":{code},"desc":{json.dumps(desc)},"timing":{timing}}}'
            self._send(200, text.encode())
            return
        try:
            status, content_type, encoding, answer = self._forward(body)
        except (OSError, http.client.HTTPException) as exc:
            logger.debug("fault-proxy upstream %s failed: %s", proxy.upstream, exc)
            self._drop()  # the client sees the connection end, as if the server went away
            return
        if proxy._take_cut():
            proxy._count("cut")
            self._send(status, answer, content_type, encoding, cut=True)
            self._drop()
            return
        proxy._count("forwarded")
        self._send(status, answer, content_type, encoding)

    def _forward(self, body: bytes) -> tuple[int, str, str | None, bytes]:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        connection = self.server.proxy._upstream()
        try:
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            content_type = response.getheader("Content-Type") or _JSON_TYPE
            return response.status, content_type, response.getheader("Content-Encoding"), answer
        finally:
            connection.close()
