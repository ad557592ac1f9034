"""A drill scenario file (TOML, see ``irkit/drill/scenarios/``), checked into a :class:`Scenario`.

A scenario describes one situation: the traffic history Prometheus holds, the cluster the Kubernetes API shows,
the database sessions that hold or wait for locks, whether the marketplace API is up, and the ground truth
(:class:`Truth`): the severity, the root cause the findings must name first, the mitigation the plan must
recommend first, and whether it is a real incident. Every key is checked (a misspelt key is an error, not a
silent default), every count bounded, and the file is refused in one line naming the key.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from irkit import config as irconfig
from irkit import playbook, runner
from irkit.errors import ConfigError, DrillError, ScenarioError
from irkit.lab.kube import CLUSTER_KEYS, build_cluster
from irkit.lab.marketplace import Endpoint
from irkit.lab.prometheus import MetricNames, Segment, ServiceHistory
from irkit.rules.kinds import Kind
from irkit.rules.plan import ACTIONS

__all__ = ["DatabaseTable", "EndpointTable", "FindingPattern", "FindingRef", "FindingsTable", "KEYS",
           "MarketplaceTable", "MetricsTable", "PATH_KEYS", "PlanTable", "SCENARIO_DIR", "Scenario", "ScenarioFile",
           "SegmentTable", "Session", "SessionTable", "StepPattern", "StepRef", "TrafficTable", "Truth",
           "TruthTable", "UNKNOWN", "Verdict", "load_scenario", "scenarios"]

SCENARIO_DIR = Path(__file__).parent / "scenarios"
PATH_KEYS = tuple(f.name for f in dataclasses.fields(irconfig.Config) if f.metadata.get("check") == "path")
_SEVERITIES = ("SEV-1", "SEV-2", "SEV-3", "SEV-4", "unknown")
_OFFSET = re.compile(r"^(-?\d+(?:\.\d+)?)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SESSION_REF = re.compile(r"{(\w+)}")  # {holder} in a truth subject or target: that session's pid
# Bounds on what a scenario file may ask for (counts are input like any other).
MAX_SESSIONS, MAX_STATEMENTS, MAX_STATEMENT_TEXT = 50, 50, 20_000
MAX_TRAFFIC, MAX_SEGMENTS, MAX_HISTORY_SECONDS = 50, 100, 7 * 86400
MAX_WORKLOADS, MAX_PODS, MAX_EVENTS, MAX_REVISIONS = 200, 10_000, 50_000, 100


# --------------------------------------------------------------------------- scenario files

UNKNOWN: Literal["unknown"] = "unknown"  # a verdict the runbook must leave unknown (a blind run): the summary holds None
Verdict = bool | Literal["unknown"]


@dataclass(frozen=True)
class Truth:
    """What the runbook must conclude. ``{name}`` in a subject or target is that session's pid.

    A verdict (``real``, ``ongoing``, ``recovered``, ``after_mitigation``) is True, False or ``"unknown"`` (the
    run must not decide it); ``ongoing``/``recovered`` None: not checked. Every planned step must be the
    ``mitigation`` or match ``plan_accept``, and none may match ``plan_forbid``; every cause finding must be the
    ``root``, one of ``first_three`` or match ``findings_accept``, none ``findings_forbid``. A pattern without a
    target or subject matches any. ``no_cause``: no cause may be named and nothing planned (a negative control).
    """

    real: Verdict
    severity: str
    root: Mapping[str, str] | None = None  # {kind, subject}: the first finding
    mitigation: Mapping[str, str] | None = None  # {action, target}: the first planned step; None = nothing planned
    ongoing: Verdict | None = None  # phase 1's "ongoing or resolved"; None: not checked
    recovered: Verdict | None = None  # phase 4's verdict on the unmitigated drill; None: not checked
    first_three: tuple[Mapping[str, str], ...] = ()  # {kind, subject} that must be among the first three findings
    # Phase 4's verdict once the plan is applied (--execute-mitigations): recovered, unless a signal stays blind.
    after_mitigation: Verdict = True
    plan_accept: tuple[Mapping[str, str], ...] = ()  # {action, target?}: further steps that are right to plan
    plan_forbid: tuple[Mapping[str, str], ...] = ()  # {action, target?}: steps that must never be planned
    findings_accept: tuple[Mapping[str, str], ...] = ()  # {kind, subject?}: further causes that are right to name
    findings_forbid: tuple[Mapping[str, str], ...] = ()  # {kind, subject?}: causes that must never be named
    no_cause: bool = False

    def resolved(self, pids: Mapping[str, int]) -> Truth:
        """The truth with each ``{session}`` replaced by that session's pid."""
        def fill(table: Mapping[str, str] | None) -> dict[str, str] | None:
            if table is None:
                return None
            return {k: _SESSION_REF.sub(lambda m: str(pids.get(m.group(1), m.group(0))), v) for k, v in table.items()}

        def fill_all(tables: tuple[Mapping[str, str], ...]) -> tuple[Mapping[str, str], ...]:
            return tuple(t for t in (fill(x) for x in tables) if t is not None)
        return dataclasses.replace(self, root=fill(self.root), mitigation=fill(self.mitigation),
                                   first_three=fill_all(self.first_three), plan_accept=fill_all(self.plan_accept),
                                   plan_forbid=fill_all(self.plan_forbid),
                                   findings_accept=fill_all(self.findings_accept),
                                   findings_forbid=fill_all(self.findings_forbid))

    @property
    def says(self) -> str:
        """The truth in a few words, for ``--list``."""
        if self.real == UNKNOWN:
            return f"{self.severity}, real unknown"
        return self.severity if self.real else "not an incident"


@dataclass(frozen=True)
class Session:
    """A database session the drill holds open. Statements run in order; any may wait on a lock."""

    name: str
    statements: tuple[str, ...]
    application: str = "backend"
    repeat: int = 1  # this many identical sessions (an application's idle connections filling the pool)
    every: float | None = None  # a steady workload: run the statements again and again, this many seconds apart


@dataclass(frozen=True)
class Scenario:
    """One scenario file, checked: see :data:`KEYS` and the scenario format in docs/drills.md."""

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
    pg_stat_statements: bool = False  # loaded (shared_preload_libraries) and created in the drill database
    orders: int = 2000  # rows seeded in the orders table (a big table makes a missing index cost)
    rotated_password: bool = False  # the app role's password rotated at the start; the app holds the old one
    redis_password: bool = False  # Redis requires a password the app was never given (NOAUTH)
    redis_maxmemory: str = ""  # Redis at this maxmemory (noeviction), filled: writes refused (OOM)
    external: str = "up"  # the external dependency an `external` endpoint calls: up, failing, slow or down
    database_down: bool = False  # PostgreSQL is stopped once everything is up: the database itself is down
    deadlocks: int = 0  # real deadlocks caused (and broken by PostgreSQL) before the run
    redis_down: bool = False  # Redis likewise (needs redis = true)
    namespace: str = "web3-marketplace-prod"
    parameters: Mapping[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = None
    endpoints: tuple[Endpoint, ...] = ()  # empty: the marketplace's own three
    status_format: str = "code"

    @property
    def settings(self) -> irconfig.Config:
        """irkit's configuration as the scenario's [config] sets it over the defaults (names the lab follows)."""
        return irconfig.load(base=irconfig.Config(), env={}, **self.config)

    @property
    def metric_names(self) -> MetricNames:
        """What the lab's Prometheus calls its series: what the scenario's [config] tells irkit to query."""
        cfg = self.settings
        return MetricNames(cfg.prom_requests_metric, cfg.prom_latency_metric, cfg.prom_status_label,
                           cfg.prom_service_label, self.status_format, cfg.prom_latency_unit)

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


def _relative_paths(config: dict[str, Any], path: Path) -> dict[str, Any]:
    """A scenario's [config] with its relative file paths (templates_dir, action_items_file) taken from the
    scenario file's directory, so a scenario and the files it names travel together."""
    for key in PATH_KEYS:
        value = config.get(key)
        if isinstance(value, str) and value and not Path(value).is_absolute():
            config[key] = str(path.parent.resolve() / value)
    return config


# ----------------------------------------------------------------------------- the file, as pydantic models
# Every table forbids keys it does not know (a misspelt key is an error, not a silent default) and is strict about
# types (TOML's own: `real = "yes"` is not true). A complaint is one ScenarioError naming the file, the table and
# the key (see _complaint).

class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _known_kind(kind: str) -> str:
    if kind not in {k.value for k in Kind}:
        raise ValueError(f"kind {kind!r} is not a kind of finding; kinds: {', '.join(k.value for k in Kind)}")
    return kind


def _known_action(action: str) -> str:
    if action not in ACTIONS:
        raise ValueError(f"mitigation action {action!r} is not one irkit plans; actions: {', '.join(ACTIONS)}")
    return action


class FindingRef(_Table):
    kind: Annotated[str, AfterValidator(_known_kind)]
    subject: str


class StepRef(_Table):
    action: Annotated[str, AfterValidator(_known_action)]
    target: str


class StepPattern(_Table):
    """A step a plan may (``accept``) or must not (``forbid``) hold; no target: any target."""

    action: Annotated[str, AfterValidator(_known_action)]
    target: str | None = None


class FindingPattern(_Table):
    """A cause the findings may (``accept``) or must not (``forbid``) name; no subject: any subject."""

    kind: Annotated[str, AfterValidator(_known_kind)]
    subject: str | None = None


class PlanTable(_Table):
    accept: list[StepPattern] = Field(default_factory=list, max_length=20)
    forbid: list[StepPattern] = Field(default_factory=list, max_length=20)


class FindingsTable(_Table):
    accept: list[FindingPattern] = Field(default_factory=list, max_length=20)
    forbid: list[FindingPattern] = Field(default_factory=list, max_length=20)


_VERDICT = bool | Literal["unknown"]


class TruthTable(_Table):
    real: _VERDICT
    severity: str
    root: FindingRef | None = None
    mitigation: StepRef | None = None
    ongoing: _VERDICT | None = None
    recovered: _VERDICT | None = None
    first_three: list[FindingRef] = Field(default_factory=list, max_length=3)
    after_mitigation: Literal["recovered", "not-recovered", "unknown"] = "recovered"
    plan: PlanTable = PlanTable()
    findings: FindingsTable = FindingsTable()
    no_cause: bool = False

    @field_validator("severity")
    @classmethod
    def _severity(cls, severity: str) -> str:
        if severity not in _SEVERITIES:
            raise ValueError(f"severity {severity!r} must be one of {', '.join(_SEVERITIES)}")
        return severity

    @model_validator(mode="after")
    def _consistent(self) -> TruthTable:
        if self.no_cause and (self.root or self.mitigation or self.first_three or self.findings.accept
                              or self.plan.accept):
            raise ValueError("no_cause = true names no root, mitigation, first_three or accepted cause or step")
        return self


class DatabaseTable(_Table):
    max_connections: Annotated[int, Field(ge=20, le=500)] = 100
    orders: Annotated[int, Field(ge=100, le=1_000_000)] = 2000
    pg_stat_statements: bool = False
    rotated_password: bool = False
    down: bool = False
    deadlocks: Annotated[int, Field(ge=0, le=10)] = 0


def _url_path(path: str) -> str:
    if not re.fullmatch(r"/[!-~]{0,200}", path):
        raise ValueError(f"path {path!r} must be a path like /healthz or /api/v2/checkout?probe=1 (no spaces, "
                         "at most 200 characters)")
    return path


class EndpointTable(_Table):
    path: Annotated[str, AfterValidator(_url_path)]
    serves: Literal["health", "products", "orders", "ok", "external"] = "ok"
    workload: str | None = None  # default: the configured backend_deployment


class MetricsTable(_Table):
    status_format: Literal["code", "class", "digit"] = "code"


class MarketplaceTable(_Table):
    endpoints: list[EndpointTable] = Field(default_factory=list, max_length=20)
    redis_password: bool = False
    redis_maxmemory: Annotated[str, Field(pattern=r"^$|^[0-9]{1,4}(kb|mb)$")] = ""
    external: Literal["up", "failing", "slow", "down"] = "up"
    backend_up: bool = True
    redis: bool = False
    redis_down: bool = False
    recovers_when_sessions_end: bool = False


class SessionTable(_Table):
    name: str
    application: str = "backend"
    statements: list[str] = Field(min_length=1, max_length=MAX_STATEMENTS)
    repeat: Annotated[int, Field(ge=1, le=MAX_SESSIONS)] = 1
    every: str | None = None  # a steady workload: the statements again and again, this far apart ("0.5s")

    @field_validator("every")
    @classmethod
    def _every(cls, every: str | None) -> str | None:
        if every is not None and not (_OFFSET.match(every.strip()) and 0.05 <= _offset(every, "every") <= 3600):
            raise ValueError(f"every {every!r} must be a duration like 0.5s or 2m (from 0.05 s to 1 h)")
        return every

    @field_validator("statements")
    @classmethod
    def _statements(cls, statements: list[str]) -> list[str]:
        if any(len(s) > MAX_STATEMENT_TEXT for s in statements):
            raise ValueError(f"at most {MAX_STATEMENTS} statements of at most {MAX_STATEMENT_TEXT} characters each")
        return statements


class SegmentTable(_Table):
    start: str
    rps: float
    error_ratio: float
    p95_seconds: float

    @field_validator("start")
    @classmethod
    def _start(cls, start: str) -> str:
        if _OFFSET.match(start.strip()) is None:
            raise ValueError(f"{start!r} is not an offset like -3h, -25m or -90s")
        return start

    @field_validator("error_ratio")
    @classmethod
    def _ratio(cls, ratio: float) -> float:
        if not 0 <= ratio <= 1:
            raise ValueError(f"error_ratio {float(ratio)} must be between 0 and 1 (0.12 is 12 %)")
        return ratio

    @model_validator(mode="after")
    def _load(self) -> SegmentTable:
        if not 0 <= self.rps <= 100_000 or not 0 < self.p95_seconds <= 3600:
            raise ValueError("rps must be 0 to 100000 and p95_seconds above 0 and at most 3600")
        return self

    @property
    def offset(self) -> float:
        match = _OFFSET.match(self.start.strip())
        assert match is not None  # checked above
        return float(match.group(1)) * _UNIT[match.group(2)]


class TrafficTable(_Table):
    service: str
    noise: Annotated[float, Field(ge=0, le=1)] = 0.0
    segments: list[SegmentTable] = Field(min_length=1, max_length=MAX_SEGMENTS)

    @model_validator(mode="after")
    def _in_order(self) -> TrafficTable:
        starts = [s.offset for s in self.segments]
        if starts != sorted(starts) or starts[-1] > 0:
            raise ValueError("segment starts must increase and lie in the past (like -3h, then -25m)")
        if starts[0] < -MAX_HISTORY_SECONDS:
            raise ValueError("history starts at most 7 days back (-7d); Prometheus is backfilled with every sample")
        return self

    def history(self) -> ServiceHistory:
        starts = [s.offset for s in self.segments]
        ends = [*starts[1:], 1.0]  # the last reaches now; live traffic goes on
        return ServiceHistory(self.service, tuple(Segment(start, end, s.rps, s.error_ratio, s.p95_seconds)
                                                  for start, end, s in zip(starts, ends, self.segments, strict=True)),
                              noise=float(self.noise))


class ScenarioFile(_Table):
    """A scenario file as it is written (the format table in docs/drills.md)."""

    title: str
    description: str = ""
    namespace: str = "web3-marketplace-prod"
    truth: TruthTable
    parameters: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)
    marketplace: MarketplaceTable = MarketplaceTable()
    metrics: MetricsTable = MetricsTable()
    database: DatabaseTable = DatabaseTable()
    sessions: list[SessionTable] = Field(default_factory=list)
    traffic: list[TrafficTable] = Field(min_length=1, max_length=MAX_TRAFFIC)
    cluster: dict[str, Any]

    @field_validator("sessions", mode="before")
    @classmethod
    def _few_sessions(cls, sessions: Any) -> Any:
        if not isinstance(sessions, list) or len(sessions) > MAX_SESSIONS:
            raise ValueError(f"[[sessions]] must be a list of at most {MAX_SESSIONS} tables")
        return sessions

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, namespace: str) -> str:
        label_ok, allowed = irconfig.CHECKS["label"]
        if not label_ok(namespace):
            raise ValueError(f"namespace must be {allowed}")
        return namespace

    @model_validator(mode="after")
    def _unique_sessions(self) -> ScenarioFile:
        names = [s.name for s in self.sessions]
        if len(set(names)) != len(names):
            raise ValueError(f"session names must be unique: {names}")
        return self


# Every key a scenario file may hold, per table (the format table in docs/drills.md; a docs test keeps it so).
KEYS: dict[str, frozenset[str]] = {
    "": frozenset(ScenarioFile.model_fields), "truth": frozenset(TruthTable.model_fields),
    "truth.plan": frozenset(PlanTable.model_fields), "truth.findings": frozenset(FindingsTable.model_fields),
    "database": frozenset(DatabaseTable.model_fields), "marketplace": frozenset(MarketplaceTable.model_fields),
    "marketplace.endpoints": frozenset(EndpointTable.model_fields), "metrics": frozenset(MetricsTable.model_fields),
    "sessions": frozenset(SessionTable.model_fields), "traffic": frozenset(TrafficTable.model_fields),
    "segment": frozenset(SegmentTable.model_fields), **CLUSTER_KEYS,
}
_TABLE_NAMES = {"truth": "[truth]", "marketplace": "[marketplace]", "database": "[database]", "cluster": "[cluster]",
                "parameters": "[parameters]", "config": "[config]"}
_EXPECTED = {"bool": "true or false", "string": "a string", "int": "a whole number", "float": "a number",
             "list": "a list", "dict": "a table", "model": "a table"}


_LABELS = {"sessions": "[[sessions]]", "traffic": "[[traffic]]", "segments": "segment"}


def _submodel(model: Any, name: str) -> Any:
    """The model of field ``name`` of ``model`` (through ``list[...]`` and ``... | None``), or None."""
    field_info = model.model_fields.get(name) if isinstance(model, type) and issubclass(model, BaseModel) else None
    todo, seen = [getattr(field_info, "annotation", None)], []
    while todo:
        kind = todo.pop()
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            return kind
        seen.append(kind)
        todo += [a for a in getattr(kind, "__args__", ()) if a not in seen]
    return None


def _complaint(where: str, error: ValidationError) -> ScenarioError:
    """What pydantic found first (an unknown key before anything else), as one line: the file, the table
    (``[truth]``, ``[[traffic]] #1 segment 2``), the key, and what it must be."""
    errors = error.errors()
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc, kind = list(first["loc"]), first["type"]
    key = str(loc[-1]) if loc and not isinstance(loc[-1], int) else ""
    words: list[str] = []
    model: Any = ScenarioFile
    for part in loc[:-1] if key else loc:
        if isinstance(part, int):
            words[-1] = f"segment {part + 1}" if words[-1] == "segment" else f"{words[-1]} #{part + 1}"
            continue
        words.append(_LABELS.get(str(part), f"[{part}]"))
        model = _submodel(model, str(part))
    at = " ".join([where, *words])
    if kind == "extra_forbidden":
        valid = sorted(model.model_fields) if model is not None else []
        return ScenarioError(f"{at}: unknown key(s) {key}; valid: {', '.join(valid)}")
    if kind == "missing":
        return ScenarioError(f"{at}: missing {key}")
    if kind in ("value_error", "assertion_error"):
        return ScenarioError(f"{at}: {str(first['msg']).removeprefix('Value error, ')}")
    if kind.startswith(("greater_than", "less_than", "too_long", "too_short")):
        return ScenarioError(f"{at}: {key} {str(first['msg']).replace('Input should', 'must').replace('List should', 'must')}")
    expected = next((text for name, text in _EXPECTED.items() if kind.startswith(name)), None)
    if expected:
        return ScenarioError(f"{at}: {key} must be {expected}, not {first.get('input')!r}"[:300])
    return ScenarioError(f"{at}: {key}: {first['msg']}"[:300])


_AFTER: dict[str, Verdict] = {"recovered": True, "not-recovered": False, "unknown": UNKNOWN}


def _patterns(patterns: list[StepPattern] | list[FindingPattern]) -> tuple[dict[str, str], ...]:
    return tuple(p.model_dump(exclude_none=True) for p in patterns)


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A built-in scenario by name, or a scenario file by path."""
    builtin = scenarios()
    path = builtin.get(str(name_or_path)) or Path(name_or_path)
    if not path.is_file():
        raise ScenarioError(f"no scenario {str(name_or_path)!r}: use one of {', '.join(builtin)} "
                            "(irkit drill --list) or the path of a scenario file")
    data = irconfig.read_toml(path, ScenarioError, "name a scenario file (see the scenario format in docs/drills.md)")
    where = str(path)
    if isinstance(data.get("cluster"), dict):
        _check_cluster_size(data["cluster"], where)  # bound the counts before anything is built from them
    try:
        spec = ScenarioFile.model_validate(data)
    except ValidationError as exc:
        raise _complaint(where, exc) from exc
    names = [s.name for s in spec.sessions]
    t = spec.truth
    scenario = Scenario(
        name=path.stem, title=spec.title, description=spec.description,
        truth=Truth(t.real, t.severity, root=t.root.model_dump() if t.root else None,
                    mitigation=t.mitigation.model_dump() if t.mitigation else None, ongoing=t.ongoing,
                    recovered=t.recovered, first_three=tuple(f.model_dump() for f in t.first_three),
                    after_mitigation=_AFTER[t.after_mitigation],
                    plan_accept=_patterns(t.plan.accept), plan_forbid=_patterns(t.plan.forbid),
                    findings_accept=_patterns(t.findings.accept), findings_forbid=_patterns(t.findings.forbid),
                    no_cause=t.no_cause),
        traffic=tuple(h.history() for h in spec.traffic), cluster=spec.cluster,
        sessions=tuple(Session(s.name, tuple(s.statements), s.application, s.repeat,
                               _offset(s.every, "every") if s.every else None) for s in spec.sessions),
        backend_up=spec.marketplace.backend_up, redis=spec.marketplace.redis,
        recovers_when_sessions_end=spec.marketplace.recovers_when_sessions_end, namespace=spec.namespace,
        max_connections=spec.database.max_connections, database_down=spec.database.down,
        pg_stat_statements=spec.database.pg_stat_statements, orders=spec.database.orders,
        rotated_password=spec.database.rotated_password,
        redis_password=spec.marketplace.redis_password, redis_maxmemory=spec.marketplace.redis_maxmemory,
        external=spec.marketplace.external,
        redis_down=spec.marketplace.redis_down, deadlocks=spec.database.deadlocks,
        parameters=dict(spec.parameters), config=_relative_paths(dict(spec.config), path), path=path,
        status_format=spec.metrics.status_format,
    )
    for text in _truth_texts(scenario.truth):
        for ref in _SESSION_REF.findall(text):
            if ref not in names:
                raise ScenarioError(f"{where} [truth]: {{{ref}}} names no session; sessions: {', '.join(names)}")
    try:
        irconfig.to_toml(scenario.config)
        backend = scenario.settings.backend_deployment  # each value checked like irkit.toml's
        scenario = dataclasses.replace(scenario, endpoints=tuple(
            Endpoint(e.path, e.serves, e.workload or backend) for e in spec.marketplace.endpoints))
        runner.check_parameters(scenario.parameters, list(playbook.NUMBERS))
    except ConfigError as exc:
        raise ScenarioError(f"{where}: {exc}") from exc
    try:
        build_cluster(scenario.cluster, scenario.namespace)  # pure: catches a bad [cluster] before anything starts
    except (DrillError, KeyError, TypeError, ValueError) as exc:
        detail = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ScenarioError(f"{where} [cluster]: {detail}; see the scenario format in docs/drills.md") from exc
    return scenario


def _check_cluster_size(cluster: Mapping[str, Any], where: str) -> None:
    """Bound what a [cluster] table makes the emulator hold: counts come from the file, and a drill must
    not allocate without limit (a scenario's counts are input like any other)."""
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
            *(v for group in (truth.first_three, truth.plan_accept, truth.plan_forbid, truth.findings_accept,
                              truth.findings_forbid) for t in group for v in t.values())]
