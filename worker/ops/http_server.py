"""The worker's HTTP endpoints: ``/metrics``, ``/healthz`` (liveness), ``/readyz`` (readiness).

Standard library only: a :class:`~http.server.ThreadingHTTPServer` on a daemon thread, so
a slow scrape never blocks the consumer loop and the loop never waits on the server.
Requests are logged at DEBUG, not INFO: probes arrive every few seconds on every replica.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Final, cast
from urllib.parse import urlsplit

from worker.errors import BalanceSinkError
from worker.ops.metrics import CONTENT_TYPE, Metrics

__all__ = ("Check", "HealthServer", "HealthServerError")

logger = logging.getLogger(__name__)

Check = Callable[[], tuple[bool, str]]
"""A probe: ``(True, _)`` when healthy, else ``(False, reason)``."""

_REQUEST_TIMEOUT: Final = 10.0
"""Seconds a client may take to send its request, so stuck clients cannot pin threads."""
_SHUTDOWN_POLL: Final = 0.1
"""Seconds between the serving thread's shutdown checks: how long :meth:`stop` may wait."""


class HealthServerError(BalanceSinkError):
    """The HTTP server cannot listen; the message names ``host:port`` and the cause."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], owner: HealthServer) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.owner = owner
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind also resolves socket.getfqdn(host), a reverse DNS lookup
        # that can stall start-up for seconds; the name is never used here.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: object, client_address: object) -> None:
        # The default prints a traceback to stderr; keep it in the structured log.
        logger.exception("error serving HTTP request from %s", client_address)


class _Handler(BaseHTTPRequestHandler):
    timeout = _REQUEST_TIMEOUT
    server_version = "balance-sink"
    sys_version = ""

    def do_GET(self) -> None:
        owner = cast(_Server, self.server).owner
        path = urlsplit(self.path).path
        if path == "/metrics":
            self._reply(200, owner.metrics.render(), CONTENT_TYPE)
        elif path == "/healthz":
            self._probe(owner.liveness, "liveness")
        elif path == "/readyz":
            self._probe(owner.readiness, "readiness")
        else:
            self._reply(404, b"not found\n")

    def _probe(self, check: Check, name: str) -> None:
        try:
            ok, reason = check()
        except Exception as exc:  # a broken check means unhealthy, not a dead server
            logger.exception("%s check raised", name)
            ok, reason = False, f"{name} check raised {type(exc).__name__}: {exc}"
        if ok:
            self._reply(200, b"ok\n")
        else:
            self._reply(503, f"{reason or 'unavailable'}\n".encode())

    def _reply(
        self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8"
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("%s %s", self.address_string(), format % args)


class HealthServer:
    """Serves metrics and probes for one worker.

    Parameters
    ----------
    metrics : Metrics
        Rendered on ``GET /metrics``.
    host, port : str, int
        Where to listen; port 0 picks a free port (read it back from :attr:`port`).
    liveness, readiness : Check
        Called on every ``GET /healthz`` and ``GET /readyz``: 200 ``ok``, or 503 with
        the reason. They run on server threads, so they must be thread-safe and fast.
    """

    def __init__(
        self,
        metrics: Metrics,
        *,
        host: str,
        port: int,
        liveness: Check,
        readiness: Check,
    ) -> None:
        self.metrics: Final = metrics
        self.liveness: Final = liveness
        self.readiness: Final = readiness
        self._host = host
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port listened on once started (the real one when 0 was asked), else the asked one."""
        return self._server.server_address[1] if self._server else self._port

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:9464``."""
        return f"http://{_host_port(self._host, self.port)}"

    def start(self) -> None:
        """Bind and serve on a daemon thread.

        Raises
        ------
        HealthServerError
            The address cannot be bound (port in use, unknown host, no permission).
        """
        if self._server is not None:
            raise RuntimeError("HealthServer already started")
        try:
            server = _Server((self._host, self._port), self)
        except OSError as exc:
            cause = exc.strerror or str(exc)
            raise HealthServerError(
                f"cannot listen on {_host_port(self._host, self._port)} for metrics and probes:"
                f" {cause}"
            ) from exc
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            args=(_SHUTDOWN_POLL,),
            name="balance-sink-http",
            daemon=True,
        )
        self._thread.start()
        logger.info("serving /metrics, /healthz and /readyz on %s", self.url)

    def stop(self) -> None:
        """Stop serving and release the port; does nothing when not started."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()
        self._server = self._thread = None

    def __enter__(self) -> HealthServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
