"""The fault proxy in front of the in-repo stand-in: transparent when idle, each fault real."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from standins.fault_proxy import FaultProxy
from standins.tdengine_double import TDengineDouble
from tests.unit.test_tdengine_double_server import post_chunked_version_query

TS = (int(time.time()) - 3600) * 1_000_000
AUTH = ("root", "taosdata")


@pytest.fixture
def double() -> Iterator[TDengineDouble]:
    with TDengineDouble() as d:
        yield d


@pytest.fixture
def proxy(double: TDengineDouble) -> Iterator[FaultProxy]:
    with FaultProxy(double.url) as p:
        yield p


def post(url: str, sql: str, *, timeout: float = 10) -> requests.Response:
    return requests.post(f"{url}/rest/sql", data=sql.encode(), auth=AUTH, timeout=timeout)


def setup_schema(url: str) -> None:
    for sql in (
        "CREATE DATABASE d PRECISION 'us'",
        "CREATE STABLE d.st (ts TIMESTAMP, event_id BIGINT COMPOSITE KEY, amt BIGINT) "
        "TAGS (user_id BIGINT)",
    ):
        assert post(url, sql).json()["code"] == 0


def count(url: str) -> int:
    return int(post(url, "SELECT COUNT(*) FROM d.st").json()["data"][0][0])


def without_timing(text: str) -> dict[str, object]:
    body: dict[str, object] = json.loads(text)
    body.pop("timing", None)
    return body


def test_idle_proxy_is_transparent(double: TDengineDouble, proxy: FaultProxy) -> None:
    setup_schema(proxy.url)
    for sql in (
        "SELECT SERVER_VERSION()",
        f"INSERT INTO d.t1 USING d.st TAGS (1) VALUES ({TS}, 1, 5)",
        "SELECT COUNT(*) FROM d.st",
        "SELEC 1",
    ):
        via, direct = post(proxy.url, sql), post(double.url, sql)
        assert via.status_code == direct.status_code
        assert via.headers["Content-Type"] == direct.headers["Content-Type"]
        assert without_timing(via.text) == without_timing(direct.text)
    no_auth = requests.post(f"{proxy.url}/rest/sql", data=b"SHOW DATABASES", timeout=10)
    assert (no_auth.status_code, no_auth.json()["code"]) == (401, 0x1105)
    assert proxy.counts["forwarded"] == 2 + 4 + 1


def test_refuse_connections_really_refuses_then_reopens_same_port(proxy: FaultProxy) -> None:
    session = requests.Session()
    url = f"{proxy.url}/rest/sql"
    assert session.post(url, data=b"SHOW DATABASES", auth=AUTH, timeout=10).ok
    port = proxy.port
    proxy.refuse_connections(True)
    with pytest.raises(requests.ConnectionError):
        requests.post(url, data=b"SHOW DATABASES", auth=AUTH, timeout=5)
    with pytest.raises(requests.ConnectionError):  # a kept-alive connection is cut too
        session.post(url, data=b"SHOW DATABASES", auth=AUTH, timeout=5)
    proxy.refuse_connections(False)
    assert proxy.port == port
    assert post(proxy.url, "SHOW DATABASES").ok
    session.close()


def test_fail_next_answers_a_bare_json_string_503_without_forwarding(proxy: FaultProxy) -> None:
    proxy.fail_next(2)
    for _ in range(2):
        r = post(proxy.url, "CREATE DATABASE x")
        assert r.status_code == 503
        assert r.content == b'"memory exceeds threshold"'
        assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    assert post(proxy.url, "CREATE DATABASE x").json()["code"] == 0  # never ran before
    proxy.fail_next(1, status=500)
    r = post(proxy.url, "SHOW DATABASES")
    assert r.status_code == 500 and r.json() == {"code": 65535, "desc": "injected fault"}
    assert proxy.counts["failed"] == 3


def test_hang_never_answers_until_switched_off(proxy: FaultProxy) -> None:
    proxy.hang(True)
    with pytest.raises(requests.ReadTimeout):
        post(proxy.url, "SHOW DATABASES", timeout=0.3)
    proxy.hang(False)
    assert post(proxy.url, "SHOW DATABASES").ok
    assert proxy.counts["hung"] == 1


def test_close_mid_answer_runs_the_statement_and_cuts_the_answer(
    double: TDengineDouble, proxy: FaultProxy
) -> None:
    setup_schema(double.url)
    proxy.close_mid_answer(1)
    with pytest.raises(requests.exceptions.RequestException) as info:
        post(proxy.url, f"INSERT INTO d.t1 USING d.st TAGS (1) VALUES ({TS}, 1, 5)")
    assert not isinstance(info.value, requests.HTTPError)
    assert count(double.url) == 1  # the server ran it; only the answer was lost
    assert proxy.counts["cut"] == 1
    assert post(proxy.url, "SHOW DATABASES").ok


def test_error_for_subtable_answers_like_a_real_server_and_stores_nothing(
    double: TDengineDouble, proxy: FaultProxy
) -> None:
    setup_schema(double.url)
    proxy.error_for_subtable("bad_1", 0x8000060B, "Timestamp data out of range")
    r = post(
        proxy.url,
        f"INSERT INTO `d`.`good` USING `d`.`st` TAGS (1) VALUES ({TS}, 1, 1) "
        f"`d`.`bad_1` USING `d`.`st` TAGS (2) VALUES ({TS}, 1, 1)",
    )
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    body = r.json()
    assert (body["code"], body["desc"]) == (0x060B, "Timestamp data out of range")
    assert set(body) == {"code", "desc", "timing"}
    assert count(double.url) == 0
    # Other subtables, including names that only start the same, pass through.
    ok = post(proxy.url, f"INSERT INTO d.bad_10 USING d.st TAGS (3) VALUES ({TS}, 1, 1)")
    assert ok.json()["code"] == 0
    proxy.clear()
    assert post(proxy.url, f"INSERT INTO d.bad_1 USING d.st TAGS (2) VALUES ({TS}, 1, 1)").ok
    assert count(double.url) == 2


def test_an_unreachable_upstream_ends_the_connection(double: TDengineDouble) -> None:
    with FaultProxy(double.url) as proxy:
        double.stop()
        with pytest.raises(requests.ConnectionError):
            post(proxy.url, "SHOW DATABASES")


def test_stop_releases_hung_requests(double: TDengineDouble) -> None:
    proxy = FaultProxy(double.url).start()
    proxy.hang(True)
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            post(proxy.url, "SHOW DATABASES", timeout=30)
        except requests.RequestException as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 10
    while proxy.counts["hung"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    proxy.stop()
    caller.join(timeout=30)
    assert not caller.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], requests.ConnectionError)


class _GzipUpstream(BaseHTTPRequestHandler):
    """Answers like taosAdapter does when the client accepts gzip."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = gzip.compress(b'{"code":0,"column_meta":[["1","BIGINT",8]],"data":[[1]],"rows":1}')
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_compressed_answer_reaches_the_client_decodable() -> None:
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _GzipUpstream)
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    try:
        with FaultProxy(f"http://127.0.0.1:{upstream.server_address[1]}") as proxy:
            assert post(proxy.url, "SELECT 1").json()["data"] == [[1]]
    finally:
        upstream.shutdown()
        upstream.server_close()


def test_upstream_with_credentials_is_refused() -> None:
    with pytest.raises(ValueError, match="credentials"):
        FaultProxy("http://root:taosdata@127.0.0.1:6041")


def test_a_chunked_request_body_is_forwarded_whole(proxy: FaultProxy) -> None:
    assert post_chunked_version_query(proxy.url).json()["data"] == [["3.3.6.6"]]
