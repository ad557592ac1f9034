"""Investigation at scale: a drill seeded with 5,000 pods, 20,000 events, 500 database backends with a
100-deep lock chain, and 24 hours of 50 services' series at a 15 s step. Prints figures; asserts nothing.

    .venv/bin/python bench/scale.py            # or: make bench (after budgets.py)
    .venv/bin/python bench/scale.py --scale-only --outputs /tmp/scale   # only at scale, keeping the runs

It prints, at drill size and at scale: each phase's seconds (phase 2's budget: 10 s), each executed notebook's
size (budget 2 MB, and flat: the same at scale as at drill size), and the investigation's own queries sent
through irkit against the same queries sent back to back with psql and curl (budget 1.2x).
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from irkit import config as irconfig
from irkit import drill, runner
from irkit.sources import pg, prom

MB = 1024 * 1024
PODS, EVENTS, BACKENDS, CHAIN, SERVICES = 5000, 20_000, 500, 100, 50


def scenario_text() -> str:
    """The scale scenario as a drill file: the lock-contention incident inside a big namespace."""
    others = (PODS - 2 * 1000) // 30
    lines = ['title = "Lock contention in a namespace of 5,000 pods"', '[truth]', 'real = true', 'severity = "SEV-2"']
    for i in range(SERVICES):
        name = "backend" if i == 0 else "frontend" if i == 1 else f"svc-{i:02d}"
        spike = '{ start = "-30m", rps = 40, error_ratio = 0.12, p95_seconds = 2.5 }, ' if i == 0 else ""
        lines += ["[[traffic]]", f'service = "{name}"', "noise = 0.05",
                  f'segments = [{{ start = "-24h", rps = 40, error_ratio = 0.01, p95_seconds = 0.3 }}, {spike}]'
                  .replace(", ]", "]")]
    lines += ["[cluster]"]
    workloads = [("backend-deployment", "backend", 1000, 'pods = [{ count = 990, state = "running" }, '
                  '{ count = 10, state = "crashloop", restarts = 7 }]'),
                 ("frontend-deployment", "frontend", 1000, "")]
    workloads += [(f"svc-{i:02d}", f"svc-{i:02d}", others, "") for i in range(2, 32)]
    for name, container, replicas, pods in workloads:
        lines += ["[[cluster.workloads]]", f'name = "{name}"', f'container = "{container}"', f"replicas = {replicas}"]
        if pods:
            lines.append(pods)
    for name in ("postgres-primary", "redis-master"):
        lines += ["[[cluster.workloads]]", f'name = "{name}"', 'kind = "StatefulSet"',
                  f'container = "{name.split("-")[0]}"']
    return "\n".join(lines) + "\n"


def events() -> list[dict[str, Any]]:
    """20,000 events over the last day, one in four a Warning (added to the loaded scenario: as a file they
    would pass the 1 MiB bound on scenario files)."""
    reasons = [("Normal", "Pulled", "Container image already present on machine"),
               ("Normal", "Started", "Started container"), ("Normal", "Scheduled", "Successfully assigned"),
               ("Warning", "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503")]
    return [{"name": f"svc-{2 + i % 30:02d}-pod-{i:05d}", "type": reasons[i % 4][0], "reason": reasons[i % 4][1],
             "message": reasons[i % 4][2], "ago": f"{1 + i % 1400}m"} for i in range(EVENTS)]


def scale_scenario(directory: Path) -> drill.Scenario:
    path = directory / "scale.toml"
    path.write_text(scenario_text())
    scenario = drill.load_scenario(path)
    # 500 application backends and irkit's own sessions: more than a scenario file may ask for (500).
    return dataclasses.replace(scenario, cluster={**scenario.cluster, "events": events()},
                               max_connections=BACKENDS + 40)


def seed_database(env: drill.DrillEnvironment) -> None:
    """A 100-deep lock chain (each session holds its row and waits for the previous one's) and idle sessions up to
    500 backends in all."""
    lab = env.postgres
    lab.hold(["BEGIN", "UPDATE orders SET status = 'held' WHERE id = 1"])
    for i in range(2, CHAIN + 2):
        lab.hold(["BEGIN", f"UPDATE orders SET status = 'chain' WHERE id = {i}",  # noqa: S608 -- a literal id
                  f"UPDATE orders SET status = 'chain' WHERE id = {i - 1}"])  # noqa: S608
    for _ in range(BACKENDS - CHAIN - 1):
        lab.hold(["SELECT 1"])


class _Recording(pg.PgSession):
    """The investigation session, keeping each statement it sends (to send the same with psql)."""

    sent: list[str] = []

    def query(self, query: Any, params: Any = None, *, what: str) -> Any:
        with psycopg.ClientCursor(self.connection) as cur:
            _Recording.sent.append(cur.mogrify(query, params))
        return super().query(query, params, what=what)


class _RecordingProm(prom.Prometheus):
    sent: list[dict[str, str]] = []

    def instant(self, promql: str, at: Any = None) -> Any:
        _RecordingProm.sent.append({"query": promql, **({"time": f"{at.timestamp():.3f}"} if at else {})})
        return super().instant(promql, at)

    def range(self, promql: str, window: Any) -> Any:
        _RecordingProm.sent.append({"query": promql, "start": f"{window.start.timestamp():.3f}",
                                    "end": f"{window.end.timestamp():.3f}",
                                    "step": f"{max(1, int(window.step.total_seconds()))}s"})
        return super().range(promql, window)


def investigation(cfg: irconfig.Config) -> None:
    """Phase 2's database and metrics reads, as its cells call them."""
    from datetime import timedelta
    session, metrics = _Recording(cfg), _RecordingProm(cfg)
    window = prom.Window.last(timedelta(hours=2))
    pg.activity_by_state(session), pg.connections_by_application(session), pg.lock_graph(session)
    pg.long_running(session, timedelta(seconds=60)), pg.saturation(session), pg.deadlocks(session)
    prom.error_ratio(metrics, window, by_service=True), prom.error_ratio(metrics, by_service=True)
    prom.latency_quantile(metrics, 0.95, window), prom.latency_quantile(metrics, 0.99, window)
    prom.request_rate(metrics, window, by_service=True), prom.request_rate(metrics, by_service=True)
    session.close()
    metrics.close()


def overhead(env: drill.DrillEnvironment) -> tuple[float, float]:
    """Seconds for the investigation's queries through irkit, and for the same sent with psql and curl."""
    cfg = irconfig.load(env.config_path)
    _Recording.sent.clear()
    _RecordingProm.sent.clear()
    investigation(cfg)  # once to learn the statements (and to warm both sides the same way)
    t0 = time.monotonic()
    investigation(cfg)
    through_irkit = time.monotonic() - t0
    statements, queries = _Recording.sent[-len(_Recording.sent) // 2:], _RecordingProm.sent[-len(_RecordingProm.sent) // 2:]
    psql, curl = shutil.which("psql") or "/usr/lib/postgresql/15/bin/psql", shutil.which("curl") or "curl"
    t0 = time.monotonic()
    for statement in statements:
        subprocess.run([psql, env.postgres.reader_dsn, "-XAtq", "-c", statement], check=True, capture_output=True)
    for query in queries:
        path = "query_range" if "step" in query else "query"
        subprocess.run([curl, "-sf", f"{env.prometheus.url}/api/v1/{path}",
                        *[a for k, v in query.items() for a in ("--data-urlencode", f"{k}={v}")]],
                       check=True, capture_output=True)
    return through_irkit, time.monotonic() - t0


def measure(label: str, scenario: drill.Scenario, outputs: Path, seed: bool) -> None:
    t0 = time.monotonic()
    with drill.DrillEnvironment(scenario) as env:
        if seed:
            seed_database(env)
        print(f"{label}: services up and seeded in {time.monotonic() - t0:.1f} s", flush=True)
        result = runner.run("SCALE", config_path=str(env.config_path), outputs=outputs / label,
                            params={"window_minutes": "1440"})
        for phase in (p.as_dict() for p in result.summary.phases):
            budget = " (budget 10 s)" if phase["phase"] == 2 else ""
            print(f"  phase {phase['phase']} {phase['name']:<26} {phase['duration_seconds']:>7.2f} s{budget} "
                  f"{phase['status']}")
        for notebook in sorted(result.run_dir.glob("*.ipynb")):
            print(f"  {notebook.name:<34} {notebook.stat().st_size / MB:>7.2f} MB (budget 2 MB)")
        irkit_s, tools_s = overhead(env)
        print(f"  investigation queries: irkit {irkit_s:.2f} s, psql+curl {tools_s:.2f} s, "
              f"ratio {irkit_s / tools_s:.2f}x (budget 1.2x)", flush=True)


def main() -> None:
    keep = sys.argv[sys.argv.index("--outputs") + 1] if "--outputs" in sys.argv else ""  # keep the runs there
    with tempfile.TemporaryDirectory(prefix="irkit-scale-") as tmp:
        outputs = Path(keep or tmp)
        outputs.mkdir(parents=True, exist_ok=True)
        base = drill.load_scenario("lock-contention")
        if "--scale-only" not in sys.argv:
            measure("drill size", base, outputs, seed=False)
        measure("at scale", scale_scenario(outputs), outputs, seed=True)


if __name__ == "__main__":
    main()
