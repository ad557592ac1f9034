"""The kinds of finding, as one table: their order (causes before symptoms) and whether each is a cause.

Ranking, the plan, the post-mortem and the drill's ground truth all read this table; a new
kind of finding is one row. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["KINDS", "Finding", "Kind", "KindInfo", "rank"]


class Kind(StrEnum):
    """What a finding is about; the value is the word in records, summaries and scenario files."""

    DATASTORE_DOWN = "datastore-down"
    LOCK_ROOT = "lock-root"
    DEADLOCK = "deadlock"
    BAD_REVISION = "bad-revision"
    DDL_QUEUED = "ddl-queued"
    LONG_RUNNING_QUERY = "long-running-query"
    CRASHLOOP = "crashloop"
    OOM_KILLED = "oom-killed"
    IMAGE_PULL = "image-pull"
    DB_SATURATION = "db-saturation"
    PROVIDER_FAILING = "provider-failing"
    UPSTREAM_TIMEOUT = "upstream-timeout"
    OVERLOAD = "overload"
    PODS_NOT_READY = "pods-not-ready"
    UNSCHEDULABLE = "unschedulable"
    ENDPOINT_DOWN = "endpoint-down"
    ERROR_SPIKE = "error-spike"
    SLOW_LATENCY = "slow-latency"
    SOURCE_UNAVAILABLE = "source-unavailable"


@dataclass(frozen=True)
class KindInfo:
    order: int  # lower ranks first
    cause: bool  # explains other findings (a lock root) rather than shows them (an error spike)
    doc: str


KINDS: dict[Kind, KindInfo] = {
    Kind.DATASTORE_DOWN: KindInfo(8, True, "the database or the cache itself is down: its pod fails"),
    Kind.LOCK_ROOT: KindInfo(10, True, "a session holds a lock others wait behind"),
    Kind.DEADLOCK: KindInfo(11, True, "sessions wait on each other"),
    Kind.BAD_REVISION: KindInfo(12, True, "a recently deployed revision fails, however it fails"),
    Kind.DDL_QUEUED: KindInfo(13, True, "a DDL statement waits for an exclusive lock and every new query queues "
                                        "behind it"),
    Kind.LONG_RUNNING_QUERY: KindInfo(14, True, "an active query has run longer than the bound"),
    Kind.CRASHLOOP: KindInfo(20, True, "a pod restarts over and over (no recent deploy explains it)"),
    Kind.OOM_KILLED: KindInfo(22, True, "a container was killed at its memory limit"),
    Kind.IMAGE_PULL: KindInfo(24, True, "a pod cannot pull its image"),
    Kind.DB_SATURATION: KindInfo(26, True, "the database is close to refusing connections"),
    Kind.PROVIDER_FAILING: KindInfo(27, True, "the blockchain provider fails (the logs say so) while requests fail"),
    Kind.UPSTREAM_TIMEOUT: KindInfo(28, True, "calls to an upstream API time out (the logs say so) while requests "
                                              "fail or slow down"),
    Kind.OVERLOAD: KindInfo(29, True, "traffic far above its baseline while requests slow down or fail"),
    Kind.UNSCHEDULABLE: KindInfo(30, True, "pods cannot be scheduled: the cluster lacks cpu or memory"),
    Kind.PODS_NOT_READY: KindInfo(31, True, "a pod is not ready"),
    Kind.ENDPOINT_DOWN: KindInfo(40, False, "a health endpoint fails"),
    Kind.ERROR_SPIKE: KindInfo(50, False, "a service's error ratio is over the SEV-3 threshold"),
    Kind.SLOW_LATENCY: KindInfo(52, False, "a service's p95 latency is over the SEV-2 threshold"),
    Kind.SOURCE_UNAVAILABLE: KindInfo(90, False, "a source could not be asked: a signal is missing"),
}


@dataclass(frozen=True)
class Finding:
    """One thing the investigation established: ``kind``, ``subject`` (what it is about), ``detail`` (for
    people) and ``evidence`` (the numbers behind it; ``impact`` orders findings of one kind)."""

    kind: Kind
    subject: str
    detail: str
    evidence: Mapping[str, Any] = field(default_factory=dict)

    @property
    def order(self) -> int:
        return KINDS[self.kind].order

    @property
    def is_cause(self) -> bool:
        return KINDS[self.kind].cause

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "subject": self.subject, "detail": self.detail,
                "evidence": dict(self.evidence)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        return cls(Kind(data["kind"]), str(data["subject"]), str(data.get("detail", "")),
                   dict(data.get("evidence") or {}))


def rank(findings: Iterable[Finding]) -> list[Finding]:
    """Causes before symptoms; within a kind, the one with more impact first."""
    return sorted(findings, key=lambda f: (f.order, -float(f.evidence.get("impact", 0) or 0), f.subject))
