"""HTTP side of the stand-in: taosAdapter's ``/rest/sql`` API over the engine.

Request handling follows taosAdapter's order: the ``req_id`` check, the Authorization
header (401s), the ``tz``/``row_with_meta`` parameters and the body (400s), then the
credentials (``{"code":855,...}`` with HTTP 200, taosAdapter's default
``httpCodeServerError=false``), then the statement. Success bodies are byte-exact
copies of taosAdapter's; errors are ``{"code":<int>,"desc":"<msg>","timing":<ns>}``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, tzinfo
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Final, Self
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo

import msgspec

from standins.tdengine_double import errors as E
from standins.tdengine_double.engine import DEFAULT_SERVER_VERSION, Engine
from standins.tdengine_double.errors import TDengineError
from standins.tdengine_double.results import ExecResult, QueryResult
from standins.tdengine_double.timefmt import format_timestamp
from standins.tracked_http import TrackedHTTPServer, read_request_body

__all__ = ("TDengineDouble", "encode_result")

logger = logging.getLogger(__name__)

_JSON_TYPE: Final = "application/json; charset=utf-8"
_SQL_ROUTE: Final = re.compile(r"^/rest/sql(?:/([^/]+))?$")
_LOGIN_ROUTE: Final = re.compile(r"^/rest/login/([^/]*)/([^/]*)$")
_HTTP_MESSAGES: Final[dict[int, str]] = {
    E.HTTP_NO_AUTH_INFO: "no auth info input",
    E.HTTP_NO_MSG_INPUT: "request is empty",
    E.HTTP_NO_SQL_INPUT: "no sql input",
    E.HTTP_INVALID_AUTH_TYPE: "invalid type of Authorization",
    E.HTTP_INVALID_BASIC_AUTH: "invalid basic Authorization",
    E.HTTP_INVALID_TAOSD_AUTH: "invalid taosd Authorization",
}
_GO_TRUE: Final = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE: Final = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def _json_string(text: str) -> str:
    """A JSON string escaped like Go's encoding/json (HTML characters as \\u00XX)."""
    out = json.dumps(text, ensure_ascii=False)
    if any(ch in out for ch in "<>&\u2028\u2029"):
        out = (
            out.replace("<", "\\u003c")
            .replace(">", "\\u003e")
            .replace("&", "\\u0026")
            .replace("\u2028", "\\u2028")
            .replace("\u2029", "\\u2029")
        )
    return out


def _json_float(value: float) -> str:
    """Go's shortest float formatting: no trailing ``.0``, no exponent below 1e21."""
    if value != value or value in (float("inf"), float("-inf")):
        return "null"
    text = repr(value)
    if "e" in text or "E" in text:
        if abs(value) < 1e21:
            from decimal import Decimal

            text = format(Decimal(text), "f")
        return text
    return text[:-2] if text.endswith(".0") else text


def _error_body(code: int, desc: str, started_ns: int) -> bytes:
    timing = time.perf_counter_ns() - started_ns
    return f'{{"code":{code},"desc":{_json_string(desc)},"timing":{timing}}}'.encode()


def encode_result(
    result: ExecResult | QueryResult,
    *,
    zone: tzinfo = UTC,
    row_with_meta: bool = False,
    timing_ns: int | None = None,
) -> bytes:
    """The success body taosAdapter writes for ``result``."""
    timing = "" if timing_ns is None else f',"timing":{timing_ns}'
    if isinstance(result, ExecResult):
        n = result.affected_rows
        if row_with_meta:
            return (
                '{"code":0,"column_meta":[["affected_rows","INT",4]],'
                f'"data":[{{"affected_rows":{n}}}],"rows":1{timing}}}'
            ).encode()
        return (
            f'{{"code":0,"column_meta":[["affected_rows","INT",4]],"data":[[{n}]],"rows":1{timing}}}'
        ).encode()
    cols = result.columns
    meta = ",".join(
        f"[{_json_string(c.name)},{_json_string(c.type_name)},{c.length}]" for c in cols
    )
    precision = result.precision
    encoders: list[Callable[[object], str]] = []
    for c in cols:
        if c.kind == "ts":
            encoders.append(
                lambda v: (
                    "null"
                    if v is None
                    else _json_string(format_timestamp(int(str(v)), precision, zone))
                )
            )
        elif c.kind == "bool":
            encoders.append(lambda v: "null" if v is None else ("true" if v else "false"))
        elif c.kind == "float":
            encoders.append(lambda v: "null" if v is None else _json_float(float(str(v))))
        elif c.kind in ("str", "nchar"):
            encoders.append(lambda v: "null" if v is None else _json_string(str(v)))
        else:
            encoders.append(lambda v: "null" if v is None else str(v))
    if not row_with_meta and cols and all(c.kind == "int" for c in cols):
        # Integers (and NULL) only: SQLite gives 64-bit ints, which JSON writes as digits,
        # exactly as the per-value path below would; one C call instead of one per value.
        data = msgspec.json.encode(result.rows).decode()
        return (
            f'{{"code":0,"column_meta":[{meta}],"data":{data},"rows":{len(result.rows)}{timing}}}'
        ).encode()
    parts: list[str] = []
    names = [_json_string(c.name) for c in cols]
    for row in result.rows:
        if row_with_meta:
            fields = ",".join(
                f"{names[i]}:{enc(v)}" for i, (enc, v) in enumerate(zip(encoders, row, strict=True))
            )
            parts.append("{" + fields + "}")
        else:
            parts.append("[" + ",".join(enc(v) for enc, v in zip(encoders, row, strict=True)) + "]")
    body = (
        f'{{"code":0,"column_meta":[{meta}],"data":[{",".join(parts)}],'
        f'"rows":{len(result.rows)}{timing}}}'
    )
    return body.encode()


def _go_quote(text: str) -> str:
    return json.dumps(text)


class _Server(TrackedHTTPServer):
    def __init__(self, address: tuple[str, int], double: TDengineDouble) -> None:
        self.double = double
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # taosAdapter (Go) sets TCP_NODELAY; without it, headers and body in two sends meet
    # Nagle and delayed ACK and every kept-alive response stalls about 40 ms.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("tdengine-double %s " + format, self.address_string(), *args)

    def do_POST(self) -> None:
        self._handle("POST")

    def do_GET(self) -> None:
        self._handle("GET")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_OPTIONS(self) -> None:
        self._handle("OPTIONS")

    # ------------------------------------------------------------- plumbing
    def _send(self, status: int, body: bytes, content_type: str = _JSON_TYPE) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self, method: str) -> None:
        started = time.perf_counter_ns()
        body = read_request_body(self)
        parts = urlsplit(self.path)
        path = parts.path
        query = parse_qs(parts.query, keep_blank_values=True)
        m = _SQL_ROUTE.match(path)
        if m is not None and method == "POST":
            db = unquote(m.group(1)) if m.group(1) else None
            self._sql(db, query, body, started)
            return
        m = _LOGIN_ROUTE.match(path)
        if m is not None and method == "GET":
            self._login(unquote(m.group(1)), unquote(m.group(2)), started)
            return
        self._send(404, b"404 page not found", "text/plain")

    def _fail(self, status: int, code: int, started: int, desc: str | None = None) -> None:
        text = desc if desc is not None else _HTTP_MESSAGES.get(code, "unknown error")
        self._send(status, _error_body(code, text, started))

    # ------------------------------------------------------------- routes
    def _credentials(self, started: int) -> tuple[str, str] | None:
        auth = self.headers.get("Authorization", "")
        if not auth:
            self._fail(401, E.HTTP_NO_AUTH_INFO, started)
            return None
        auth = auth.strip()
        if auth.startswith("Basic") and len(auth) > 6:
            try:
                decoded = base64.b64decode(auth[6:], validate=True).decode()
            except (binascii.Error, UnicodeDecodeError, ValueError):
                self._fail(401, E.HTTP_INVALID_BASIC_AUTH, started)
                return None
            pieces = decoded.split(":")
            if len(pieces) != 2 or not pieces[0] or not pieces[1]:
                self._fail(401, E.HTTP_INVALID_BASIC_AUTH, started)
                return None
            return pieces[0], pieces[1]
        if auth.startswith("Taosd") and len(auth) > 6:
            found = self.server.double.token_user(auth[6:])
            if found is None:
                self._fail(401, E.HTTP_INVALID_TAOSD_AUTH, started)
                return None
            return found
        self._fail(401, E.HTTP_INVALID_AUTH_TYPE, started)
        return None

    def _sql(self, db: str | None, query: dict[str, list[str]], body: bytes, started: int) -> None:
        double = self.server.double
        req_id = query.get("req_id", [""])[0]
        if req_id:
            problem = None
            if not re.fullmatch(r"[+-]?\d+", req_id):
                problem = "invalid syntax"
            elif not -(2**63) <= int(req_id) < 2**63:
                problem = "value out of range"
            if problem is not None:
                desc = (
                    "illegal param, req_id must be numeric strconv.ParseInt: "
                    f"parsing {_go_quote(req_id)}: {problem}"
                )
                self._fail(400, E.HTTP_PARAM_ERROR, started, desc)
                return
        creds = self._credentials(started)
        if creds is None:
            return
        zone: tzinfo = UTC
        zone_name = query.get("conn_tz", query.get("tz", [None]))[0]
        if zone_name:
            try:
                zone = UTC if zone_name == "UTC" else ZoneInfo(zone_name)
            except (ValueError, OSError, KeyError):
                self._fail(400, E.HTTP_PARAM_ERROR, started, f"unknown time zone {zone_name}")
                return
        row_with_meta = False
        rwm = query.get("row_with_meta", [""])[0]
        if rwm:
            if rwm not in _GO_TRUE | _GO_FALSE:
                desc = (
                    "illegal param, row_with_meta must be boolean strconv.ParseBool: "
                    f"parsing {_go_quote(rwm)}: invalid syntax"
                )
                self._fail(400, E.HTTP_PARAM_ERROR, started, desc)
                return
            row_with_meta = rwm in _GO_TRUE
        if not body:
            self._fail(400, E.HTTP_NO_MSG_INPUT, started)
            return
        sql = body.decode(errors="replace").strip()
        if not sql:
            self._fail(400, E.HTTP_NO_SQL_INPUT, started)
            return
        if creds != (double.user, double.password):
            self._send(200, _error_body(E.AUTH_FAILURE, "Authentication failure", started))
            return
        timing = query.get("timing", [""])[0] == "true"
        try:
            result = double.engine.execute(sql, default_db=db)
        except TDengineError as exc:
            self._send(200, _error_body(exc.code, exc.desc, started))
            return
        except Exception as exc:  # a bug in the stand-in: report it, keep serving
            logger.exception("tdengine-double failed on %r", sql[:200])
            self._send(
                200, _error_body(E.HTTP_PARAM_ERROR, f"stand-in internal error: {exc}", started)
            )
            return
        timing_ns = time.perf_counter_ns() - started if timing else None
        self._send(
            200, encode_result(result, zone=zone, row_with_meta=row_with_meta, timing_ns=timing_ns)
        )

    def _login(self, user: str, password: str, started: int) -> None:
        double = self.server.double
        if not user or len(user) > 24 or not password or len(password) > 24:
            self._fail(400, 0x110A, started, "generate taosd token error")
            return
        if (user, password) != (double.user, double.password):
            self._fail(401, 0x0003, started, "Authentication failure")
            return
        token = double.issue_token(user, password)
        self._send(200, f'{{"code":0,"desc":{_json_string(token)}}}'.encode())


class TDengineDouble:
    """An in-process TDengine REST stand-in (taosAdapter ``/rest/sql``) on a free port.

    It is a test double, not TDengine: it accepts a documented SQL subset, stores rows
    in SQLite, answers what it cannot parse with TDengine's syntax error and what it
    does not implement with 0x0100 "not implemented by the TDengine stand-in: ...".
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        user: str = "root",
        password: str = "taosdata",
        server_version: str = DEFAULT_SERVER_VERSION,
        db_file: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.engine = Engine(db_file=db_file, server_version=server_version, clock=clock)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[str, str]] = {}

    @property
    def url(self) -> str:
        """``http://host:port`` of the running stand-in."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        """Bind (port 0 picks a free port) and serve in a background thread."""
        with self._lock:
            if self._server is None:
                self._serve()
        return self

    def _serve(self) -> None:
        server = _Server((self.host, self.port), self)
        self.port = server.server_address[1]
        self._server = server
        self._thread = server.serve_in_background(f"tdengine-double:{self.port}")

    def _shutdown_server(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.stop(thread)

    def stop(self) -> None:
        """Stop serving and close the storage."""
        with self._lock:
            self._shutdown_server()
        self.engine.close()

    def issue_token(self, user: str, password: str) -> str:
        """A ``Taosd`` token for ``/rest/login`` (opaque here, DES-encrypted in taosAdapter)."""
        with self._lock:
            for token, creds in self._tokens.items():
                if creds == (user, password):
                    return token
            token = base64.b64encode(os.urandom(48)).decode()
            self._tokens[token] = (user, password)
            return token

    def token_user(self, token: str) -> tuple[str, str] | None:
        """The credentials a ``Taosd`` token stands for."""
        with self._lock:
            return self._tokens.get(token.strip())

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
