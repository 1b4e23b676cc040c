"""Helpers shared by the conformance tests: raw HTTP access and the server's version."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import requests

from tests.fixtures.tdengine import TDengineEndpoint


@dataclass(frozen=True, slots=True)
class Raw:
    """A raw HTTP answer: status, body text and content type."""

    status: int
    text: str
    content_type: str


class RawClient:
    """Posts SQL and keeps the response bytes (byte-exact checks need them)."""

    def __init__(self, endpoint: TDengineEndpoint) -> None:
        self.endpoint = endpoint
        self.session = requests.Session()

    def post(
        self,
        sql: str | bytes,
        *,
        db: str | None = None,
        auth: tuple[str, str] | None = None,
        headers: dict[str, str] | None = None,
        path: str | None = None,
        params: dict[str, str] | None = None,
    ) -> Raw:
        """POST ``sql``; ``auth`` defaults to the endpoint's credentials."""
        url = self.endpoint.url + (path or (f"/rest/sql/{db}" if db else "/rest/sql"))
        body = sql.encode() if isinstance(sql, str) else sql
        if headers is None:
            creds = auth or (self.endpoint.user, self.endpoint.password)
            r = self.session.post(url, data=body, auth=creds, params=params, timeout=120)
        else:
            r = self.session.post(url, data=body, headers=headers, params=params, timeout=120)
        return Raw(r.status_code, r.content.decode(), r.headers.get("Content-Type", ""))


@pytest.fixture(scope="session")
def raw_client(tdengine_endpoint: TDengineEndpoint) -> RawClient:
    """One raw HTTP client for the session."""
    return RawClient(tdengine_endpoint)


@pytest.fixture(scope="session")
def server_version(raw_client: RawClient) -> tuple[int, ...]:
    """The server's version as integers (from ``SELECT SERVER_VERSION()``), read as the
    worker reads it (``3.3.6.6.alpha`` is 3.3.6.6)."""
    import json

    from worker.tdengine.schema import parse_server_version

    got = json.loads(raw_client.post("SELECT SERVER_VERSION()").text)
    return parse_server_version(str(got["data"][0][0])).numbers
