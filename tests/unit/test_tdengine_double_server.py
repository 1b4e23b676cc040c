"""HTTP layer of the TDengine double: taospy interop, tokens, parameters, CLI.

(Fault injection lives in ``standins.fault_proxy``, tested in ``test_fault_proxy.py``.)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests
import taosrest
from taosrest.errors import ConnectError, HTTPError

from standins.tdengine_double import TDengineDouble

TS = (int(time.time()) - 3600) * 1_000_000


@pytest.fixture
def double() -> Iterator[TDengineDouble]:
    with TDengineDouble() as d:
        yield d


def post(d: TDengineDouble, sql: str, params: dict[str, str] | None = None) -> requests.Response:
    return requests.post(
        f"{d.url}/rest/sql",
        data=sql.encode(),
        auth=("root", "taosdata"),
        params=params,
        timeout=10,
    )


def setup_schema(d: TDengineDouble) -> None:
    for sql in (
        "CREATE DATABASE d PRECISION 'us'",
        "CREATE STABLE d.st (ts TIMESTAMP, event_id BIGINT COMPOSITE KEY, amt BIGINT) "
        "TAGS (user_id BIGINT)",
    ):
        assert post(d, sql).json()["code"] == 0


def test_taospy_restclient_interop(double: TDengineDouble) -> None:
    client = taosrest.RestClient(double.url, user="root", password="taosdata")
    got = client.sql("SELECT SERVER_VERSION()")
    assert got["data"] == [["3.3.6.6"]]  # the recorded server's version is the default
    with pytest.raises(ConnectError) as info:
        client.sql("SELEC 1")
    assert info.value.errno == 0x2600
    bad = taosrest.RestClient(double.url, user="root", password="nope")
    with pytest.raises(ConnectError) as auth:
        bad.sql("SHOW DATABASES")
    assert auth.value.errno == 855


def test_taospy_connection_converts_timestamps(double: TDengineDouble) -> None:
    setup_schema(double)
    conn = taosrest.connect(url=double.url, user="root", password="taosdata")
    assert conn.execute(f"INSERT INTO d.t USING d.st TAGS (1) VALUES ({TS}, 1, 5)") == 1
    result = conn.query("SELECT ts, amt FROM d.t")
    assert result.rows == 1
    assert result.data[0][1] == 5
    assert result.data[0][0].timestamp() == TS / 1_000_000
    conn.close()


def test_taosrest_http_error_on_401(double: TDengineDouble) -> None:
    r = requests.post(f"{double.url}/rest/sql", data=b"SHOW DATABASES", timeout=5)
    assert r.status_code == 401
    with pytest.raises(HTTPError):
        taosrest.RestClient(double.url, token="x").sql("SHOW DATABASES")


def test_taosd_token_login(double: TDengineDouble) -> None:
    login = requests.get(f"{double.url}/rest/login/root/taosdata", timeout=5).json()
    assert login["code"] == 0
    headers = {"Authorization": f"Taosd {login['desc']}"}
    r = requests.post(f"{double.url}/rest/sql", data=b"SHOW DATABASES", headers=headers, timeout=5)
    assert r.json()["code"] == 0
    bad = {"Authorization": "Taosd bm90LWEtdG9rZW4="}
    r = requests.post(f"{double.url}/rest/sql", data=b"SHOW DATABASES", headers=bad, timeout=5)
    assert r.status_code == 401 and r.json()["code"] == 0x1125
    assert requests.get(f"{double.url}/rest/login/root/wrong", timeout=5).status_code == 401


def test_timing_row_with_meta_and_tz(double: TDengineDouble) -> None:
    setup_schema(double)
    post(double, f"INSERT INTO d.t USING d.st TAGS (1) VALUES ({TS}, 1, 5)")
    r = post(double, "SELECT amt FROM d.t", params={"timing": "true"})
    assert r.text.startswith(
        '{"code":0,"column_meta":[["amt","BIGINT",8]],"data":[[5]],"rows":1,"timing":'
    )
    r = post(double, "SELECT amt FROM d.t", params={"row_with_meta": "true"})
    assert r.json()["data"] == [{"amt": 5}]
    r = post(double, f"INSERT INTO d.t VALUES ({TS}, 2, 5)", params={"row_with_meta": "1"})
    assert r.text == (
        '{"code":0,"column_meta":[["affected_rows","INT",4]],"data":[{"affected_rows":1}],"rows":1}'
    )
    assert post(double, "SHOW DATABASES", params={"row_with_meta": "maybe"}).status_code == 400
    r = post(double, "SELECT ts FROM d.t WHERE event_id = 1", params={"tz": "Asia/Shanghai"})
    assert r.json()["data"][0][0].endswith("+08:00")
    assert post(double, "SHOW DATABASES", params={"tz": "Nowhere/Land"}).status_code == 400


def test_error_body_escapes_like_go(double: TDengineDouble) -> None:
    r = post(double, "SELECT <x> FROM d.st")
    assert r.status_code == 200
    assert "\\u003cx\\u003e" in r.text
    assert json.loads(r.text)["desc"] == 'syntax error near "<x> from d.st"'


def test_cli_prints_a_stand_in_banner_and_serves() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "standins.tdengine_double",
            "--port",
            "0",
            "--server-version",
            "3.3.2.0",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(7)]
        text = "".join(lines)
        assert "stand-in" in text and "NOT TDengine" in text
        url = next(line.split()[2] for line in lines if "listening on" in line)
        r = requests.post(
            f"{url}/rest/sql", data=b"SELECT SERVER_VERSION()", auth=("root", "taosdata"), timeout=5
        )
        assert r.json()["data"] == [["3.3.2.0"]]
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        if proc.stdout is not None:
            proc.stdout.close()


def test_integer_only_results_encode_like_the_per_value_path() -> None:
    from standins.tdengine_double.catalog import make_type
    from standins.tdengine_double.results import QueryResult, ResultColumn
    from standins.tdengine_double.server import encode_result

    ints = [ResultColumn.of("a", make_type("BIGINT")), ResultColumn.of("b", make_type("INT"))]
    rows: list[tuple[object, ...]] = [(1, None), (-(2**63), 7), (2**63 - 1, 0)]
    fast = encode_result(QueryResult(ints, rows), timing_ns=5)
    # The same values next to a VARCHAR column take the per-value path.
    mixed = [*ints, ResultColumn.of("s", make_type("VARCHAR", 4))]
    slow = encode_result(QueryResult(mixed, [(*r, "x") for r in rows]), timing_ns=5)
    assert fast == (
        b'{"code":0,"column_meta":[["a","BIGINT",8],["b","INT",4]],'
        b'"data":[[1,null],[-9223372036854775808,7],[9223372036854775807,0]],"rows":3,"timing":5}'
    )
    assert slow.replace(b',"x"]', b"]").replace(b',["s","VARCHAR",4]', b"") == fast


def post_chunked_version_query(url: str) -> requests.Response:
    """``SELECT SERVER_VERSION()`` to ``url`` as a generator body, which requests sends
    chunked (Transfer-Encoding), as Go clients may."""

    def chunks() -> Iterator[bytes]:
        yield b"SELECT SERVER"
        yield b"_VERSION()"

    answer = requests.post(f"{url}/rest/sql", data=chunks(),
                           auth=("root", "taosdata"), timeout=10)  # fmt: skip
    assert answer.request.headers.get("Transfer-Encoding") == "chunked"
    return answer


def test_a_chunked_request_body_is_read_whole(double: TDengineDouble) -> None:
    assert post_chunked_version_query(double.url).json()["data"] == [["3.3.6.6"]]
