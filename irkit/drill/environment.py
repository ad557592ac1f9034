"""The scenario's system, running on 127.0.0.1 and free ports: PostgreSQL (with the scenario's sessions held),
Redis when it wants one, the marketplace HTTP service, Prometheus backfilled up to now and then scraping the
service live, the Kubernetes API emulator; a kubeconfig and an ``irkit.toml`` pointing at them. It follows
what a responder applies (:meth:`DrillEnvironment.cause_gone`), and stops all of it on exit, Ctrl-C included.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from irkit import config as irconfig
from irkit.drill.scenario import Scenario
from irkit.errors import ConfigError, DrillError, ScenarioError
from irkit.lab.kube import ExecProcess, KubeLab, build_cluster
from irkit.lab.marketplace import ENDPOINTS, External, Marketplace
from irkit.lab.postgres import PostgresLab
from irkit.lab.prometheus import PrometheusLab
from irkit.lab.redis import RedisLab

__all__ = ["DrillEnvironment"]


def _seconds(text: Any) -> float:
    """'20s', '2m' or seconds, at least one second."""
    units = {"s": 1, "m": 60, "h": 3600}
    value = float(text) if isinstance(text, int | float) else float(str(text)[:-1]) * units[str(text)[-1]]
    return max(1.0, value)



class DrillEnvironment:
    """The scenario's system, running; a context manager that always stops it all."""

    def __init__(self, scenario: Scenario, workdir: str | Path | None = None,
                 progress: Callable[[str], None] | None = None, kube: KubeLab | None = None) -> None:
        """``kube``: the Kubernetes API emulator to seed instead of a plain-HTTP one (one over TLS that
        checks tokens, as a cluster's API server does for a pod); the environment stops it all the same."""
        self.scenario = scenario
        self._kube = kube
        self.say = progress or (lambda _: None)
        self.workdir = Path(workdir) if workdir else None
        self.pids: dict[str, int] = {}
        self.timings: dict[str, float] = {}
        self.down: set[str] = set()  # the labs a scenario stopped: "postgres", "redis"
        self._broken: list[tuple[str, str]] = []  # (kind, name) of workloads whose pods do not run
        self._replicas: dict[str, int] = {}
        self._rotated_at = 0.0  # when the scenario rotated the app role's password
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> DrillEnvironment:
        t0 = time.monotonic()
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        self.timings["services_up_seconds"] = round(time.monotonic() - t0, 2)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _start(self) -> None:
        sc = self.scenario
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix=f"irkit-drill-{sc.name}-"))
            self._stack.callback(shutil.rmtree, self.workdir, ignore_errors=True)
        self.workdir.mkdir(parents=True, exist_ok=True)
        settings = (f"max_connections={sc.max_connections}",
                    *(("shared_preload_libraries=pg_stat_statements",) if sc.pg_stat_statements else ()))
        self.postgres = self._stack.enter_context(PostgresLab(settings=settings, orders=sc.orders))
        self.say(f"postgresql  {self.postgres.dsn}")
        self._hold_sessions()
        credentials = None
        if sc.rotated_password:  # the secret store rotated it; the app's pods hold the old one until they restart
            stale, rotated_at = self.postgres.rotate_password("marketplace"), time.time()
            self._rotated_at = rotated_at
            self.say("postgresql  the app role's password rotated: its pods hold the old one until restarted")

            def credentials() -> str:
                return self.postgres.app_dsn if self._restarted_since(rotated_at) else stale
        redis_lab = RedisLab(password=secrets.token_urlsafe(16) if sc.redis_password else "",
                             maxmemory=sc.redis_maxmemory)
        self.redis = self._stack.enter_context(redis_lab) if sc.redis else None
        if self.redis is not None and sc.redis_maxmemory:
            self.redis.fill()
        if self.redis is not None:
            self.say(f"redis       {self.redis.url}")
        self.down = {lab for lab, down in (("postgres", sc.database_down), ("redis", sc.redis_down and sc.redis))
                     if down}  # from the start: the marketplace asks cause_gone() from its first request
        external = self._stack.enter_context(External(sc.external))
        if sc.external != "up":
            self.say(f"external    {external.url} ({sc.external})")
        names = sc.metric_names
        self.marketplace = self._stack.enter_context(Marketplace(
            self.postgres.app_dsn, sc.live, baseline={h.service: h.segments[0] for h in sc.traffic},
            recovered=self.cause_gone, backend_up=sc.backend_up, redis_url=self.redis.url if self.redis else "",
            names=names, ready=self._serves, endpoints=sc.endpoints or ENDPOINTS, credentials=credentials,
            external_url=external.url))
        self.say(f"marketplace {self.marketplace.url}")
        self.prometheus = self._stack.enter_context(PrometheusLab(
            sc.traffic, history_start=sc.history_start, ahead=0.0,
            scrape_targets=[f"127.0.0.1:{self.marketplace.port}"], scrape_interval="1s", names=names))
        self.say(f"prometheus  {self.prometheus.url}")
        kube = self.kube = self._stack.enter_context(self._kube or KubeLab())
        kube.load(build_cluster(sc.cluster, sc.namespace))
        # kubectl exec: the plan's psql and curl lines run against the drill's database and API.
        kube.emulator.run_exec = ExecProcess(env={"PGHOST": "127.0.0.1", "PGPORT": str(self.postgres.port),
                                                  "PGPASSFILE": self.postgres.passfile, "PGCONNECT_TIMEOUT": "5"})
        kube.emulator.on_pod_replaced.append(self._pod_replaced)
        # Workloads with pods that do not run (and could: pending and unschedulable pods wait for room
        # the drill cannot make): the scenario's cause is not gone until they are ready again.
        self._broken = [(w.get("kind", "Deployment"), w["name"]) for w in sc.cluster.get("workloads", [])
                        if any(p.get("state", "running") not in ("running", "pending", "unschedulable")
                               for p in w.get("pods", []))]
        self._replicas = {w["name"]: int(w.get("replicas", 1)) for w in sc.cluster.get("workloads", [])}
        self.kubeconfig = kube.write_kubeconfig(self.workdir / "kubeconfig", sc.namespace)
        for cronjob in sc.cluster.get("cronjobs", []):
            if cronjob.get("reapplies"):
                self._start_actor(cronjob)
        self.say(f"kubernetes  {kube.url} (kubeconfig {self.kubeconfig})")
        for _ in range(sc.deadlocks):
            self.postgres.deadlock()
        if sc.database_down:
            self.say("postgresql  stopped: the scenario's database is down")
            self.postgres.pause()
        if sc.redis_down and self.redis is not None:
            self.say("redis       stopped: the scenario's cache is down")
            self.redis.stop()
        self.config_path = self.workdir / "irkit.toml"
        # A drill compresses time: rates over 1 minute, so a fix shows in phase 4 within a minute.
        values = {"namespace": sc.namespace, "kubeconfig": str(self.kubeconfig), "pg_dsn": self.postgres.reader_dsn,
                  "pg_action_dsn": self.postgres.responder_dsn,
                  # Every template is rendered into the outbox (nothing is sent: no credentials, send_messages off).
                  "statuspage_page_id": "drill", "customer_email_to": "customers@drill.invalid",
                  "circuit_breaker_url": f"{self.marketplace.url}/admin/circuit-breaker/enable",
                  "circuit_breaker_off_url": f"{self.marketplace.url}/admin/circuit-breaker/disable",
                  "prom_rate_window": "1m", "lock_sample_seconds": 10,  # a lock history of several moments
                  "pg_idle_transaction_seconds": 2,  # a transaction left open since the drill began
                  "prom_url": self.prometheus.url, "health_endpoints": list(self.marketplace.health_endpoints),
                  **({"redis_url": self.redis.url} if self.redis else {}), **sc.config}
        self.config_path.write_text(f"# irkit drill {sc.name}: the drill environment\n" + irconfig.to_toml(values))
        try:
            irconfig.load(self.config_path, env={})
        except ConfigError as exc:
            raise ScenarioError(f"{sc.path}: [config] {exc}") from exc

    def _pod_replaced(self, namespace: str, pod: str, workload: str) -> None:
        """The emulator made a deleted pod again: a stopped datastore behind it starts again."""
        sc = self.scenario
        names = {**{"postgres_statefulset": irconfig.Config.postgres_statefulset,
                    "redis_statefulset": irconfig.Config.redis_statefulset}, **sc.config}
        if workload == names["postgres_statefulset"] and "postgres" in self.down:
            self.postgres.resume()
            self.down.discard("postgres")
        elif workload == names["redis_statefulset"] and "redis" in self.down and self.redis is not None:
            self.redis.start()
            self.down.discard("redis")
        self.say(f"kubernetes  pod {pod} of {workload} replaced in {namespace} ({sc.name})")

    def _start_actor(self, cronjob: dict[str, Any]) -> None:
        """A scheduled actor: while the CronJob is not suspended, every ``every`` (drill time) it sets the
        Deployment's container image back to ``reapplies.image`` through the API, as its kubectl would, and the
        API records it as the writer (managedFields). A rollback alone does not last; suspending it does."""
        target = cronjob["reapplies"]
        deployment, image = str(target["deployment"]), str(target["image"])
        every = _seconds(cronjob.get("every", "20s"))
        stop = threading.Event()
        self._stack.callback(stop.set)
        base = f"{self.kube.url}/apis"
        ns = self.scenario.namespace

        def call(method: str, path: str, body: dict[str, Any], kind: str) -> Any:
            request = urllib.request.Request(f"{base}/{path}", data=json.dumps(body).encode(), method=method,
                                             headers={"Content-Type": kind})
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read())

        def run() -> None:
            while not stop.wait(every):
                try:
                    found = self.kube.objects("cronjobs", group="batch", name=str(cronjob["name"]))
                    dep = self._deployment(deployment)
                    if not found or found[0]["spec"].get("suspend") or dep is None:
                        continue
                    containers = dep["spec"]["template"]["spec"]["containers"]
                    call("PATCH", f"batch/v1/namespaces/{ns}/cronjobs/{cronjob['name']}",
                         {"status": {"lastScheduleTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}},
                         "application/merge-patch+json")
                    if containers[0].get("image") != image:
                        call("PATCH", f"apps/v1/namespaces/{ns}/deployments/{deployment}?fieldManager="
                             f"{urllib.parse.quote(str(cronjob['name']))}",
                             {"spec": {"template": {"spec": {"containers": [
                                 {"name": containers[0]["name"], "image": image}]}}}},
                             "application/strategic-merge-patch+json")
                        self.say(f"kubernetes  cronjob {cronjob['name']} set {deployment} back to {image}")
                except (OSError, ValueError, KeyError, IndexError) as exc:
                    self.say(f"kubernetes  cronjob {cronjob['name']} failed this round: {exc}")
        threading.Thread(target=run, name=f"drill-cronjob-{cronjob['name']}", daemon=True).start()

    def _restarted_since(self, moment: float) -> bool:
        """Every pod of the backend workload started after ``moment`` (a restart picked up the new secret)."""
        kube = getattr(self, "kube", None)
        if kube is None:
            return False
        backend = self.scenario.settings.backend_deployment
        pods = kube.objects("pods", group="", prefix=f"{backend}-")
        started = [datetime.fromisoformat(p["metadata"]["creationTimestamp"].replace("Z", "+00:00")).timestamp()
                   for p in pods]
        return bool(started) and min(started) >= int(moment)

    def _serves(self, workload: str) -> bool:
        """Whether ``workload`` has a ready pod (a workload the cluster does not hold is not the drill's to
        judge: it serves). Before the emulator is up, nothing is asked."""
        kube = getattr(self, "kube", None)
        if kube is None:
            return True
        found = self._deployment(workload) or self._deployment(workload, "statefulsets")
        if found is None:
            return True
        if int((found.get("status") or {}).get("readyReplicas") or 0) == 0:
            return False
        # Ready pods behind a Service that lists none of them (a targetPort that matches no port) serve nobody.
        app = ((found.get("spec") or {}).get("selector") or {}).get("matchLabels", {}).get("app")
        for svc in self.kube.objects("services", group="", prefix=""):
            if app and (svc.get("spec") or {}).get("selector", {}).get("app") == app:
                endpoints = self.kube.objects("endpoints", group="", name=svc["metadata"]["name"])
                if endpoints and not endpoints[0].get("subsets"):
                    return False
        return True

    def _deployment(self, name: str, plural: str = "deployments") -> dict[str, Any] | None:
        return next(iter(self.kube.objects(plural, group="apps", name=name)), None)

    def _healthy(self, kind: str, name: str) -> bool:
        """Every pod of the workload is there, ready, and was not OOMKilled (an OOMKilled pod runs again, ready,
        until the next kill)."""
        workload = self._deployment(name, "statefulsets" if kind == "StatefulSet" else "deployments")
        pods = self.kube.objects("pods", group="", prefix=f"{name}-")
        statuses = [s for pod in pods for s in pod["status"].get("containerStatuses") or []]
        killed = any(((s.get("lastState") or {}).get("terminated") or {}).get("reason") == "OOMKilled"
                     for s in statuses)
        return workload is not None and len(pods) >= int(workload["spec"].get("replicas", 1)) and not killed \
            and all(s.get("ready") for s in statuses)

    def cause_gone(self) -> bool:
        """Whether what the scenario broke is fixed: the marketplace's traffic returns to its baseline then.

        Each part follows the system, not a script: the held sessions ended (they hold the locks), the
        deployments whose template broke run ready again (a rollback, a raised limit, a deleted pod),
        the stopped datastores answer, and for the fixes that live in the service (circuit breaker,
        an environment switch, more replicas) the change is in place. Nothing modelled: not gone.
        """
        sc, parts = self.scenario, []
        held = [h for h in self.postgres.held if not h.steady]  # a steady workload is traffic, not the cause
        if held and sc.recovers_when_sessions_end:
            parts.append(all(h.finished for h in held))
        for kind, name in self._broken:
            parts.append(self._healthy(kind, name))
        if sc.database_down or sc.redis_down:
            parts.append(not self.down)
        if sc.rotated_password:
            parts.append(self._restarted_since(self._rotated_at))
        action = (sc.truth.mitigation or {}).get("action")
        target = str((sc.truth.mitigation or {}).get("target", "")).removeprefix("deployment/")
        if action == "enable-circuit-breaker":
            parts.append(self.marketplace.circuit_breaker)
        elif action == "set-env":
            dep = self._deployment(target)
            parts.append(bool(dep and any(c.get("env") for c in dep["spec"]["template"]["spec"]["containers"])))
        elif action == "scale":
            dep = self._deployment(target)
            parts.append(bool(dep and int(dep["spec"]["replicas"]) > self._replicas.get(target, 0)))
        elif action == "terminate-idle":
            parts.append(all(h.finished for h in held))
        return bool(parts) and all(parts)

    def _hold_sessions(self) -> None:
        for session in self.scenario.sessions:
            for _ in range(session.repeat):
                try:
                    held = self.postgres.hold(session.statements, application=session.application,
                                              every=session.every)
                except DrillError as exc:
                    raise ScenarioError(f"{self.scenario.path} [[sessions]] {session.name}: {exc}") from exc
                self.pids.setdefault(session.name, held.pid)  # {name} in the truth: the first of them
            self.say(f"session     {session.name}: pid {held.pid}")
