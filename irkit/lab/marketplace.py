"""A small marketplace HTTP service answering the playbook's endpoints, for drills.

It stands in for the Web3 marketplace's API as the playbook's health checks see it:

- ``GET /api/health``: the database answers ``SELECT 1`` (and Redis ``PING`` when
  configured); 503 when the scenario has the backend down.
- ``GET /products?limit=N``: products read through the Redis cache when there is one.
- ``GET /orders/health-check``: the order write path: locks the health-check order
  (id 1) with a 1 s lock timeout and rolls back, so it fails when order writes are
  blocked, and counts the orders of the last hour.
- or the paths a scenario names instead (:class:`Endpoint`), each answered by one of those three or plainly;
  every one answers 503 while the workload serving it has no ready pod.
- ``POST /admin/circuit-breaker/enable`` and ``/disable``: the playbook's degraded mode switch.
- ``GET /metrics``: live request counters and latency histogram per service in the
  Prometheus text format, growing at the scenario's current traffic (or at the
  ``baseline`` once ``recovered()`` is true: the responder removed the cause);
  Prometheus scrapes them after the backfilled history ends.

A thread inserts an order every ``order_every`` seconds, so orders keep arriving.
Every database and Redis call has a timeout of its own.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import redis

from irkit.lab import free_port
from irkit.lab.prometheus import Counters, MetricNames, Segment, exposition

__all__ = ["ENDPOINTS", "SERVES", "Endpoint", "External", "Marketplace"]

# What an endpoint answers from: the database's SELECT 1 (and Redis's PING), the product read path, the order
# write path, nothing but the workload being there (a static page, a journey step the drill does not model), or
# a call to the external dependency (a managed API outside the cluster: :class:`External`).
SERVES = ("health", "products", "orders", "ok", "external")


@dataclass(frozen=True)
class Endpoint:
    """A path the marketplace serves (a query string is the health check's own), what answers it, and the
    workload whose ready pods serve it: none ready, and it answers 503 as an ingress does."""

    path: str
    serves: str = "ok"
    workload: str = "backend-deployment"


ENDPOINTS = (Endpoint("/api/health", "health"), Endpoint("/products?limit=1", "products"),
             Endpoint("/orders/health-check", "orders"))


@dataclass
class Marketplace:
    """The drill's API on 127.0.0.1; ``traffic`` is each service's live traffic right now."""

    dsn: str
    traffic: Mapping[str, Segment] = field(default_factory=dict)
    baseline: Mapping[str, Segment] = field(default_factory=dict)  # traffic once ``recovered()`` says so
    recovered: Callable[[], bool] | None = None
    backend_up: bool = True
    redis_url: str = ""
    order_every: float = 2.0
    port: int = 0
    circuit_breaker: bool = False
    names: MetricNames = field(default_factory=MetricNames)  # what /metrics calls its series
    endpoints: tuple[Endpoint, ...] = ENDPOINTS
    ready: Callable[[str], bool] | None = None  # whether a workload has a ready pod (None: always)
    credentials: Callable[[], str] | None = None  # the DSN the app holds right now (None: ``dsn``)
    external_url: str = ""  # the external dependency an ``external`` endpoint calls

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def health_endpoints(self) -> tuple[str, ...]:
        """The playbook's 4.1 checks against this service: every endpoint it serves."""
        return tuple(f"{self.url}{e.path}" for e in self.endpoints)

    def endpoint(self, path: str) -> Endpoint | None:
        return next((e for e in self.endpoints if urlsplit(e.path).path == path), None)

    def upstream(self, endpoint: Endpoint) -> bool:
        """Whether a ready pod serves the endpoint: the backend is up (or the fix brought it back) and the
        endpoint's workload has a ready pod."""
        return self.serving and (self.ready is None or self.ready(endpoint.workload))

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Marketplace:
        self.port = self.port or free_port()
        self._counters = {service: Counters() for service in self.traffic}
        self._last = time.time()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # RESP2, as most application clients speak it: a missing password is NOAUTH on the first command.
        self._redis = redis.Redis.from_url(self.redis_url, socket_timeout=1, socket_connect_timeout=1, protocol=2) \
            if self.redis_url else None
        handler = type("Handler", (_Handler,), {"app": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        self._threads = [threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                          name="marketplace-http", daemon=True)]
        if self.order_every > 0:
            self._threads.append(threading.Thread(target=self._orders, name="marketplace-orders", daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        if getattr(self, "_server", None) is None:
            return
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(5)
        if self._redis is not None:
            self._redis.close()
        self._server = None  # type: ignore[assignment]

    def __enter__(self) -> Marketplace:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ------------------------------------------------------------------ behaviour

    def _connect(self, autocommit: bool = True) -> psycopg.Connection[Any]:
        dsn = self.credentials() if self.credentials is not None else self.dsn
        return psycopg.connect(dsn, autocommit=autocommit, application_name="backend", connect_timeout=2,
                               options="-c statement_timeout=2000")

    def _orders(self) -> None:
        while not self._stop.wait(self.order_every):
            try:
                with self._connect() as conn:
                    conn.execute("""INSERT INTO orders (user_id, product_id, status, amount_eth)
                                    SELECT (SELECT min(id) FROM users), (SELECT min(id) FROM products),
                                           'pending', 0.05""")
            except psycopg.Error:
                continue  # the database is the thing under test; keep trying

    @property
    def serving(self) -> bool:
        """The backend answers: it was up, or the responder's fix brought it back."""
        return self.backend_up or (self.recovered is not None and self.recovered())

    def metrics(self) -> str:
        with self._lock:
            now = time.time()
            elapsed, self._last = now - self._last, now
            traffic = self.baseline if self.recovered is not None and self.recovered() else self.traffic
            for service, segment in traffic.items():
                self._counters[service].add(segment.rps * elapsed, segment.error_ratio, segment.p95_seconds)
            return exposition(self._counters, self.names)

    def health(self) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {"status": "ok", "circuit_breaker": "enabled" if self.circuit_breaker else "off"}
        try:
            with self._connect() as conn:
                conn.execute("SELECT 1")
            body["database"] = "ok"
        except psycopg.Error as exc:
            body.update(status="failing", database=f"error: {str(exc).strip()[:200]}")
        if self._redis is not None:
            try:
                self._redis.ping()
                self._redis.set("marketplace:health", "1", ex=30)  # the cache takes writes too (maxmemory)
                body["redis"] = "ok"
            except redis.RedisError as exc:
                body.update(status="failing", redis=f"error: {exc}")
        return (200 if body["status"] == "ok" else 503), body

    def products(self, limit: int) -> tuple[int, Any]:
        key = f"products:limit:{limit}"
        if self._redis is not None:
            try:
                cached = self._redis.get(key)
                if cached:
                    return 200, json.loads(cached)
            except redis.RedisError:
                pass  # a cache miss, not an outage
        try:
            with self._connect() as conn:
                rows = conn.execute("SELECT id, name, price_eth::text FROM products ORDER BY id LIMIT %s",
                                    (limit,)).fetchall()
        except psycopg.Error as exc:
            return 503, {"error": str(exc).strip()[:200]}
        products = [{"id": r[0], "name": r[1], "price_eth": r[2]} for r in rows]
        if self._redis is not None:
            try:
                self._redis.set(key, json.dumps(products), ex=30)
            except redis.RedisError:
                pass
        return 200, products

    def orders_check(self) -> tuple[int, dict[str, Any]]:
        try:
            with self._connect(autocommit=False) as conn:
                conn.execute("SET LOCAL lock_timeout = '1s'")
                conn.execute("SELECT id FROM orders WHERE id = 1 FOR UPDATE")
                recent = conn.execute(
                    "SELECT count(*) FROM orders WHERE created_at > now() - interval '1 hour'").fetchone()
                conn.rollback()
        except psycopg.errors.LockNotAvailable:
            return 503, {"status": "failing", "error": "order writes are blocked: lock timeout on the orders table"}
        except psycopg.Error as exc:
            return 503, {"status": "failing", "error": str(exc).strip()[:200]}
        return 200, {"status": "ok", "orders_last_hour": recent[0] if recent else 0}


    def external_check(self) -> tuple[int, dict[str, Any]]:
        """A call to the external dependency, as the app makes it (2 s timeout); with the circuit breaker open,
        the app stops calling and answers degraded (the playbook's degraded mode)."""
        import urllib.error
        import urllib.request
        if self.circuit_breaker:
            return 200, {"status": "degraded", "external": "circuit breaker open: not called"}
        try:
            with urllib.request.urlopen(self.external_url, timeout=2) as response:
                return 200, {"status": "ok", "external": response.status}
        except urllib.error.HTTPError as exc:
            return 502, {"status": "failing", "error": f"upstream answered {exc.code} {exc.reason}"}
        except TimeoutError:
            return 504, {"status": "failing", "error": "upstream timed out after 2000 ms"}
        except (urllib.error.URLError, OSError) as exc:
            return 502, {"status": "failing", "error": f"upstream unreachable: {getattr(exc, 'reason', exc)}"}


@dataclass
class External:
    """An external dependency (a managed API outside the cluster) on 127.0.0.1: ``state`` ``up`` (200),
    ``failing`` (503), ``slow`` (answers after 30 s: clients time out) or ``down`` (nothing listens)."""

    state: str = "up"
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/status"

    def start(self) -> External:
        self.port = self.port or free_port()
        if self.state == "down":
            return self  # the port stays closed: connection refused
        state, gone = self.state, threading.Event()
        self._gone = gone

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if state == "slow":
                    gone.wait(30)
                code = 503 if state == "failing" else 200
                body = b'{"status": "unavailable"}' if code == 503 else b'{"status": "ok"}'
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up first

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True,
                         name="external-dependency").start()
        return self

    def stop(self) -> None:
        if getattr(self, "_server", None) is not None:
            self._gone.set()
            self._server.shutdown()
            self._server.server_close()
            self._server = None  # type: ignore[assignment]

    def __enter__(self) -> External:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    app: Marketplace
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the drill's own output is what a user reads

    def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        endpoint = self.app.endpoint(url.path)
        if url.path == "/metrics":
            self._send(200, self.app.metrics(), "text/plain; version=0.0.4")
        elif endpoint is None:
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no route {url.path}"})
        elif not self.app.upstream(endpoint):
            # What an ingress answers when the workload behind a route has no ready pod.
            self._send(503, {"status": "unavailable",
                             "error": f"no healthy upstream: {endpoint.workload} has no ready pods"})
        elif endpoint.serves == "health":
            self._send(*self.app.health())
        elif endpoint.serves == "products":
            try:
                limit = max(1, min(100, int(parse_qs(url.query).get("limit", ["10"])[0])))
            except ValueError:
                self._send(400, {"error": "limit must be an integer"})
                return
            self._send(*self.app.products(limit))
        elif endpoint.serves == "orders":
            self._send(*self.app.orders_check())
        elif endpoint.serves == "external":
            self._send(*self.app.external_check())
        else:
            self._send(200, {"status": "ok"})

    def do_POST(self) -> None:
        if urlsplit(self.path).path == "/admin/circuit-breaker/enable":
            self.app.circuit_breaker = True
            self._send(200, {"circuit_breaker": "enabled"})
        elif urlsplit(self.path).path == "/admin/circuit-breaker/disable":
            self.app.circuit_breaker = False
            self._send(200, {"circuit_breaker": "off"})
        else:
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}"})
