"""HealthServer: /metrics, /healthz, /readyz, 404, quiet logging, bind errors, stop."""

from __future__ import annotations

import http.client
import logging
import socket
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from worker.errors import BalanceSinkError
from worker.ops.http_server import HealthServer, HealthServerError
from worker.ops.metrics import CONTENT_TYPE, Metrics


class Probe:
    """A liveness or readiness callable whose answer the test sets."""

    def __init__(self) -> None:
        self.answer: tuple[bool, str] | Exception = (True, "")
        self.calls = 0

    def __call__(self) -> tuple[bool, str]:
        self.calls += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


class Served:
    def __init__(self) -> None:
        self.metrics = Metrics()
        self.live = Probe()
        self.ready = Probe()
        self.server = HealthServer(
            self.metrics, host="127.0.0.1", port=0, liveness=self.live, readiness=self.ready
        )


@pytest.fixture
def served() -> Iterator[Served]:
    s = Served()
    s.server.start()
    try:
        yield s
    finally:
        s.server.stop()


def get(port: int, path: str) -> tuple[int, http.client.HTTPMessage, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def test_port_zero_binds_an_ephemeral_port_and_url_names_it(served: Served) -> None:
    port = served.server.port
    assert port > 0
    assert served.server.url == f"http://127.0.0.1:{port}"


def test_metrics_are_served_live_with_prometheus_content_type(served: Served) -> None:
    served.metrics.events_written.inc(7)
    status, headers, body = get(served.server.port, "/metrics")
    assert status == 200
    assert headers["Content-Type"] == CONTENT_TYPE
    assert int(headers["Content-Length"]) == len(body)
    values = {
        s.name: s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    assert values["balance_sink_events_written_total"] == 7

    served.metrics.events_written.inc(3)
    _, _, body = get(served.server.port, "/metrics?name[]=ignored")
    assert b"balance_sink_events_written_total 10.0" in body


@pytest.mark.parametrize(("path", "probe"), [("/healthz", "live"), ("/readyz", "ready")])
def test_probe_follows_its_callable(served: Served, path: str, probe: str) -> None:
    mine: Probe = getattr(served, probe)
    other: Probe = served.ready if probe == "live" else served.live
    other.answer = (False, "the other probe must not be consulted")

    assert get(served.server.port, path)[::2] == (200, b"ok\n")
    mine.answer = (False, "no poll for 62.0 s (max.poll.interval.ms is 60000)")
    status, headers, body = get(served.server.port, path)
    assert (status, body) == (503, b"no poll for 62.0 s (max.poll.interval.ms is 60000)\n")
    assert headers["Content-Type"].startswith("text/plain")
    mine.answer = (True, "")
    assert get(served.server.port, path)[0] == 200
    assert mine.calls == 3 and other.calls == 0


def test_probe_failing_without_a_reason_still_says_something(served: Served) -> None:
    served.ready.answer = (False, "")
    assert get(served.server.port, "/readyz")[::2] == (503, b"unavailable\n")


def test_a_raising_check_is_a_503_and_the_server_keeps_serving(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    served.live.answer = RuntimeError("consumer closed")
    status, _, body = get(served.server.port, "/healthz")
    assert status == 503
    assert body == b"liveness check raised RuntimeError: consumer closed\n"
    assert "liveness check raised" in caplog.text and "Traceback" in caplog.text
    assert get(served.server.port, "/readyz")[0] == 200


@pytest.mark.parametrize("path", ["/", "/metricsx", "/healthz/extra", "/ready", "/favicon.ico"])
def test_other_paths_are_404(served: Served, path: str) -> None:
    assert get(served.server.port, path)[0] == 404


def test_requests_are_not_logged_at_info_or_printed(
    served: Served, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level(logging.DEBUG, logger="worker.ops.http_server"):
        get(served.server.port, "/healthz")
        get(served.server.port, "/nope")
    assert caplog.records, "requests are still logged, at DEBUG"
    assert all(r.levelno == logging.DEBUG for r in caplog.records)
    assert capsys.readouterr().err == ""


def test_port_in_use_raises_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = HealthServer(
            Metrics(), host="127.0.0.1", port=port, liveness=Probe(), readiness=Probe()
        )
        with pytest.raises(HealthServerError, match=f"127.0.0.1:{port}") as info:
            server.start()
    assert isinstance(info.value, BalanceSinkError)
    assert "in use" in str(info.value)
    server.stop()  # never started: nothing to do


def test_stop_frees_the_port_for_a_new_server(served: Served) -> None:
    port = served.server.port
    get(served.server.port, "/metrics")
    served.server.stop()
    with pytest.raises(ConnectionRefusedError):
        get(port, "/healthz")

    again = HealthServer(
        Metrics(), host="127.0.0.1", port=port, liveness=Probe(), readiness=Probe()
    )
    with again:
        assert again.port == port
        assert get(port, "/healthz")[0] == 200
    served.server.stop()  # a second stop is harmless


def test_start_twice_is_refused(served: Served) -> None:
    with pytest.raises(RuntimeError, match="already started"):
        served.server.start()
