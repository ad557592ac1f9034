"""The fault matrix: every source failing every way it fails during an outage.

PostgreSQL, Prometheus, Kubernetes and the health endpoints, each refused, hung, slow
(answering after twice the timeout), refusing the credentials (401/403 or a wrong
password), answering garbage (a proxy's HTML error page) and dropping the connection
half-way, all on real sockets in front of the real servers. Phases 1, 2 and 4 run as
their notebooks' cells, in-process. In every case the phases finish within their bound,
the failed steps are recorded with their cause, what the other sources said is intact,
and no verdict fails open.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from irkit import config
from irkit.config import Config
from irkit.lab.kube import KubeLab, build_cluster
from irkit.lab.postgres import PostgresLab
from irkit.phases import phase
from irkit.sources import pg
from tests.conftest import CLUSTER, NAMESPACE
from tests.faults import PROXY_ERROR_PAGE, FaultServer, http_response

RUN = (1, 2, 4)  # the phases that read sources
BOUND_SECONDS = 60.0  # phases 1, 2 and 4 with every timeout at 1-2 s: each hung source costs a few timeouts
PG_SLOW = 5.0  # libpq's connect_timeout is at least 2 s: answer after more than twice that

CAUSE = {  # what the recorded error must say, per way of failing
    "refused": r"refused|cannot reach",
    "hung": r"no answer|timeout expired|timed out|stopped answering",
    "slow": r"no answer|timeout expired|timed out|stopped answering",
    "auth": r"401|403|password|credentials",
    "garbage": r"not the Prometheus API|not a valid Kubernetes|invalid response|unexpected|lost|HTTP 502",
    "dropped": r"dropped|lost|closed|unexpectedly|not a valid",
}
SOURCE = {"pg": "PostgreSQL at", "prom": "Prometheus at", "kube": "Kubernetes"}
# A record each source fills when it answers: what must stand when another source fails.
INTACT = {"pg": (2, "pg_activity"), "prom": (1, "error_ratio_now"), "kube": (1, "workloads"),
          "http": (1, "endpoints")}


class _Healthy(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def health() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Healthy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_port}"
    server.shutdown()


def _kubeconfig(path: Path, server: str) -> str:
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": server}}], "users": [{"name": "c", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "c", "namespace": NAMESPACE}}]}))
    return str(path)


def _run_phases(toml: Path, run_dir: Path) -> dict[int, dict[str, Any]]:
    """Each phase notebook's cells, executed in order in this process, as papermill would in a kernel."""
    out = {}
    for number in RUN:
        cells = json.loads(phase(number).path.read_text())["cells"]
        namespace: dict[str, Any] = {}
        for cell in cells:
            if cell["cell_type"] != "code":
                continue
            exec("".join(cell["source"]), namespace)  # our own notebook: the thing under test
            if "parameters" in cell.get("metadata", {}).get("tags", []):
                namespace.update(incident_id="INC-FAULT", run_dir=str(run_dir), config_path=str(toml),
                                 window_minutes=60, older_than_seconds=60)
        out[number] = json.loads((run_dir / f"phase-{number}.json").read_text())
    return out


def _pg_handshake_bytes(pg_lab: PostgresLab, cfg: Config) -> int:
    """How many bytes PostgreSQL sends while irkit connects: a cut just past them lands in a query's answer."""
    with FaultServer("count", upstream=("127.0.0.1", pg_lab.port)) as counter:
        session = pg.connect(cfg.replace(pg_dsn=cfg.pg_dsn.replace(f"127.0.0.1:{pg_lab.port}", counter.address)))
        time.sleep(0.2)
        answered = counter.answered
        session.close()
    return answered


@contextlib.contextmanager
def _fault(source: str, mode: str, *, pg_lab: PostgresLab, kube_lab: KubeLab, prom_url: str, health: str,
           cut_pg: int) -> Iterator[str]:
    """The address (host:port) standing in for ``source``, failing as ``mode`` says."""
    upstream = {"pg": ("127.0.0.1", pg_lab.port), "http": tuple(health.split(":")),
                "prom": ("127.0.0.1", int(prom_url.rsplit(":", 1)[1])),
                "kube": ("127.0.0.1", int(kube_lab.url.rsplit(":", 1)[1]))}[source]
    upstream = (str(upstream[0]), int(upstream[1]))
    if mode == "refused":
        with FaultServer("hung") as placeholder:
            address = placeholder.address  # a port that was just free; nothing listens once it closes
        yield address
        return
    if mode == "auth":
        if source == "pg":
            yield f"127.0.0.1:{pg_lab.port}"  # the real server, as a role it refuses (see the DSN below)
            return
        status = {"kube": "403 Forbidden", "prom": "401 Unauthorized", "http": "401 Unauthorized"}[source]
        body = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": int(status[:3]),
                           "reason": status[4:], "message": "forbidden"}).encode()
        server = FaultServer("respond", response=http_response(status, body))
    elif mode == "garbage":
        server = FaultServer("respond", response=PROXY_ERROR_PAGE)
    elif mode == "hung":
        server = FaultServer("hung")
    elif mode == "slow":
        server = FaultServer("slow", upstream=upstream, delay=PG_SLOW if source == "pg" else 2.5)
    else:  # dropped half-way
        if source == "pg":
            server = FaultServer("cut", upstream=upstream, limit=cut_pg + 20)
        elif source == "http":
            server = FaultServer("respond", response=http_response("200 OK", b'{"sta', declared_length=400))
        else:
            server = FaultServer("cut", upstream=upstream, limit=300)
    with server:
        yield server.address


MODES = ("refused", "hung", "slow", "auth", "garbage", "dropped")
CASES = [(source, mode) for source in ("pg", "prom", "kube", "http") for mode in MODES]


@pytest.fixture(scope="module")
def cut_pg(pg_lab: PostgresLab, cfg: Config) -> int:
    return _pg_handshake_bytes(pg_lab, cfg)


def _toml(tmp_path: Path, cfg: Config, **changes: Any) -> Path:
    values = {"kubeconfig": cfg.kubeconfig, "pg_dsn": cfg.pg_dsn, "prom_url": cfg.prom_url,
              "connect_timeout": 1.0, "request_timeout": 1.0, "http_timeout": 1.0, "statement_timeout": 2.0,
              "retry_after": 600.0, **changes}
    path = tmp_path / "irkit.toml"
    path.write_text(config.to_toml(values))
    return path


@pytest.mark.parametrize(("source", "mode"), CASES, ids=[f"{s}-{m}" for s, m in CASES])
def test_a_failing_source_is_recorded_and_nothing_else_is_lost(
        source: str, mode: str, cfg: Config, pg_lab: PostgresLab, kube_lab: KubeLab, health: str, cut_pg: int,
        tmp_path: Path):
    with _fault(source, mode, pg_lab=pg_lab, kube_lab=kube_lab, prom_url=cfg.prom_url, health=health,
                cut_pg=cut_pg) as address:
        changes: dict[str, Any] = {"health_endpoints": [f"http://{health}/api/health"]}
        if source == "pg":
            dsn = cfg.pg_dsn.replace(f"127.0.0.1:{pg_lab.port}", address)
            changes["pg_dsn"] = dsn.replace("//postgres@", "//nobody@") if mode == "auth" else dsn
            assert mode != "auth" or "nobody" in changes["pg_dsn"]
        elif source == "prom":
            changes["prom_url"] = f"http://{address}"
        elif source == "kube":
            changes["kubeconfig"] = _kubeconfig(tmp_path / "kubeconfig", f"http://{address}")
        else:
            changes["health_endpoints"] = [f"http://{address}/api/health"]
        toml = _toml(tmp_path, cfg, **changes)
        started = time.monotonic()
        records = _run_phases(toml, tmp_path / "run")
        elapsed = time.monotonic() - started

    assert elapsed < BOUND_SECONDS, f"{elapsed:.1f} s"
    p1, p2, p4 = (records[n]["records"] for n in (1, 2, 4))
    problems = [p for n in (1, 2, 4) for p in records[n]["problems"]]
    # The failed steps are recorded with their cause.
    if source == "http":
        endpoint = p1["endpoints"][0]
        assert endpoint["ok"] is False
        assert re.search(CAUSE[mode], f"HTTP {endpoint['status']} {endpoint['error']}"), endpoint
    else:
        mine = [p for p in problems if p["error"].startswith(SOURCE[source])]
        assert mine, problems
        assert re.search(CAUSE[mode], mine[0]["error"]), mine[0]
        assert any(f["kind"] == "source-unavailable" for f in p2["findings"])
    # What the other sources said is intact.
    for other, (number, key) in INTACT.items():
        if other != source:
            value = records[number]["records"].get(key)
            unavailable = isinstance(value, dict) and {"what", "error", "kind"} <= set(value)
            assert isinstance(value, list) and not unavailable, (other, key, value)
            if other == "http":
                assert value[0]["ok"] is True, value
    # No verdict fails open.
    assert p1["severity"]["name"] != "SEV-4" and p1["real"] is not False
    if source == "prom":
        assert any(u.startswith("error ratio:") for u in p1["severity"]["unmeasured"])
    if source == "kube":
        assert any(u.startswith("workload readiness:") for u in p1["severity"]["unmeasured"])
    assert p4["verdict"]["recovered"] is not True


def test_a_query_hitting_statement_timeout_is_recorded_and_postgres_is_still_asked(
        cfg: Config, pg_lab: PostgresLab, health: str, tmp_path: Path):
    toml = _toml(tmp_path, cfg, statement_timeout=1.0, lock_timeout=5.0,
                 health_endpoints=[f"http://{health}/api/health"])
    with psycopg.connect(pg_lab.dsn, autocommit=True) as locker:
        locker.execute("BEGIN")
        locker.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")  # "orders flowing" waits on it
        try:
            records = _run_phases(toml, tmp_path / "run")
        finally:
            locker.execute("ROLLBACK")
    checks = {row["check"]: row for row in records[4]["records"]["checks"]}
    assert checks["orders flowing"]["ok"] is None and "statement_timeout" in checks["orders flowing"]["detail"]
    assert checks["no lock waits"]["ok"] is not None  # the next query was still sent: a timeout is not "down"
    assert records[4]["records"]["verdict"]["recovered"] is not True


def test_events_forbidden_says_which_permission_and_the_rest_of_phase_2_stands(
        cfg: Config, health: str, tmp_path: Path):
    with KubeLab() as lab:
        lab.load(build_cluster(CLUSTER, NAMESPACE))
        lab.emulator.forbidden.add("events")
        kubeconfig = lab.write_kubeconfig(tmp_path / "kubeconfig", NAMESPACE)
        toml = _toml(tmp_path, cfg, kubeconfig=str(kubeconfig), health_endpoints=[f"http://{health}/api/health"])
        records = _run_phases(toml, tmp_path / "run")
    p2 = records[2]["records"]
    events = p2["warning_events"]
    assert isinstance(events, dict) and "403" in events["error"] and "may not list events" in events["error"]
    assert p2["unhealthy_pods"] and p2["rollout_history"] and isinstance(p2["pg_activity"], list)
    kinds = [f["kind"] for f in p2["findings"]]
    assert kinds[0] == "bad-revision" and "source-unavailable" in kinds
