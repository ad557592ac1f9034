"""``irkit drill``: a self-contained incident to practise on, with its ground truth.

A scenario (a TOML file, see ``irkit/drill/scenarios/``) describes one situation: the
traffic history Prometheus holds, the cluster the Kubernetes API shows, the
database sessions that hold or wait for locks, whether the marketplace API is up,
and the ground truth: the severity, the root cause the findings must name first,
the mitigation the plan must recommend first, and whether it is a real incident.

:class:`DrillEnvironment` starts the drill's system on 127.0.0.1 and free ports
(PostgreSQL, Redis when the scenario wants it, the marketplace HTTP service,
Prometheus backfilled up to now and then scraping the service live, the
Kubernetes API emulator), writes a kubeconfig and an ``irkit.toml`` pointing at
them, and stops all of it on exit, Ctrl-C included. :func:`run_drill` runs the
five phases in it with ``irkit run``; :func:`check` compares ``summary.json`` with
the ground truth.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from irkit import config as irconfig
from irkit import evidence, runner
from irkit.errors import ConfigError, DrillError, ScenarioError
from irkit.lab.kube import KubeLab, build_cluster
from irkit.lab.marketplace import Marketplace
from irkit.lab.postgres import PostgresLab
from irkit.lab.prometheus import PrometheusLab, Segment, ServiceHistory
from irkit.lab.redis import RedisLab
from irkit.rules.kinds import KINDS, Kind
from irkit.rules.plan import ACTIONS

__all__ = [
    "ACCURACY_COLUMNS", "KEYS", "SCENARIO_DIR", "accuracy_row", "accuracy_table", "run_all", "DrillEnvironment", "DrillResult", "Scenario", "Session", "Truth", "check",
    "load_scenario", "run_drill", "scenarios",
]

SCENARIO_DIR = Path(__file__).parent / "scenarios"
PATH_KEYS = tuple(f.name for f in dataclasses.fields(irconfig.Config) if f.metadata.get("check") == "path")
_SEVERITIES = ("SEV-1", "SEV-2", "SEV-3", "SEV-4")
_OFFSET = re.compile(r"^(-?\d+(?:\.\d+)?)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SESSION_REF = re.compile(r"{(\w+)}")  # {holder} in a truth subject or target: that session's pid
# Bounds on what a scenario file may ask for (counts are input like any other).
MAX_SESSIONS, MAX_STATEMENTS, MAX_STATEMENT_TEXT = 50, 50, 20_000
MAX_TRAFFIC, MAX_SEGMENTS, MAX_HISTORY_SECONDS = 50, 100, 7 * 86400
MAX_WORKLOADS, MAX_PODS, MAX_EVENTS, MAX_REVISIONS = 200, 10_000, 50_000, 100


# --------------------------------------------------------------------------- scenario files

@dataclass(frozen=True)
class Truth:
    """What the runbook must conclude. ``{name}`` in a subject or target is that session's pid."""

    real: bool
    severity: str
    root: Mapping[str, str] | None = None  # {kind, subject}: the first finding
    mitigation: Mapping[str, str] | None = None  # {action, target}: the first planned step; None = nothing planned
    ongoing: bool | None = None  # phase 1's "ongoing or resolved"; None: not checked
    recovered: bool | None = None  # phase 4's verdict on the unmitigated drill; None: not checked
    first_three: tuple[Mapping[str, str], ...] = ()  # {kind, subject} that must be among the first three findings
    # Phase 4's verdict once the plan is applied (--execute-mitigations): recovered, unless a signal stays blind.
    after_mitigation: bool | None = True

    def resolved(self, pids: Mapping[str, int]) -> Truth:
        """The truth with each ``{session}`` replaced by that session's pid."""
        def fill(table: Mapping[str, str] | None) -> dict[str, str] | None:
            if table is None:
                return None
            return {k: _SESSION_REF.sub(lambda m: str(pids.get(m.group(1), m.group(0))), v) for k, v in table.items()}
        return Truth(self.real, self.severity, fill(self.root), fill(self.mitigation), self.ongoing, self.recovered,
                     tuple(t for t in (fill(x) for x in self.first_three) if t is not None), self.after_mitigation)


@dataclass(frozen=True)
class Session:
    """A database session the drill holds open. Statements run in order; any may wait on a lock."""

    name: str
    statements: tuple[str, ...]
    application: str = "backend"
    repeat: int = 1  # this many identical sessions (an application's idle connections filling the pool)


@dataclass(frozen=True)
class Scenario:
    """One scenario file, checked: see :data:`KEYS` and the README's scenario format."""

    name: str
    title: str
    description: str
    truth: Truth
    traffic: tuple[ServiceHistory, ...]
    cluster: Mapping[str, Any]
    sessions: tuple[Session, ...] = ()
    backend_up: bool = True
    redis: bool = False
    recovers_when_sessions_end: bool = False
    max_connections: int = 100
    database_down: bool = False  # PostgreSQL is stopped once everything is up: the database itself is down
    deadlocks: int = 0  # real deadlocks caused (and broken by PostgreSQL) before the run
    redis_down: bool = False  # Redis likewise (needs redis = true)
    namespace: str = "web3-marketplace-prod"
    parameters: Mapping[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def live(self) -> dict[str, Segment]:
        """Each service's traffic from now on: its last segment."""
        return {h.service: h.segments[-1] for h in self.traffic}

    @property
    def history_start(self) -> float:
        return min(h.segments[0].start for h in self.traffic)


def scenarios() -> dict[str, Path]:
    """The built-in scenarios by name."""
    return {path.stem: path for path in sorted(SCENARIO_DIR.glob("*.toml"))}


def _offset(text: Any, where: str) -> float:
    match = _OFFSET.match(str(text).strip())
    if match is None:
        raise ScenarioError(f"{where}: {text!r} is not an offset like -3h, -25m or -90s")
    return float(match.group(1)) * _UNIT[match.group(2)]


# Every key a scenario file may hold, per table: a misspelt key is an error, not a silent default.
KEYS: dict[str, frozenset[str]] = {
    "": frozenset({"title", "description", "namespace", "truth", "parameters", "config", "marketplace", "sessions",
                   "traffic", "cluster", "database"}),
    "truth": frozenset({"real", "severity", "root", "mitigation", "ongoing", "recovered", "first_three",
                        "after_mitigation"}),
    "database": frozenset({"max_connections", "down", "deadlocks"}),
    "marketplace": frozenset({"backend_up", "redis", "redis_down", "recovers_when_sessions_end"}),
    "sessions": frozenset({"name", "application", "statements", "repeat"}),
    "traffic": frozenset({"service", "noise", "segments"}),
    "segment": frozenset({"start", "rps", "error_ratio", "p95_seconds"}),
}


def _relative_paths(config: dict[str, Any], path: Path) -> dict[str, Any]:
    """A scenario's [config] with its relative file paths (templates_dir, action_items_file) taken from the
    scenario file's directory, so a scenario and the files it names travel together."""
    for key in PATH_KEYS:
        value = config.get(key)
        if isinstance(value, str) and value and not Path(value).is_absolute():
            config[key] = str(path.parent.resolve() / value)
    return config


def _known(data: Any, table: str, where: str) -> None:
    if not isinstance(data, dict):
        raise ScenarioError(f"{where}: must be a table, not {data!r}")
    unknown = sorted(set(data) - KEYS[table])
    if unknown:
        raise ScenarioError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(KEYS[table]))}")


def _require(data: Mapping[str, Any], key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if key not in data:
        raise ScenarioError(f"{where}: missing {key}")
    value = data[key]
    if not isinstance(value, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise ScenarioError(f"{where}: {key} must be {names}, not {value!r}")
    return value


def _traffic(entries: Any, where: str) -> tuple[ServiceHistory, ...]:
    if not isinstance(entries, list) or not entries or len(entries) > MAX_TRAFFIC:
        raise ScenarioError(f"{where}: one to {MAX_TRAFFIC} [[traffic]] tables are needed")
    histories = []
    for i, entry in enumerate(entries):
        at = f"{where} [[traffic]] #{i + 1}"
        _known(entry, "traffic", at)
        service = _require(entry, "service", at, str)
        raw = _require(entry, "segments", at, list)
        if not raw or len(raw) > MAX_SEGMENTS:
            raise ScenarioError(f"{at}: segments must hold 1 to {MAX_SEGMENTS} segments")
        for j, seg in enumerate(raw):
            _known(seg, "segment", f"{at} segment {j + 1}")
        starts = [_offset(_require(seg, "start", f"{at} segment {j + 1}", str), f"{at} segment {j + 1}")
                  for j, seg in enumerate(raw)]
        if starts != sorted(starts) or starts[-1] > 0:
            raise ScenarioError(f"{at}: segment starts must increase and lie in the past (like -3h, then -25m)")
        if starts[0] < -MAX_HISTORY_SECONDS:
            raise ScenarioError(f"{at}: history starts at most 7 days back (-7d); Prometheus is backfilled "
                                "with every sample")
        segments = []
        for j, seg in enumerate(raw):
            seg_at = f"{at} segment {j + 1}"
            ratio = float(_require(seg, "error_ratio", seg_at, (int, float)))
            if not 0 <= ratio <= 1:
                raise ScenarioError(f"{seg_at}: error_ratio {ratio} must be between 0 and 1 (0.12 is 12 %)")
            end = starts[j + 1] if j + 1 < len(starts) else 1.0  # the last reaches now; live traffic goes on
            rps = float(_require(seg, "rps", seg_at, (int, float)))
            p95 = float(_require(seg, "p95_seconds", seg_at, (int, float)))
            if not 0 <= rps <= 100_000 or not 0 < p95 <= 3600:
                raise ScenarioError(f"{seg_at}: rps must be 0 to 100000 and p95_seconds above 0 and at most 3600")
            segments.append(Segment(starts[j], end, rps, ratio, p95))
        noise = entry.get("noise", 0.0)
        if not isinstance(noise, int | float) or isinstance(noise, bool) or not 0 <= noise <= 1:
            raise ScenarioError(f"{at}: noise must be a number from 0 to 1 (0.05 is 5 % jitter)")
        histories.append(ServiceHistory(service, tuple(segments), noise=float(noise)))
    return tuple(histories)


def _truth(data: Any, where: str) -> Truth:
    if not isinstance(data, dict):
        raise ScenarioError(f"{where}: a [truth] table is needed (real, severity, root, mitigation)")
    at = f"{where} [truth]"
    _known(data, "truth", at)
    severity = _require(data, "severity", at, str)
    if severity not in _SEVERITIES:
        raise ScenarioError(f"{at}: severity {severity!r} must be one of {', '.join(_SEVERITIES)}")
    root = data.get("root")
    if root is not None and not (isinstance(root, dict) and {"kind", "subject"} <= set(root)):
        raise ScenarioError(f"{at}: root must be {{ kind = ..., subject = ... }}")
    if root is not None and root["kind"] not in {k.value for k in Kind}:
        raise ScenarioError(f"{at}: root kind {root['kind']!r} is not a kind of finding; kinds: "
                            f"{', '.join(k.value for k in Kind)}")
    mitigation = data.get("mitigation")
    if mitigation is not None and not (isinstance(mitigation, dict) and {"action", "target"} <= set(mitigation)):
        raise ScenarioError(f"{at}: mitigation must be {{ action = ..., target = ... }}")
    if mitigation is not None and mitigation["action"] not in ACTIONS:
        raise ScenarioError(f"{at}: mitigation action {mitigation['action']!r} is not one irkit plans; actions: "
                            f"{', '.join(ACTIONS)}")
    checks = {}
    for key in ("ongoing", "recovered"):
        if key in data and not isinstance(data[key], bool):
            raise ScenarioError(f"{at}: {key} must be true or false")
        checks[key] = data.get(key)
    first_three = data.get("first_three", [])
    if not isinstance(first_three, list) or len(first_three) > 3 or not all(
            isinstance(t, dict) and {"kind", "subject"} <= set(t) and t["kind"] in {k.value for k in Kind}
            for t in first_three):
        raise ScenarioError(f"{at}: first_three must be at most three {{ kind = ..., subject = ... }} with known kinds")
    after = data.get("after_mitigation", "recovered")
    if after not in ("recovered", "not-recovered", "unknown"):
        raise ScenarioError(f"{at}: after_mitigation must be \"recovered\", \"not-recovered\" or \"unknown\"")
    return Truth(bool(_require(data, "real", at, bool)), severity, root, mitigation, checks["ongoing"],
                 checks["recovered"], tuple(first_three), {"recovered": True, "not-recovered": False}.get(after))


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A built-in scenario by name, or a scenario file by path."""
    builtin = scenarios()
    path = builtin.get(str(name_or_path)) or Path(name_or_path)
    if not path.is_file():
        raise ScenarioError(f"no scenario {str(name_or_path)!r}: use one of {', '.join(builtin)} "
                            "(irkit drill --list) or the path of a scenario file")
    data = irconfig.read_toml(path, ScenarioError, "name a scenario file (see the README's scenario format)")
    where = str(path)
    _known(data, "", where)
    sessions = []
    entries = data.get("sessions", [])
    if not isinstance(entries, list) or len(entries) > MAX_SESSIONS:
        raise ScenarioError(f"{where}: [[sessions]] must be a list of at most {MAX_SESSIONS} tables")
    for i, entry in enumerate(entries):
        at = f"{where} [[sessions]] #{i + 1}"
        _known(entry, "sessions", at)
        statements = _require(entry, "statements", at, list)
        if not statements or not all(isinstance(s, str) for s in statements):
            raise ScenarioError(f"{at}: statements must be a non-empty list of SQL strings")
        if len(statements) > MAX_STATEMENTS or any(len(s) > MAX_STATEMENT_TEXT for s in statements):
            raise ScenarioError(f"{at}: at most {MAX_STATEMENTS} statements of at most {MAX_STATEMENT_TEXT} "
                                "characters each")
        repeat = entry.get("repeat", 1)
        if not isinstance(repeat, int) or isinstance(repeat, bool) or not 1 <= repeat <= MAX_SESSIONS:
            raise ScenarioError(f"{at}: repeat must be a whole number from 1 to {MAX_SESSIONS}")
        sessions.append(Session(_require(entry, "name", at, str), tuple(statements),
                                str(entry.get("application", "backend")), repeat))
    names = [s.name for s in sessions]
    if len(set(names)) != len(names):
        raise ScenarioError(f"{where}: session names must be unique: {names}")
    marketplace = data.get("marketplace", {})
    _known(marketplace, "marketplace", f"{where} [marketplace]")
    database = data.get("database", {})
    _known(database, "database", f"{where} [database]")
    max_connections = database.get("max_connections", 100)
    if not isinstance(max_connections, int) or isinstance(max_connections, bool) or not 20 <= max_connections <= 500:
        raise ScenarioError(f"{where} [database]: max_connections must be a whole number from 20 to 500")
    namespace = data.get("namespace", "web3-marketplace-prod")
    label_ok, allowed = irconfig.CHECKS["label"]
    if not isinstance(namespace, str) or not label_ok(namespace):
        raise ScenarioError(f"{where}: namespace must be {allowed}")
    for table in ("parameters", "config"):
        if not isinstance(data.get(table, {}), dict):
            raise ScenarioError(f"{where}: [{table}] must be a table")
    _check_cluster_size(_require(data, "cluster", where, dict), where)
    scenario = Scenario(
        name=path.stem, title=_require(data, "title", where, str), description=str(data.get("description", "")),
        truth=_truth(data.get("truth"), where), traffic=_traffic(data.get("traffic"), where),
        cluster=_require(data, "cluster", where, dict), sessions=tuple(sessions),
        backend_up=bool(marketplace.get("backend_up", True)), redis=bool(marketplace.get("redis", False)),
        recovers_when_sessions_end=bool(marketplace.get("recovers_when_sessions_end", False)),
        namespace=namespace, max_connections=max_connections, database_down=bool(database.get("down", False)),
        redis_down=bool(marketplace.get("redis_down", False)), deadlocks=_count(database, "deadlocks", where),
        parameters=dict(data.get("parameters", {})), config=_relative_paths(dict(data.get("config", {})), path),
        path=path,
    )
    for text in _truth_texts(scenario.truth):
        for ref in _SESSION_REF.findall(text):
            if ref not in names:
                raise ScenarioError(f"{where} [truth]: {{{ref}}} names no session; sessions: {', '.join(names)}")
    try:
        irconfig.to_toml(scenario.config)
        irconfig.load(base=irconfig.Config(), env={}, **scenario.config)  # each value checked like irkit.toml's
        runner.check_parameters(scenario.parameters, list(runner.PHASES))
    except ConfigError as exc:
        raise ScenarioError(f"{where}: {exc}") from exc
    try:
        build_cluster(scenario.cluster, scenario.namespace)  # pure: catches a bad [cluster] before anything starts
    except (DrillError, KeyError, TypeError, ValueError) as exc:
        detail = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ScenarioError(f"{where} [cluster]: {detail}; see the README's scenario format") from exc
    return scenario


def _count(table: Mapping[str, Any], key: str, where: str, most: int = 10) -> int:
    value = table.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= most:
        raise ScenarioError(f"{where}: {key} must be a whole number from 0 to {most}")
    return value


def _check_cluster_size(cluster: Mapping[str, Any], where: str) -> None:
    """Bound what a [cluster] table makes the emulator hold: counts come from the file, and a drill must
    not allocate without limit (issue: a scenario count is input like any other)."""
    at = f"{where} [cluster]"
    workloads = cluster.get("workloads", [])
    events = cluster.get("events", [])
    if not isinstance(workloads, list) or len(workloads) > MAX_WORKLOADS:
        raise ScenarioError(f"{at}: workloads must be a list of at most {MAX_WORKLOADS}")
    if not isinstance(events, list) or len(events) > MAX_EVENTS:
        raise ScenarioError(f"{at}: events must be a list of at most {MAX_EVENTS}")
    pods = 0
    for i, workload in enumerate(workloads):
        if not isinstance(workload, dict):
            raise ScenarioError(f"{at}: workload #{i + 1} must be a table")
        for key in ("replicas",):
            value = workload.get(key, 1)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_PODS:
                raise ScenarioError(f"{at}: workload #{i + 1} {key} must be a whole number from 0 to {MAX_PODS}")
        revisions = workload.get("revisions", [])
        if not isinstance(revisions, list) or len(revisions) > MAX_REVISIONS:
            raise ScenarioError(f"{at}: workload #{i + 1} revisions: at most {MAX_REVISIONS}")
        for spec in workload.get("pods", []) if isinstance(workload.get("pods", []), list) else []:
            count = spec.get("count", 1) if isinstance(spec, dict) else 1
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise ScenarioError(f"{at}: workload #{i + 1} pods count must be a whole number")
            pods += count
    if pods > MAX_PODS:
        raise ScenarioError(f"{at}: {pods} pods in all; at most {MAX_PODS}")


def _truth_texts(truth: Truth) -> list[str]:
    return [*(truth.root or {}).values(), *(truth.mitigation or {}).values(),
            *(v for t in truth.first_three for v in t.values())]


# --------------------------------------------------------------------------- the environment

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
        self.postgres = self._stack.enter_context(PostgresLab(settings=(f"max_connections={sc.max_connections}",)))
        self.say(f"postgresql  {self.postgres.dsn}")
        self._hold_sessions()
        self.redis = self._stack.enter_context(RedisLab()) if sc.redis else None
        if self.redis is not None:
            self.say(f"redis       {self.redis.url}")
        self.down = {lab for lab, down in (("postgres", sc.database_down), ("redis", sc.redis_down and sc.redis))
                     if down}  # from the start: the marketplace asks cause_gone() from its first request
        self.marketplace = self._stack.enter_context(Marketplace(
            self.postgres.app_dsn, sc.live, baseline={h.service: h.segments[0] for h in sc.traffic},
            recovered=self.cause_gone, backend_up=sc.backend_up, redis_url=self.redis.url if self.redis else ""))
        self.say(f"marketplace {self.marketplace.url}")
        self.prometheus = self._stack.enter_context(PrometheusLab(
            sc.traffic, history_start=sc.history_start, ahead=0.0,
            scrape_targets=[f"127.0.0.1:{self.marketplace.port}"], scrape_interval="1s"))
        self.say(f"prometheus  {self.prometheus.url}")
        kube = self.kube = self._stack.enter_context(self._kube or KubeLab())
        kube.load(build_cluster(sc.cluster, sc.namespace))
        kube.emulator.on_pod_replaced.append(self._pod_replaced)
        # Workloads with pods that do not run (and could: pending and unschedulable pods wait for room
        # the drill cannot make): the scenario's cause is not gone until they are ready again.
        self._broken = [(w.get("kind", "Deployment"), w["name"]) for w in sc.cluster.get("workloads", [])
                        if any(p.get("state", "running") not in ("running", "pending", "unschedulable")
                               for p in w.get("pods", []))]
        self._replicas = {w["name"]: int(w.get("replicas", 1)) for w in sc.cluster.get("workloads", [])}
        self.kubeconfig = kube.write_kubeconfig(self.workdir / "kubeconfig", sc.namespace)
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

    def _deployment(self, name: str, plural: str = "deployments") -> dict[str, Any] | None:
        try:
            return next((o.raw for k, o in list(self.kube.emulator.objects.items())
                         if k[0].plural == plural and k[2] == name and not o.deleted), None)
        except RuntimeError:  # changed while read (the emulator's thread): ask again next time
            return None

    def _healthy(self, kind: str, name: str) -> bool:
        """Every pod of the workload is there, ready, and was not OOMKilled (an OOMKilled pod runs again, ready,
        until the next kill)."""
        workload = self._deployment(name, "statefulsets" if kind == "StatefulSet" else "deployments")
        try:
            pods = [o.raw for k, o in list(self.kube.emulator.objects.items())
                    if k[0].plural == "pods" and k[0].group == "" and k[2].startswith(f"{name}-") and not o.deleted]
        except RuntimeError:
            return False
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
        held = self.postgres.held
        if held and sc.recovers_when_sessions_end:
            parts.append(all(h.finished for h in held))
        for kind, name in self._broken:
            parts.append(self._healthy(kind, name))
        if sc.database_down or sc.redis_down:
            parts.append(not self.down)
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
                    held = self.postgres.hold(session.statements, application=session.application)
                except DrillError as exc:
                    raise ScenarioError(f"{self.scenario.path} [[sessions]] {session.name}: {exc}") from exc
                self.pids.setdefault(session.name, held.pid)  # {name} in the truth: the first of them
            self.say(f"session     {session.name}: pid {held.pid}")


# --------------------------------------------------------------------------- ground truth

def _first(items: list[Mapping[str, Any]], keys: tuple[str, str], want: Mapping[str, str] | None, label: str,
           nothing: str) -> list[str]:
    """The difference, if any, between the first of ``items`` and ``want`` (None: there must be no item)."""
    got = (items[0][keys[0]], items[0][keys[1]]) if items else None
    if want is None:
        return [f"{label}: expected none, got {got[0]} {got[1]}"] if got else []
    expected = (want[keys[0]], want[keys[1]])
    if got == expected:
        return []
    return [f"first {label}: expected {expected[0]} {expected[1]}, got " + (f"{got[0]} {got[1]}" if got else nothing)]


def check(summary: Mapping[str, Any], truth: Truth, pids: Mapping[str, int]) -> list[str]:
    """Every difference between ``summary.json`` and the ground truth; empty when the runbook got it right."""
    truth = truth.resolved(pids)
    problems = [f"phase {p['phase']} {p['name']} {p['status']}: {p.get('error')}"
                for p in summary.get("phases", []) if p.get("status") != "ok"]
    severity = (summary.get("severity") or {}).get("name")
    if severity != truth.severity:
        problems.append(f"severity: expected {truth.severity}, got {severity}")
    if summary.get("real") is not truth.real:
        problems.append(f"real incident: expected {truth.real}, got {summary.get('real')}")
    if truth.root is not None:  # a false alarm may still list symptoms under their thresholds
        problems += _first(summary.get("findings") or [], ("kind", "subject"), truth.root, "finding", "no findings")
    problems += _first(summary.get("mitigations") or [], ("action", "target"), truth.mitigation, "mitigation",
                       "nothing planned")
    top = [(f["kind"], f["subject"]) for f in (summary.get("findings") or [])[:3]]
    for want in truth.first_three:
        if (want["kind"], want["subject"]) not in top:
            problems.append(f"findings: expected {want['kind']} {want['subject']} among the first three, got {top}")
    if truth.ongoing is not None and summary.get("ongoing") is not truth.ongoing:
        problems.append(f"ongoing: expected {truth.ongoing}, got {summary.get('ongoing')}")
    recovered = (summary.get("recovery") or {}).get("recovered")
    if truth.recovered is not None and recovered is not truth.recovered:
        problems.append(f"recovered: expected {truth.recovered}, got {recovered}")
    return problems


@dataclass(frozen=True)
class DrillResult:
    scenario: Scenario
    run_dir: Path
    summary: dict[str, Any]
    differences: list[str]
    timings: dict[str, float]
    pids: Mapping[str, int] = field(default_factory=dict)  # session name -> pid, as the truth names them
    truth: Truth | None = None  # what the run was checked against (--execute-mitigations expects recovery)
    location: str = ""  # s3://... when the run was kept in object storage

    @property
    def ok(self) -> bool:
        return not self.differences


def run_drill(scenario: Scenario, *, outputs: str | Path = "outputs", incident: str = "",
              keep_running: Callable[[DrillEnvironment], None] | None = None,
              progress: Callable[[str], None] | None = None, phases: list[int] | None = None,
              execute_mitigations: bool = False, settle_seconds: int = 150) -> DrillResult:
    """Start the scenario's system, run the phases in it (all five by default; the ground truth needs
    phases 1-4), compare with the ground truth, stop it all.

    ``execute_mitigations``: as a responder would headless, first a run of phases 2-3 makes the plan;
    then the run that is checked enables mitigations and confirms every step that plan prepared
    (``confirm``), and phase 4 waits up to ``settle_seconds`` for the signals: the scenario must
    end recovered. The comparison is written into the run as ``drill.json`` (and the manifest
    re-sealed). ``keep_running`` is called with the environment still up, after the run.
    """
    say = progress or (lambda _: None)
    t0 = time.monotonic()
    name = incident or f"DRILL-{scenario.name}"
    # Each drill is an incident of its own: its runs' timeline must not pick up an earlier drill's runs.
    context = {"drill": f"{scenario.name}-{uuid.uuid4().hex[:8]}"}
    with DrillEnvironment(scenario, progress=say) as env:
        say(f"drill services up in {env.timings['services_up_seconds']:.1f} s; running the phases")
        t1 = time.monotonic()
        params = dict(scenario.parameters)
        truth_now = scenario.truth
        if execute_mitigations:
            planned = runner.run(name, [2, 3], config_path=str(env.config_path), outputs=outputs, progress=say,
                                 params=dict(scenario.parameters), context=context)
            from irkit.evidence import records as R
            ids = [s.id for s in R.RunRecords(planned.run_dir).get(R.STEPS) if not s.refused]
            say(f"plan {planned.run_dir.name}: confirming {', '.join(ids) or 'nothing'}")
            params.update(execute_mitigations=True)
            if ids:  # nothing to apply: nothing to wait for either
                params.update(confirm=f"{name}:{','.join(ids)}", settle_seconds=settle_seconds)
            phases = sorted(set(phases or [1, 2, 3, 4, 5]) | {1, 2, 3, 4})
            truth_now = dataclasses.replace(scenario.truth, recovered=scenario.truth.after_mitigation if ids
                                            else scenario.truth.recovered)
        result = runner.run(name, phases, config_path=str(env.config_path),
                            params=params, outputs=outputs, progress=say, context=context)
        env.timings["run_seconds"] = round(time.monotonic() - t1, 2)
        differences = check(result.summary, truth_now, env.pids)
        truth = dataclasses.asdict(truth_now.resolved(env.pids))
        evidence.write_json(result.run_dir / "drill.json",
                            {"scenario": scenario.name, "title": scenario.title, "truth": truth, "sessions": env.pids,
                             "differences": differences, "timings": env.timings})
        evidence.write_manifest(result.run_dir)
        if result.location:  # kept in object storage: the comparison and the new manifest go there too
            from irkit.evidence.remote import Remote
            Remote(str(outputs)).push(result.run_dir, to=result.location)
        if keep_running is not None:
            keep_running(env)
        timings = dict(env.timings)
    timings["total_seconds"] = round(time.monotonic() - t0, 2)
    return DrillResult(scenario, result.run_dir, result.summary, differences, timings, dict(env.pids), truth_now,
                       result.location)



# --------------------------------------------------------------------------- accuracy over every scenario

ACCURACY_COLUMNS = ("scenario", "repeat", "severity", "ac1", "ac3", "plan", "ongoing", "recovery",
                    "false_positive", "ok", "seconds")


def accuracy_row(scenario: Scenario, result: DrillResult, repeat: int) -> dict[str, Any]:
    """One drill's scores: each column True/False, or None where the truth does not say."""
    truth, summary = (result.truth or scenario.truth).resolved(result.pids), result.summary
    findings = [(f["kind"], f["subject"]) for f in summary.get("findings") or []]
    steps = [(m["action"], m["target"]) for m in summary.get("mitigations") or []]
    root = (truth.root["kind"], truth.root["subject"]) if truth.root else None
    wanted = [(t["kind"], t["subject"]) for t in truth.first_three] + ([root] if root else [])
    causes = [f for f in summary.get("findings") or [] if KINDS[Kind(f["kind"])].cause]
    recovered = (summary.get("recovery") or {}).get("recovered")
    return {
        "scenario": scenario.name, "repeat": repeat,
        "severity": (summary.get("severity") or {}).get("name") == truth.severity,
        "ac1": findings[:1] == [root] if root else None,
        "ac3": all(w in findings[:3] for w in wanted) if wanted else None,
        "plan": (steps[:1] == [(truth.mitigation["action"], truth.mitigation["target"])]) if truth.mitigation
        else not steps,
        "ongoing": summary.get("ongoing") is truth.ongoing if truth.ongoing is not None else None,
        "recovery": recovered is truth.recovered if truth.recovered is not None else None,
        # A negative control must end with no cause named and nothing planned.
        "false_positive": bool(causes or steps) if not truth.real else None,
        "ok": not result.differences, "seconds": result.timings.get("total_seconds"),
    }


def accuracy_table(rows: list[dict[str, Any]]) -> tuple[str, str]:
    """The rows and their totals as CSV and as a markdown table (percent of the rows a column applies to)."""
    import csv
    import io

    def cell(value: Any) -> str:
        return "" if value is None else ("yes" if value is True else "no" if value is False else f"{value}")

    def total(column: str) -> str:
        applicable = [r[column] for r in rows if r[column] is not None]
        if not applicable:
            return ""
        hits = sum(bool(v) for v in applicable)
        if column == "false_positive":
            return f"{hits} of {len(applicable)}"
        return f"{100 * hits / len(applicable):.0f} % ({hits}/{len(applicable)})"

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ACCURACY_COLUMNS)
    writer.writeheader()
    writer.writerows({k: cell(v) if k not in ("repeat", "seconds") else v for k, v in r.items()} for r in rows)
    header = ("| scenario | repeat | severity | AC@1 | AC@3 | plan | ongoing | recovery | false positive | all right "
              "| seconds |\n|" + "---|" * len(ACCURACY_COLUMNS) + "\n")
    body = "".join("| " + " | ".join(cell(r[c]) if c != "seconds" else f"{r[c]:.0f}" for c in ACCURACY_COLUMNS)
                   + " |\n" for r in rows)
    totals = ("| **total** | | " + " | ".join(total(c) for c in ACCURACY_COLUMNS[2:-1])
              + f" | {sum(r['seconds'] or 0 for r in rows):.0f} |\n")
    return buffer.getvalue(), header + body + totals


def run_all(*, repeat: int = 1, outputs: str | Path = "outputs", progress: Callable[[str], None] | None = None,
            names: list[str] | None = None, phases: list[int] | None = None,
            execute_mitigations: bool = False) -> tuple[list[dict[str, Any]], Path]:
    """Every built-in scenario (or ``names``), ``repeat`` times, scored; the table is written as
    ``outputs/drill-accuracy/<UTC time>/accuracy.{csv,md}``. Phases 1-4 by default: the post-mortem
    scores nothing."""
    from datetime import UTC, datetime
    say = progress or (lambda _: None)
    rows = []
    for round_ in range(1, repeat + 1):
        for name in names or list(scenarios()):
            scenario = load_scenario(name)
            say(f"drill {name} (repeat {round_} of {repeat})")
            result = run_drill(scenario, outputs=outputs, phases=phases or [1, 2, 3, 4],
                               execute_mitigations=execute_mitigations)
            rows.append(accuracy_row(scenario, result, round_))
            say(f"  {'right' if result.ok else 'WRONG: ' + '; '.join(result.differences)}")
    directory = Path(outputs) / "drill-accuracy" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    directory.mkdir(parents=True, exist_ok=True)
    csv_text, markdown = accuracy_table(rows)
    (directory / "accuracy.csv").write_text(csv_text)
    (directory / "accuracy.md").write_text(markdown)
    return rows, directory
