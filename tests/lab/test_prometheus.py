"""The lab's Prometheus: history generated as counters that carry each segment's traffic, error share and p95,
backfilled into a real Prometheus that answers for the past and for now."""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request

import pytest

from irkit.lab.prometheus import (
    BUCKETS,
    Counters,
    MetricNames,
    PrometheusLab,
    Segment,
    ServiceHistory,
    exposition,
    openmetrics,
)
from tests.conftest import SPIKE_START


def test_counters_carry_the_error_share_and_the_p95_they_were_given():
    counters = Counters()
    counters.add(1000, 0.12, 1.0)
    assert (counters.err500 + counters.err503) / counters.buckets[-1] == pytest.approx(0.12)
    assert counters.buckets[BUCKETS.index(1.0)] / counters.buckets[-1] == pytest.approx(0.95)  # 95 % below p95
    assert counters.buckets == sorted(counters.buckets)  # a histogram's buckets are cumulative


def _values(text: str, series: str) -> list[tuple[float, float]]:
    """(timestamp, value) of one series, in order, from OpenMetrics text."""
    return [(float(t), float(v)) for name, v, t in (line.rsplit(" ", 2) for line in text.splitlines()
                                                    if not line.startswith("#")) if name == series]


def test_the_history_is_counters_that_only_grow_between_its_start_and_end():
    history = ServiceHistory("backend", (Segment(-600, -300, 10, 0.01, 0.2), Segment(-300, 0, 10, 0.5, 2.0)))
    text = openmetrics([history], now=1_000_000.0, start=-900, end=0, step=15)
    assert text.endswith("# EOF\n")
    ok = _values(text, 'http_requests_total{service="backend",status="200"}')
    # No series before the first segment (at -600 s): the service did not exist yet.
    assert [t for t, _ in ok] == [1_000_000.0 - 600 + 15 * i for i in range(41)]
    values = [v for _, v in ok]
    assert values == sorted(values)  # rate() reads a reset where a counter falls
    assert values[0] > 0  # its first sample already counts its first step's requests
    errors = [v for _, v in _values(text, 'http_requests_total{service="backend",status="500"}')]
    # the second segment's 500s after its first sample (at -300 s), up to its end (0, not included)
    assert errors[-1] - errors[20] == pytest.approx(19 * 15 * 10 * 0.5 * 0.7)


def test_a_hostile_service_name_stays_one_label_value_in_both_formats():
    name = 'shop"} 1\nevil{x="'
    counters = Counters()
    counters.add(10, 0.1, 0.2)
    for text in (exposition({name: counters}),
                 openmetrics([ServiceHistory(name, (Segment(-60, 0, 1, 0.1, 0.2),))], 0.0, start=-30, end=0)):
        assert "\nevil" not in text
        assert 'service="shop\\"} 1\\nevil{x=\\""' in text


def _query(lab: PrometheusLab, promql: str, at: float) -> float:
    url = f"{lab.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql, "time": at})
    with urllib.request.urlopen(url, timeout=10) as resp:
        [result] = json.loads(resp.read())["data"]["result"]
    return float(result["value"][1])


def test_the_backfilled_prometheus_answers_for_before_the_spike_and_for_now(prom_lab: PrometheusLab):
    share = ('sum(rate(http_requests_total{service="backend",status=~"5.."}[5m])) '
             '/ sum(rate(http_requests_total{service="backend"}[5m]))')
    assert _query(prom_lab, share, prom_lab.now + SPIKE_START - 3600) == pytest.approx(0.01, rel=1e-3)
    assert _query(prom_lab, share, prom_lab.now) == pytest.approx(0.12, rel=1e-3)
    p95 = 'histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{service="backend"}[5m])))'
    assert 0.5 < _query(prom_lab, p95, prom_lab.now) <= 1.0  # 0.6 s, within its buckets
    with urllib.request.urlopen(f"{prom_lab.url}/api/v1/label/service/values", timeout=10) as resp:
        assert json.loads(resp.read())["data"] == ["backend", "frontend", "search"]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", prom_lab.url)


@pytest.mark.parametrize("names", [
    MetricNames("nginx_ingress_controller_requests", "nginx_ingress_controller_request_duration_seconds", "status",
                "ingress"),  # a counter without _total: untyped in OpenMetrics
    MetricNames("http_server_requests_seconds_count", "http_server_requests_seconds", "status", "application"),
    MetricNames("http_responses_total", "http_response_seconds", "code", "job", status_format="class"),
    MetricNames("envoy_cluster_upstream_rq_xx", "envoy_cluster_upstream_rq_time", "envoy_response_code_class",
                "envoy_cluster_name", status_format="digit", latency_unit="ms"),  # Envoy's own, in milliseconds
], ids=["nginx-ingress", "micrometer", "status-classes", "envoy"])
def test_the_lab_exports_what_the_team_calls_its_series_and_irkits_queries_read_them(names: MetricNames):
    from irkit import config as irconfig
    from irkit.sources import prom
    history = [ServiceHistory("orders-api", (Segment(-1800, 1, 20, 0.12, 1.5),))]
    with PrometheusLab(history, history_start=-1800, ahead=300, names=names) as lab:
        cfg = irconfig.load(env={}, prom_url=lab.url, prom_requests_metric=names.requests,
                            prom_latency_metric=names.latency, prom_status_label=names.status,
                            prom_service_label=names.service, prom_latency_unit=names.latency_unit,
                            prom_error_status="5" if names.status_format == "digit" else "5..")
        client = prom.connect(cfg)
        ratio = prom.error_ratio(client, by_service=True)
        p95 = prom.latency_quantile(client, 0.95, by_service=True)
    assert ratio.iloc[0][names.service] == "orders-api" and ratio.iloc[0]["value"] == pytest.approx(0.12, rel=0.02)
    assert 1.0 < p95.iloc[0]["value"] <= 2.5  # 1.5 s, read off the bucket that holds it as histogram_quantile does
    text = openmetrics(history, 0, start=-60, end=0, names=names)
    codes = set(re.findall(rf'{names.status}="(\w+)"', text))
    assert codes == {"class": {"2xx", "5xx"}, "digit": {"2", "5"}}.get(names.status_format, {"200", "500", "503"})
