"""The drill's marketplace API: its health follows the real database and Redis, its metrics grow live."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import psycopg
import pytest

from irkit.lab.marketplace import Marketplace
from irkit.lab.postgres import PostgresLab
from irkit.lab.prometheus import Segment
from irkit.lab.redis import RedisLab


def _get(url: str, method: str = "GET") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture(scope="module")
def redis_lab() -> Iterator[RedisLab]:
    with RedisLab() as lab:
        yield lab


@pytest.fixture()
def api(pg_lab: PostgresLab, redis_lab: RedisLab) -> Iterator[Marketplace]:
    traffic = {"backend": Segment(-60, 1, 100, 0.2, 1.0)}
    with Marketplace(pg_lab.dsn, traffic, redis_url=redis_lab.url, order_every=0.2) as app:
        yield app


def test_health_products_and_orders_answer_from_the_database(api: Marketplace):
    status, body = _get(f"{api.url}/api/health")
    assert status == 200 and json.loads(body) == {"status": "ok", "circuit_breaker": "off", "database": "ok",
                                                  "redis": "ok"}
    status, body = _get(f"{api.url}/products?limit=2")
    assert status == 200 and [p["id"] for p in json.loads(body)] == [1, 2]
    status, body = _get(f"{api.url}/orders/health-check")
    assert status == 200 and json.loads(body)["orders_last_hour"] > 0


def test_orders_check_fails_while_the_health_check_order_is_locked(api: Marketplace, pg_lab: PostgresLab):
    with psycopg.connect(pg_lab.dsn) as holder:
        holder.execute("SELECT id FROM orders WHERE id = 1 FOR UPDATE")
        status, body = _get(f"{api.url}/orders/health-check")
        assert status == 503 and "order writes are blocked" in body
        holder.rollback()
    assert _get(f"{api.url}/orders/health-check")[0] == 200


def test_backend_down_answers_503_everywhere(api: Marketplace):
    api.backend_up = False
    for url in api.health_endpoints:
        assert _get(url)[0] == 503, url


def test_redis_down_fails_health_but_products_still_come_from_the_database(pg_lab: PostgresLab):
    with RedisLab() as gone:
        url = gone.url
    with Marketplace(pg_lab.dsn, redis_url=url, order_every=0) as app:
        status, body = _get(f"{app.url}/api/health")
        assert status == 503 and json.loads(body)["redis"].startswith("error")
        assert _get(f"{app.url}/products?limit=1")[0] == 200


def test_metrics_grow_at_the_live_rate_and_orders_keep_arriving(api: Marketplace, pg_lab: PostgresLab):
    def total() -> tuple[float, float]:
        lines = dict(line.rsplit(" ", 1) for line in _get(f"{api.url}/metrics")[1].splitlines()
                     if line and not line.startswith("#"))
        ok = float(lines['http_requests_total{service="backend",status="200"}'])
        errors = sum(float(lines[f'http_requests_total{{service="backend",status="{c}"}}']) for c in (500, 503))
        return ok, errors

    with psycopg.connect(pg_lab.dsn) as conn:
        before = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
    ok0, err0 = total()
    time.sleep(1.0)
    ok1, err1 = total()
    assert (ok1 + err1) - (ok0 + err0) == pytest.approx(100, rel=0.3)  # 100 requests/s
    assert (err1 - err0) / ((ok1 + err1) - (ok0 + err0)) == pytest.approx(0.2, rel=0.01)
    with psycopg.connect(pg_lab.dsn) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] > before


def test_circuit_breaker_switch(api: Marketplace):
    assert _get(f"{api.url}/admin/circuit-breaker/enable", method="POST")[0] == 200
    assert json.loads(_get(f"{api.url}/api/health")[1])["circuit_breaker"] == "enabled"


def test_a_scenarios_own_paths_answer_while_their_workload_has_a_ready_pod(pg_lab: PostgresLab):
    from irkit.lab.marketplace import Endpoint
    ready = {"checkout-api": True, "storefront": True}
    endpoints = (Endpoint("/healthz", "health", "checkout-api"), Endpoint("/api/v2/checkout", "orders", "checkout-api"),
                 Endpoint("/", "ok", "storefront"))
    with Marketplace(pg_lab.dsn, {}, order_every=0, endpoints=endpoints, ready=ready.__getitem__) as app:
        assert app.health_endpoints == (f"{app.url}/healthz", f"{app.url}/api/v2/checkout", f"{app.url}/")
        assert [_get(url)[0] for url in app.health_endpoints] == [200, 200, 200]
        assert _get(f"{app.url}/api/health")[0] == 404  # the marketplace's own paths are not this system's
        ready["checkout-api"] = False  # no ready pod behind the checkout: its routes fail, the storefront answers
        assert [_get(url)[0] for url in app.health_endpoints] == [503, 503, 200]
        assert "checkout-api has no ready pods" in _get(f"{app.url}/healthz")[1]


@pytest.mark.parametrize(("state", "code", "said"), [
    ("up", 200, '"ok"'), ("failing", 502, "upstream answered 503"), ("slow", 504, "timed out after 2000 ms"),
    ("down", 502, "upstream unreachable"),
])
def test_an_external_dependency_fails_the_endpoint_that_calls_it_until_the_breaker_opens(
        pg_lab: PostgresLab, state: str, code: int, said: str):
    from irkit.lab.marketplace import Endpoint, External
    with External(state) as external, Marketplace(pg_lab.dsn, {}, order_every=0, external_url=external.url,
                                                  endpoints=(Endpoint("/pay/quote", "external"),)) as app:
        status, body = _get(f"{app.url}/pay/quote")
        assert status == code and said in body
        app.circuit_breaker = True  # the playbook's degraded mode: stop calling it
        assert _get(f"{app.url}/pay/quote") == (200, json.dumps({"status": "degraded",
                                                                 "external": "circuit breaker open: not called"}))
