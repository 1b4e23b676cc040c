"""Runs every conformance case against the double, or against TDENGINE_URL's server."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.fixtures.tdengine import TDengineEndpoint
from tests.tdengine_conformance.cases import CASES, SCHEMA, TS, TS_TEXT, Case
from tests.tdengine_conformance.conftest import RawClient
from tests.unit.test_tdengine_recorded import corpus

pytestmark = pytest.mark.tdengine

ERROR_BODY = re.compile(r'^\{"code":(\d+),"desc":"((?:[^"\\]|\\.)*)","timing":(\d+)\}$')
JSON_TYPE = "application/json; charset=utf-8"


def render(text: str, db: str, version: tuple[int, ...]) -> str:
    key = "COMPOSITE KEY" if version >= (3, 3, 6, 3) else "PRIMARY KEY"
    return (
        text.replace("{db}", db)
        .replace("{key}", key)
        .replace("{ts_text}", TS_TEXT)
        .replace("{ts}", str(TS))
    )


def run_ok(client: RawClient, sql: str) -> dict[str, Any]:
    raw = client.post(sql)
    got: dict[str, Any] = json.loads(raw.text)
    assert raw.status == 200 and got["code"] == 0, (sql, raw.text)
    return got


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(
    case: Case,
    raw_client: RawClient,
    tdengine_endpoint: TDengineEndpoint,
    tdengine_database: str,
    server_version: tuple[int, ...],
) -> None:
    db = tdengine_database
    for stmt in case.setup:
        run_ok(raw_client, render(stmt, db, server_version))
    if case.url_db and not case.setup:
        run_ok(raw_client, render(SCHEMA[0], db, server_version))
    sql = render(case.sql, db, server_version)
    raw = raw_client.post(sql, db=db if case.url_db else None)
    assert raw.status == 200, raw.text
    assert raw.content_type == JSON_TYPE
    expected_code = case.code(server_version) if callable(case.code) else case.code
    if expected_code == 0:
        if case.body is not None:
            assert raw.text == render(case.body, db, server_version)
        else:
            assert json.loads(raw.text)["code"] == 0, raw.text
    else:
        m = ERROR_BODY.match(raw.text)
        assert m is not None, f"error body shape: {raw.text}"
        got = json.loads(raw.text)
        assert got["code"] == expected_code, raw.text
        if case.desc is not None:
            want = case.desc(server_version, sql) if callable(case.desc) else case.desc
            assert got["desc"] == want
    for query, data in case.checks:
        got = run_ok(raw_client, render(query, db, server_version))
        assert got["data"] == data, query
    if tdengine_endpoint.is_double:  # the double's choices on UNCONFIRMED points
        for query, data in case.double_checks:
            got = run_ok(raw_client, render(query, db, server_version))
            assert got["data"] == data, (query, case.unconfirmed)


RECORDED_VERSION = (3, 3, 6, 6)
RECORDED_TS = 1795996800000000  # the cases' {ts} on the day they were recorded


def _recorded_answers() -> dict[tuple[str, str], dict[str, Any]]:
    answers: dict[tuple[str, str], dict[str, Any]] = {}
    for sequence in corpus():
        for step in sequence["steps"]:
            answers.setdefault((step["path"], step["sql"]), step)
    return answers


def test_every_recorded_case_expects_what_the_real_server_answered() -> None:
    """The cases' codes, texts and bodies for 3.3.6.6 equal the recorded answers."""
    answers = _recorded_answers()
    compared = []
    for case in CASES:
        sql = case.sql.replace("{key}", "COMPOSITE KEY").replace("{ts}", str(RECORDED_TS))
        step = answers.get(("/rest/sql/{db}" if case.url_db else "/rest/sql", sql))
        if step is None:
            continue
        answer = step["answer"]
        code = case.code(RECORDED_VERSION) if callable(case.code) else case.code
        assert (step["status"], answer["code"]) == (200, code), case.id
        if code and case.desc is not None:
            desc = case.desc(RECORDED_VERSION, sql) if callable(case.desc) else case.desc
            assert answer["desc"] == desc, case.id
        if not code and case.body is not None:
            text = case.body.replace("{ts_text}", "2026-11-30T00:00:00.000000Z")
            assert json.loads(text) == answer, case.id
        compared.append(case.id)
    assert len(compared) >= 30, compared  # nearly every case has its recording


def test_statement_of_exactly_one_mebibyte_passes_and_one_byte_more_fails(
    raw_client: RawClient, tdengine_database: str, server_version: tuple[int, ...]
) -> None:
    """1,048,576 bytes is accepted; 1,048,577 fails with 537 "SQL statement too long"."""
    db = tdengine_database
    for stmt in SCHEMA:
        run_ok(raw_client, render(stmt, db, server_version))
    head = f"INSERT INTO {db}.t1 USING {db}.st TAGS (1, 1) VALUES "
    rows = [f"({TS + i}, 1, {i}, true, 'a', 1)" for i in range(20_000)]
    sql = head + " ".join(rows)
    while len(sql.encode()) > 1_048_576 - 40:
        rows.pop()
        sql = head + " ".join(rows)
    last = rows.pop()
    base = head + " ".join(rows)
    padding = 1_048_576 - len(base.encode()) - len(last.encode())
    exact = base + " " * padding + last
    assert len(exact.encode()) == 1_048_576
    got = json.loads(raw_client.post(exact).text)
    assert got["code"] == 0, got
    too_long = base + " " * (padding + 1) + last
    raw = raw_client.post(too_long)
    assert raw.status == 200
    body = json.loads(raw.text)
    assert (body["code"], body["desc"]) == (537, "SQL statement too long")


# ---------------------------------------------------------------- HTTP layer


def _error(raw_text: str) -> tuple[int, str]:
    m = ERROR_BODY.match(raw_text)
    assert m is not None, raw_text
    got = json.loads(raw_text)
    return got["code"], got["desc"]


def test_missing_authorization_is_401_4357(raw_client: RawClient) -> None:
    raw = raw_client.post("SHOW DATABASES", headers={})
    assert raw.status == 401
    assert _error(raw.text) == (0x1105, "no auth info input")


@pytest.mark.parametrize("value", ["Basic !!!notbase64", "Basic cm9vdA==", "Basic OnRhb3NkYXRh"])
def test_malformed_basic_is_401_4388(raw_client: RawClient, value: str) -> None:
    raw = raw_client.post("SHOW DATABASES", headers={"Authorization": value})
    assert raw.status == 401
    assert _error(raw.text) == (0x1124, "invalid basic Authorization")


@pytest.mark.parametrize("value", ["Digest abc", "Basic", "token xyz"])
def test_unknown_scheme_is_401_4386(raw_client: RawClient, value: str) -> None:
    raw = raw_client.post("SHOW DATABASES", headers={"Authorization": value})
    assert raw.status == 401
    assert _error(raw.text) == (0x1122, "invalid type of Authorization")


def test_wrong_password_is_code_855_with_http_200(
    raw_client: RawClient, tdengine_endpoint: TDengineEndpoint
) -> None:
    """HTTP 200, not the REST doc's 401: taosAdapter's default, recorded on 3.3.6.6."""
    raw = raw_client.post("SHOW DATABASES", auth=(tdengine_endpoint.user, "wrong-password"))
    assert raw.status == 200
    assert _error(raw.text) == (855, "Authentication failure")


def test_empty_body_is_400_4358(raw_client: RawClient) -> None:
    raw = raw_client.post("")
    assert raw.status == 400
    assert _error(raw.text) == (0x1106, "request is empty")


def test_whitespace_body_is_400_4359(raw_client: RawClient) -> None:
    raw = raw_client.post(" \n\t ")
    assert raw.status == 400
    assert _error(raw.text) == (0x1107, "no sql input")


def test_unknown_route_is_404(raw_client: RawClient) -> None:
    raw = raw_client.post("SHOW DATABASES", path="/rest/nope")
    assert raw.status == 404


def test_non_numeric_req_id_is_400_65535(raw_client: RawClient) -> None:
    raw = raw_client.post("SHOW DATABASES", params={"req_id": "abc"})
    assert raw.status == 400
    code, desc = _error(raw.text)
    assert code == 65535
    assert desc.startswith("illegal param, req_id must be numeric")


def test_numeric_req_id_is_accepted(raw_client: RawClient) -> None:
    raw = raw_client.post("SELECT SERVER_VERSION()", params={"req_id": "12345"})
    assert raw.status == 200
    assert json.loads(raw.text)["code"] == 0


def test_server_version_shape(raw_client: RawClient) -> None:
    got = json.loads(raw_client.post("SELECT SERVER_VERSION()").text)
    assert got["code"] == 0 and got["rows"] == 1
    assert got["column_meta"][0][:2] == ["server_version()", "VARCHAR"]
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+.*", got["data"][0][0])
