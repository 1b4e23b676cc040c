"""A threaded HTTP server that knows its open connections and can cut them.

The TDengine stand-in and the fault proxy both serve kept-alive clients; stopping
either, or refusing connections, must cut the connections already open, or a client
would keep talking to a server that is meant to be gone.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ("TrackedHTTPServer", "read_request_body")


class TrackedHTTPServer(ThreadingHTTPServer):
    """Serves each connection on a daemon thread and tracks it until it closes."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self._active: set[socket.socket] = set()
        self._active_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        with self._active_lock:
            self._active.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        with self._active_lock:
            self._active.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Cut every open client connection."""
        with self._active_lock:
            active = list(self._active)
        for sock in active:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def serve_in_background(self, name: str) -> threading.Thread:
        """Serve on a started daemon thread called ``name`` (stop it with :meth:`stop`)."""
        thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
        )
        thread.start()
        return thread

    def stop(self, thread: threading.Thread | None) -> None:
        """Stop serving (``thread`` runs :meth:`serve_forever`), close, cut connections."""
        self.shutdown()
        self.server_close()
        self.drop_connections()
        if thread is not None:
            thread.join(timeout=5)


def read_request_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The body of ``handler``'s request: chunked (as Go's and some Python clients send
    it), or ``Content-Length`` bytes, or none."""
    rfile, headers = handler.rfile, handler.headers
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        chunks: list[bytes] = []
        while True:
            size = int(rfile.readline().strip().split(b";")[0] or b"0", 16)
            if size == 0:
                rfile.readline()
                return b"".join(chunks)
            chunks.append(rfile.read(size))
            rfile.readline()
    length = int(headers.get("Content-Length") or 0)
    return rfile.read(length) if length > 0 else b""
