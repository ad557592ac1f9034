"""The kinds of finding, as one table: their order (causes before symptoms), whether each is a cause, and the
shape of its evidence.

Ranking, the plan, the post-mortem and the drill's ground truth all read this table; a new
kind of finding is one row and, if it carries numbers of its own, one evidence class. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, Field, TypeAdapter
from pydantic.dataclasses import dataclass as validated

__all__ = ["KINDS", "BadRevision", "BrokenSpec", "Crashloop", "CredentialsRejected", "DatastoreRefusing", "DatastoreDown", "DbSaturation", "Deadlock", "DdlQueued",
           "Dependency", "Evidence", "Finding", "Kind", "KindInfo", "LockRoot", "LongRunningQuery", "MissingIndex", "OomKilled",
           "Overload", "QuotaExceeded", "ScheduledActor", "ServiceNoEndpoints", "Unschedulable", "VolumeFull",
           "rank"]


class Kind(StrEnum):
    """What a finding is about; the value is the word in records, summaries and scenario files."""

    DATASTORE_DOWN = "datastore-down"
    LOCK_ROOT = "lock-root"
    DEADLOCK = "deadlock"
    SCHEDULED_ACTOR = "scheduled-actor"
    BAD_REVISION = "bad-revision"
    CREDENTIALS_REJECTED = "credentials-rejected"
    DATASTORE_REFUSING = "datastore-refusing"
    DDL_QUEUED = "ddl-queued"
    LONG_RUNNING_QUERY = "long-running-query"
    MISSING_INDEX = "missing-index"
    BROKEN_SPEC = "broken-spec"
    CRASHLOOP = "crashloop"
    OOM_KILLED = "oom-killed"
    IMAGE_PULL = "image-pull"
    DB_SATURATION = "db-saturation"
    PROVIDER_FAILING = "provider-failing"
    UPSTREAM_TIMEOUT = "upstream-timeout"
    OVERLOAD = "overload"
    SERVICE_NO_ENDPOINTS = "service-no-endpoints"
    QUOTA_EXCEEDED = "quota-exceeded"
    VOLUME_FULL = "volume-full"
    PODS_NOT_READY = "pods-not-ready"
    UNSCHEDULABLE = "unschedulable"
    ENDPOINT_DOWN = "endpoint-down"
    ERROR_SPIKE = "error-spike"
    SLOW_LATENCY = "slow-latency"
    SOURCE_UNAVAILABLE = "source-unavailable"


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):  # True is an int to Python, never a backend pid
        raise ValueError("a pid is an integer, not a boolean")
    return value


Pid = Annotated[int, BeforeValidator(_not_bool), Field(gt=0)]
_RECORD = ConfigDict(extra="ignore")  # a record written by an older irkit may carry keys this one dropped


@validated(frozen=True, config=_RECORD)
class Evidence:
    """The numbers behind a finding; ``impact`` orders findings of one kind. Validated where it is made and where
    it is read back from a record, so the plan never quotes a pid that is not an integer."""

    impact: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@validated(frozen=True, config=_RECORD)
class LockRoot(Evidence):
    pid: Pid | None = None
    blocked_count: int = 0
    state: str = ""
    query: str = ""


@validated(frozen=True, config=_RECORD)
class Deadlock(Evidence):
    pids: tuple[Pid, ...] = ()  # a cycle still waiting (empty when PostgreSQL broke it already)
    queries: tuple[str, ...] = ()  # from the database's log, when PostgreSQL broke it
    count: int = 0
    deadlocks: int | None = None  # pg_stat_database.deadlocks


@validated(frozen=True, config=_RECORD)
class DdlQueued(Evidence):
    pid: Pid | None = None
    blocked_by: int | None = None
    queued_behind: int = 0
    query: str = ""


@validated(frozen=True, config=_RECORD)
class LongRunningQuery(Evidence):
    pid: Pid | None = None
    age_seconds: float = 0.0
    query: str = ""


@validated(frozen=True, config=_RECORD)
class MissingIndex(Evidence):
    table: str = ""
    seq_scans: int = 0
    rows_per_scan: float = 0.0
    live_tuples: int = 0
    statement: str = ""  # the heaviest statement that reads the table (pg_stat_statements), when known
    mean_ms: float | None = None
    column: str = ""  # the column it filters on, when its text says


@validated(frozen=True, config=_RECORD)
class DatastoreDown(Evidence):
    statefulset: str = ""
    pod: str = ""
    failure: str = ""


@validated(frozen=True, config=_RECORD)
class BadRevision(Evidence):
    deployment: str = ""
    revision: int | None = None
    image: str = ""
    previous_revision: int | None = None
    age_minutes: float = 0.0
    failures: tuple[str, ...] = ()


@validated(frozen=True, config=_RECORD)
class ScheduledActor(Evidence):
    cronjob: str = ""
    deployment: str = ""  # the Deployment whose pod template it writes
    schedule: str = ""
    manager: str = ""  # the field manager that last wrote the template (managedFields)
    written_minutes: float | None = None  # how long ago the template was last written
    command: str = ""  # what the CronJob runs


@validated(frozen=True, config=_RECORD)
class OomKilled(Evidence):
    deployment: str = ""
    pod: str = ""
    container: str = ""
    memory_limit: str = ""


@validated(frozen=True, config=_RECORD)
class Crashloop(Evidence):
    deployment: str = ""
    log: str = ""  # the last line it logged that says what went wrong


@validated(frozen=True, config=_RECORD)
class BrokenSpec(Evidence):
    deployment: str = ""  # the workload whose pods cannot run
    pods: tuple[str, ...] = ()
    line: str = ""  # the explaining line: the runtime's, the kubelet's or the application's own words
    fix: str = ""  # what to change (the command, the image or its pull secret, a Secret, a setting)


@validated(frozen=True, config=_RECORD)
class DbSaturation(Evidence):
    application: str = ""  # the application whose idle connections fill the pool, when one does
    idle_sessions: int = 0  # its idle sessions, those idle in a transaction included
    idle_in_transaction: int = 0  # of them, idle inside an open transaction (it holds the connection and its locks)
    deployment: str = ""  # its deployment, when its name says which


@validated(frozen=True, config=_RECORD)
class Dependency(Evidence):
    deployment: str = ""  # whose logs report the provider failing or the upstream timing out


@validated(frozen=True, config=_RECORD)
class CredentialsRejected(Evidence):
    deployment: str = ""  # whose logs carry the database's refusal
    user: str = ""  # the role PostgreSQL names
    secret: str = ""  # a Secret written since the incident began, when there is one
    changed_minutes: float | None = None
    manager: str = ""  # who wrote it (managedFields)
    line: str = ""  # the explaining log line


@validated(frozen=True, config=_RECORD)
class DatastoreRefusing(Evidence):
    statefulset: str = ""  # the cache whose replies the logs carry
    reply: str = ""  # NOAUTH, WRONGPASS, OOM, READONLY, MISCONF: the error prefix Redis answered
    line: str = ""  # the explaining log line


@validated(frozen=True, config=_RECORD)
class ServiceNoEndpoints(Evidence):
    service: str = ""
    deployment: str = ""  # the workload it selects, whose pods are ready
    target_port: str = ""
    ready_pods: int = 0


@validated(frozen=True, config=_RECORD)
class QuotaExceeded(Evidence):
    deployment: str = ""
    quota: str = ""
    requested: str = ""
    used: str = ""
    limited: str = ""


@validated(frozen=True, config=_RECORD)
class VolumeFull(Evidence):
    statefulset: str = ""  # the datastore (or workload) whose disk is full
    pod: str = ""
    line: str = ""  # the explaining line: No space left on device, as the software printed it


@validated(frozen=True, config=_RECORD)
class Overload(Evidence):
    deployment: str = ""
    replicas: int = 0
    rps_now: float = 0.0
    rps_baseline: float = 0.0


@validated(frozen=True, config=_RECORD)
class Unschedulable(Evidence):
    pods: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class KindInfo:
    order: int  # lower ranks first
    cause: bool  # explains other findings (a lock root) rather than shows them (an error spike)
    doc: str
    evidence: type[Evidence] = Evidence


KINDS: dict[Kind, KindInfo] = {
    Kind.DATASTORE_DOWN: KindInfo(8, True, "the database or the cache itself is down: its pod fails", DatastoreDown),
    Kind.LOCK_ROOT: KindInfo(10, True, "a session holds a lock others wait behind", LockRoot),
    Kind.DEADLOCK: KindInfo(11, True, "sessions wait on each other", Deadlock),
    Kind.SCHEDULED_ACTOR: KindInfo(12, True, "a CronJob writes the failing revision's pod template (managedFields "
                                             "names it, or its command names the Deployment and it ran just before "
                                             "the write): a rollback lasts until it runs again", ScheduledActor),
    Kind.BAD_REVISION: KindInfo(13, True, "a recently deployed revision fails, however it fails", BadRevision),
    Kind.MISSING_INDEX: KindInfo(30, True, "a big table read whole by sequential scans, again and again, while "
                                           "requests slow down: a query without its index (creating one is an "
                                           "action item, never a step)", MissingIndex),
    Kind.CREDENTIALS_REJECTED: KindInfo(16, True, "PostgreSQL refuses the application's password (a rotated "
                                                 "Secret the pods still hold the old value of)", CredentialsRejected),
    Kind.DATASTORE_REFUSING: KindInfo(9, True, "the cache answers but refuses the application's commands "
                                               "(Redis's NOAUTH, WRONGPASS, OOM, READONLY, MISCONF replies)",
                                      DatastoreRefusing),
    Kind.DDL_QUEUED: KindInfo(14, True, "a DDL statement waits for an exclusive lock and every new query queues "
                                        "behind it", DdlQueued),
    Kind.LONG_RUNNING_QUERY: KindInfo(15, True, "an active query has run longer than the bound", LongRunningQuery),
    Kind.BROKEN_SPEC: KindInfo(19, True, "pods cannot run for a reason in their own spec or image (a command that "
                                         "cannot start, an image they may not pull, a Secret or setting they "
                                         "lack): a new pod fails the same way, so no restart is planned",
                               BrokenSpec),
    Kind.CRASHLOOP: KindInfo(20, True, "a pod restarts over and over (no recent deploy explains it)", Crashloop),
    Kind.OOM_KILLED: KindInfo(22, True, "a container was killed at its memory limit", OomKilled),
    Kind.IMAGE_PULL: KindInfo(24, True, "a pod cannot pull its image"),
    Kind.DB_SATURATION: KindInfo(26, True, "the database is close to refusing connections", DbSaturation),
    Kind.PROVIDER_FAILING: KindInfo(27, True, "the blockchain provider fails (the logs say so) while requests fail",
                                    Dependency),
    Kind.UPSTREAM_TIMEOUT: KindInfo(28, True, "calls to an upstream API time out (the logs say so) while requests "
                                              "fail or slow down", Dependency),
    Kind.OVERLOAD: KindInfo(29, True, "traffic far above its baseline while requests slow down or fail", Overload),
    Kind.VOLUME_FULL: KindInfo(7, True, "a datastore's disk is full (No space left on device, as it printed it): a "
                                        "restart frees nothing, so none is planned; a person grows the volume",
                               VolumeFull),
    Kind.SERVICE_NO_ENDPOINTS: KindInfo(25, True, "a Service selects ready pods but lists none of them (its targetPort "
                                                  "matches no port their containers declare): it routes nothing",
                                        ServiceNoEndpoints),
    Kind.QUOTA_EXCEEDED: KindInfo(32, True, "a ResourceQuota refuses a workload's new pods (the API server's "
                                            "'exceeded quota' in the controller's FailedCreate event)",
                                  QuotaExceeded),
    Kind.UNSCHEDULABLE: KindInfo(31, True, "pods cannot be scheduled: the scheduler says why (a resource no node "
                                              "has free, a GPU among them; a taint; a node selector; a volume's zone)",
                                 Unschedulable),
    Kind.PODS_NOT_READY: KindInfo(33, True, "a pod is not ready"),
    Kind.ENDPOINT_DOWN: KindInfo(40, False, "a health endpoint fails"),
    Kind.ERROR_SPIKE: KindInfo(50, False, "a service's error ratio is over the SEV-3 threshold"),
    Kind.SLOW_LATENCY: KindInfo(52, False, "a service's p95 latency is over the SEV-2 threshold"),
    Kind.SOURCE_UNAVAILABLE: KindInfo(90, False, "a source could not be asked: a signal is missing"),
}


@dataclasses.dataclass(frozen=True)
class Finding:
    """One thing the investigation established: ``kind``, ``subject`` (what it is about), ``detail`` (for
    people) and ``evidence`` (the numbers behind it, of the kind's evidence class; the class's defaults when
    none is given)."""

    kind: Kind
    subject: str
    detail: str
    evidence: Evidence = None  # type: ignore[assignment]  # filled in by __post_init__

    def __post_init__(self) -> None:
        wanted = KINDS[self.kind].evidence
        if self.evidence is None:
            object.__setattr__(self, "evidence", wanted())
        elif type(self.evidence) is not wanted:
            raise TypeError(f"a {self.kind.value} finding carries {wanted.__name__} evidence, "
                            f"not {type(self.evidence).__name__}")

    @property
    def order(self) -> int:
        return KINDS[self.kind].order

    @property
    def is_cause(self) -> bool:
        return KINDS[self.kind].cause

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "subject": self.subject, "detail": self.detail,
                "evidence": self.evidence.as_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """A finding read back from a record; ValueError when its kind or evidence is not one irkit writes."""
        kind = Kind(data["kind"])
        evidence = _adapter(KINDS[kind].evidence).validate_python(dict(data.get("evidence") or {}))
        return cls(kind, str(data["subject"]), str(data.get("detail", "")), evidence)


_ADAPTERS: dict[type[Evidence], TypeAdapter[Any]] = {}


def _adapter(cls: type[Evidence]) -> TypeAdapter[Any]:
    if cls not in _ADAPTERS:
        _ADAPTERS[cls] = TypeAdapter(cls)
    return _ADAPTERS[cls]


def rank(findings: Iterable[Finding]) -> list[Finding]:
    """Causes before symptoms; within a kind, the one with more impact first."""
    return sorted(findings, key=lambda f: (f.order, -f.evidence.impact, f.subject))
