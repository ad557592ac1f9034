"""Prometheus queries against a real Prometheus with backfilled history."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from irkit.config import Config
from irkit.errors import ConfigError, PrometheusError, PrometheusTimeout, PrometheusUnavailable
from irkit.lab.prometheus import PrometheusLab
from irkit.sources import prom
from tests.conftest import SPIKE_START


@pytest.fixture(scope="module")
def p(cfg: Config) -> Iterator[prom.Prometheus]:
    client = prom.connect(cfg)
    yield client
    client.close()


def test_error_ratio_now_shows_the_backend_spike(p: prom.Prometheus):
    per_service = prom.error_ratio(p, by_service=True).set_index("service")["value"]
    assert per_service["backend"] == pytest.approx(0.12, abs=0.005)
    assert per_service["frontend"] < 0.01
    overall = prom.error_ratio(p)["value"].iloc[0]
    assert 0.05 < overall < 0.12  # diluted by the healthy services


def test_range_query_has_a_utc_index_and_sees_the_onset(p: prom.Prometheus, prom_lab: PrometheusLab):
    window = prom.Window.last(timedelta(hours=1))
    frame = prom.error_ratio(p, window, service="backend")
    assert str(frame.index.tz) == "UTC"
    assert frame.index.is_monotonic_increasing
    # The history is laid relative to the lab's start, not to now: the suite may run for minutes before this.
    onset = datetime.fromtimestamp(prom_lab.now, UTC) + timedelta(seconds=SPIKE_START)
    before = frame[frame.index < onset - timedelta(minutes=1)]["value"]
    after = frame[frame.index > onset + timedelta(minutes=6)]["value"]
    assert before.max() < 0.02 and after.min() > 0.11
    assert 200 <= len(frame) <= 260  # about 240 points whatever the window


def test_latency_quantiles_from_the_histogram(p: prom.Prometheus):
    p95 = prom.latency_quantile(p, 0.95, by_service=True).set_index("service")["value"]
    assert p95["search"] > 5.0  # the slow service
    assert p95["frontend"] < 0.5
    p50 = prom.latency_quantile(p, 0.5, service="search")["value"].iloc[0]
    assert p50 < p95["search"]


def test_request_rate(p: prom.Prometheus):
    rate = prom.request_rate(p, by_service=True).set_index("service")["value"]
    assert rate["backend"] == pytest.approx(40, rel=0.05)


def test_instant_query_at_a_past_time(p: prom.Prometheus):
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    ratio = prom.error_ratio(p, at=an_hour_ago, service="backend")["value"].iloc[0]
    assert ratio == pytest.approx(0.01, abs=0.003)


@pytest.mark.parametrize("hostile", ['backend"} or vector(1) #', 'x\\"}', "backend\n"])
def test_label_values_cannot_change_the_query(p: prom.Prometheus, hostile: str):
    assert prom.error_ratio(p, service=hostile).empty
    query = prom.error_ratio_query(p.config, service=hostile)
    assert query.count('service="') == 2


def test_metric_names_from_config_are_checked(cfg: Config):
    with pytest.raises(ConfigError, match="prom_requests_metric"):
        prom.error_ratio_query(cfg.replace(prom_requests_metric="up or vector(1)"))


def test_metric_names_come_from_config(cfg: Config):
    custom = cfg.replace(prom_requests_metric="api_calls_total", prom_status_label="code", prom_service_label="app")
    query = prom.error_ratio_query(custom, service="shop", by_service=True)
    assert 'api_calls_total{code=~"5..",app="shop"}' in query and "by (app)" in query


def test_envoys_digit_classes_and_a_millisecond_histogram_are_read_as_errors_and_seconds(cfg: Config):
    envoy = cfg.replace(prom_requests_metric="envoy_cluster_upstream_rq_xx", prom_status_label="envoy_response_code_class",
                        prom_error_status="5", prom_latency_metric="envoy_cluster_upstream_rq_time",
                        prom_latency_unit="ms")
    assert 'envoy_response_code_class=~"5"' in prom.error_ratio_query(envoy)
    assert prom.latency_quantile_query(envoy, 0.95).endswith(" / 1000")  # irkit shows seconds
    assert not prom.latency_quantile_query(cfg, 0.95).endswith(" / 1000")
    with pytest.raises(ConfigError, match="prom_latency_unit"):
        cfg.replace(prom_latency_unit="minutes")
    with pytest.raises(ConfigError, match="prom_error_status"):
        cfg.replace(prom_error_status="5(")


def test_a_bad_query_says_what_prometheus_said(p: prom.Prometheus):
    with pytest.raises(PrometheusError, match="parse error"):
        p.instant("sum(")


def test_prometheus_down_is_unavailable(cfg: Config, closed_port: str):
    client = prom.connect(cfg.replace(prom_url=f"http://{closed_port}"))
    with pytest.raises(PrometheusUnavailable, match="IRKIT_PROM_URL"):
        prom.error_ratio(client)


def test_prometheus_hung_times_out_within_the_bound(cfg: Config, black_hole: str):
    client = prom.connect(cfg.replace(prom_url=f"http://{black_hole}", request_timeout=1.0))
    started = time.monotonic()
    with pytest.raises(PrometheusTimeout):
        prom.error_ratio(client)
    assert time.monotonic() - started < 3


class _Garbage(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html><body>Grafana login</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_server_answering_garbage_gives_an_irkit_error(cfg: Config):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Garbage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = prom.connect(cfg.replace(prom_url=f"http://127.0.0.1:{server.server_port}"))
        with pytest.raises(PrometheusError, match="not the Prometheus query API"):
            prom.error_ratio(client)
    finally:
        server.shutdown()


@pytest.mark.timeout(60)  # the regex this replaced took minutes on a mebibyte: the bound turns that into a failure
def test_a_mebibyte_html_error_page_is_read_in_linear_time_and_named_for_what_it_is(cfg: Config):
    from tests.faults import FaultServer, http_response
    page = b"<html><title>" * ((1 << 20) // 13)  # a proxy's 400: no closing tag anywhere
    with FaultServer("respond", response=http_response("400 Bad Request", page, "text/html")) as proxy:
        client = prom.connect(cfg.replace(prom_url=f"http://{proxy.address}"))
        with pytest.raises(PrometheusError, match="HTTP 400 with an HTML page .no title., not the Prometheus API"):
            prom.error_ratio(client)


@pytest.mark.timeout(60)
def test_an_endless_answer_is_refused_at_its_bound_and_a_dripping_one_at_the_deadline(cfg: Config):
    from tests.faults import FaultServer, http_response
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n"
    with FaultServer("flood", response=head) as flood:
        client = prom.connect(cfg.replace(prom_url=f"http://{flood.address}"))
        with pytest.raises(PrometheusError, match="larger than irkit reads"):
            prom.error_ratio(client)
    body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}}).encode()
    with FaultServer("drip", response=http_response("200 OK", body), delay=0.3) as drip:
        client = prom.connect(cfg.replace(prom_url=f"http://{drip.address}", request_timeout=2.0, connect_timeout=1.0))
        started = time.monotonic()
        with pytest.raises(PrometheusTimeout):
            prom.error_ratio(client)
        assert time.monotonic() - started < 6


def test_label_values_are_kept_with_their_secrets_removed(p: prom.Prometheus, prom_lab: PrometheusLab):
    frame = p.instant('label_replace(vector(1), "service", "postgresql://app:hunter2@db/x token=hunter2", "", "")')
    assert frame["service"].tolist() == ["postgresql://app:[redacted: password]@db/x token=[redacted: secret]"]
