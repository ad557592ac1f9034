"""Health endpoints and critical journeys, checked like curl -f against a real local server."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from irkit import config
from irkit.sources import http as health


class _Shop(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 503 if self.path.startswith("/orders") else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def shop() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Shop)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_a_journey_named_by_path_marks_its_endpoint_and_a_url_is_checked_too(shop: str):
    cfg = config.load(env={}, health_endpoints=[f"{shop}/api/health", f"{shop}/orders/health-check"],
                      critical_journeys=["payment=SEV-1=/orders/health-check", f"login=SEV-2={shop}/auth/ping"])
    rows = {r["url"]: r for r in health.check_all(cfg).to_dict("records")}
    assert rows[f"{shop}/orders/health-check"]["journey"] == "payment"
    assert rows[f"{shop}/orders/health-check"]["journey_level"] == 1 and not rows[f"{shop}/orders/health-check"]["ok"]
    assert rows[f"{shop}/auth/ping"]["journey"] == "login" and rows[f"{shop}/auth/ping"]["ok"]
    assert rows[f"{shop}/api/health"]["journey"] == ""


def test_a_refused_endpoint_says_so(shop: str):
    closed = health.check("http://127.0.0.1:9/health", timeout=1.0)
    assert not closed.ok and closed.error == "connection refused"


def test_hung_endpoints_cost_one_timeout_not_one_each(shop: str, black_hole: str):
    """During an outage several endpoints hang: checked at once, the check takes one timeout, not their sum."""
    import time
    hung = [f"http://{black_hole}/health/{i}" for i in range(4)]
    cfg = config.load(env={}, health_endpoints=[*hung, f"{shop}/api/health"], http_timeout=1.0)
    started = time.monotonic()
    rows = health.check_all(cfg).to_dict("records")
    took = time.monotonic() - started
    assert [r["url"] for r in rows] == [*hung, f"{shop}/api/health"]  # in the configured order
    assert [r["error"] for r in rows[:4]] == ["no answer within 1 s"] * 4 and rows[4]["ok"]
    assert took < 3.0  # four 1 s timeouts one after another would be 4 s


@pytest.mark.timeout(60)
def test_an_endpoint_that_drips_its_answer_fails_at_the_total_deadline():
    from tests.faults import FaultServer, http_response
    with FaultServer("drip", response=http_response("200 OK", b"{}" * 100), delay=0.5) as drip:
        result = health.check(f"http://{drip.address}/api/health", timeout=2.0)
    assert not result.ok and result.error == "no answer within 2 s" and result.seconds < 4


@pytest.mark.timeout(60)
def test_an_endless_answer_is_read_up_to_its_bound_and_judged_by_its_status():
    from tests.faults import FaultServer
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"  # no length: the body never ends
    with FaultServer("flood", response=head) as flood:
        result = health.check(f"http://{flood.address}/api/health", timeout=5.0)
        sent = flood.answered
    assert result.ok and result.status == 200
    assert sent < 64 * health.MAX_HEALTH_BODY  # irkit stopped reading; it did not buffer gigabytes
