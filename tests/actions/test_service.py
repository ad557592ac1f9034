"""Service actions against real servers: Redis FLUSHDB (and its undo from the snapshot), the circuit breaker over
HTTP (and closing it again)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis

from irkit import actions
from irkit import config as irconfig
from irkit.actions import Confirmation, Systems
from irkit.lab.redis import RedisLab
from irkit.rules.plan import Mitigation

INCIDENT = "INC-S"


@pytest.fixture(scope="module")
def redis_lab() -> Iterator[RedisLab]:
    with RedisLab() as lab:
        yield lab


class Breaker(BaseHTTPRequestHandler):
    state = {"open": False, "posts": 0}

    def do_POST(self) -> None:
        Breaker.state["posts"] += 1
        Breaker.state["open"] = self.path.endswith("/enable")
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def breaker() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Breaker)
    Breaker.state = {"open": False, "posts": 0}
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/admin/circuit-breaker"
    server.shutdown()


def confirm(step: actions.Step) -> Confirmation:
    return Confirmation.parse(f"{INCIDENT}:{step.id}", by="test")


def test_flushdb_empties_the_cache_and_its_undo_puts_every_key_back(redis_lab: RedisLab):
    client = redis.Redis.from_url(redis_lab.url)
    client.flushdb()
    client.set("products:limit:1", "[1]", ex=300)
    client.set("session:9", "x")
    systems = Systems(irconfig.load(env={}, redis_url=redis_lab.url))
    [step] = actions.prepare([Mitigation("flushdb", "redis", "t", "redis-cli FLUSHDB", "f", params={})], systems,
                             INCIDENT)
    assert step.before == {"keys": 2} and not step.refused
    assert actions.execute(step, systems, incident=INCIDENT).status == "dry-run" and client.dbsize() == 2
    outcome = actions.execute(step, systems, incident=INCIDENT, enabled=True, confirmation=confirm(step))
    assert outcome.status == "applied" and client.dbsize() == 0
    undone = actions.revert(step, systems, incident=INCIDENT, enabled=True, confirmation=confirm(step))
    assert undone.status == "undone" and "2 keys restored" in undone.detail
    assert client.get("session:9") == b"x" and 0 < client.ttl("products:limit:1") <= 300
    systems.close()
    client.close()


def test_the_circuit_breaker_is_opened_and_its_undo_closes_it(breaker: str):
    systems = Systems(irconfig.load(env={}, circuit_breaker_url=f"{breaker}/enable",
                                    circuit_breaker_off_url=f"{breaker}/disable"))
    m = Mitigation("enable-circuit-breaker", "deployment/backend-deployment", "t", "c", "f",
                   params={"namespace": "web3-marketplace-prod", "deployment": "backend-deployment",
                           "url": f"{breaker}/enable"})
    [step] = actions.prepare([m], systems, INCIDENT)
    assert not step.refused and step.undo_command.endswith("/disable")
    assert actions.execute(step, systems, incident=INCIDENT).status == "dry-run"
    assert Breaker.state == {"open": False, "posts": 0}  # a dry run sends nothing
    assert actions.execute(step, systems, incident=INCIDENT, enabled=True, confirmation=confirm(step)).status == \
        "applied"
    assert Breaker.state["open"] is True
    actions.revert(step, systems, incident=INCIDENT, enabled=True, confirmation=confirm(step))
    assert Breaker.state == {"open": False, "posts": 2}


def test_a_circuit_breaker_that_does_not_answer_is_a_failed_step_not_a_traceback(closed_port: str):
    systems = Systems(irconfig.load(env={}, http_timeout=1.0))
    m = Mitigation("enable-circuit-breaker", "deployment/backend-deployment", "t", "c", "f",
                   params={"namespace": "web3-marketplace-prod", "deployment": "backend-deployment",
                           "url": f"http://{closed_port}/admin/circuit-breaker/enable"})
    [step] = actions.prepare([m], systems, INCIDENT)
    outcome = actions.execute(step, systems, incident=INCIDENT, enabled=True, confirmation=confirm(step))
    assert outcome.status == "failed" and "check circuit_breaker_url" in outcome.detail
