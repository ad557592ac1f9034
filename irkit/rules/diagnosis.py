"""Diagnosis (playbook 2.x): what the investigation observed, turned into ranked findings.

Pure: :func:`diagnose` takes :class:`Observations` (plain rows, as the phase recorded
them) and the configuration, and returns findings, causes before symptoms. Importing it
loads no client. Each rule below is one paragraph; ``tests/rules/test_diagnosis.py``
holds a decision table with a row per rule and per boundary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from irkit.rules.kinds import Finding, Kind, rank

__all__ = ["RECENT_DEPLOY_MINUTES", "Observations", "Targets", "diagnose"]

Row = Mapping[str, Any]
RECENT_DEPLOY_MINUTES = 24 * 60  # a revision deployed within a day that crashloops is the suspect


@dataclass(frozen=True)
class Targets:
    """What diagnosis needs of the configuration: names and thresholds."""

    deployments: tuple[str, ...] = ("backend-deployment", "frontend-deployment")
    statefulsets: tuple[str, ...] = ("postgres-primary", "redis-master")
    containers: Mapping[str, str] = field(default_factory=lambda: {"backend-deployment": "backend",
                                                                   "frontend-deployment": "frontend"})
    error_ratio_moderate: float = 0.05
    latency_p95_slow_seconds: float = 5.0
    saturation_ratio: float = 0.9

    @classmethod
    def from_config(cls, cfg: Any) -> Targets:
        return cls(deployments=tuple(cfg.deployments), statefulsets=(cfg.postgres_statefulset, cfg.redis_statefulset),
                   containers={cfg.backend_deployment: cfg.backend_container,
                               cfg.frontend_deployment: cfg.frontend_container},
                   error_ratio_moderate=cfg.error_ratio_moderate,
                   latency_p95_slow_seconds=cfg.latency_p95_slow_seconds,
                   saturation_ratio=cfg.pg_saturation_ratio)


@dataclass(frozen=True)
class Observations:
    """What phase 2 saw, as the rows it recorded (see the README's record schema for the columns)."""

    lock_roots: Sequence[Row] = ()
    lock_cycles: Sequence[Sequence[int]] = ()
    long_running: Sequence[Row] = ()
    saturation: Row | None = None
    unhealthy_pods: Sequence[Row] = ()
    rollout_history: Sequence[Row] = ()
    error_ratio_now: Sequence[Row] = ()  # service, error_ratio
    latency_p95_now: Sequence[Row] = ()  # service, seconds
    endpoints: Sequence[Row] = ()
    problems: Sequence[Row] = ()  # step, error: what could not be asked
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


def diagnose(obs: Observations, targets: Targets) -> list[Finding]:
    """Every finding the observations support, ranked: causes first."""
    found = [*_locks(obs), *_queries(obs), *_saturation(obs, targets), *_pods(obs, targets),
             *_symptoms(obs, targets)]
    found += [Finding(Kind.SOURCE_UNAVAILABLE, p["step"], p["error"]) for p in obs.problems]
    return rank(found)


def _locks(obs: Observations) -> list[Finding]:
    # A lock root blocks others; the more sessions behind it, the higher it ranks.
    out = [Finding(Kind.LOCK_ROOT, f"pid {root['pid']}",
                   f"{root.get('state')} session blocks {root['blocked_count']} session(s): "
                   f"{(root.get('query') or '')[:120]}",
                   {"pid": root["pid"], "blocked_count": root["blocked_count"], "state": root.get("state"),
                    "impact": root["blocked_count"]})
           for root in obs.lock_roots]
    out += [Finding(Kind.DEADLOCK, "pids " + ",".join(map(str, cycle)), "sessions wait on each other",
                    {"pids": list(cycle)}) for cycle in obs.lock_cycles]
    return out


def _queries(obs: Observations) -> list[Finding]:
    # The rows are already past the notebook's older_than_seconds bound; a query waiting on a lock is a
    # waiter, not a cause of its own.
    return [Finding(Kind.LONG_RUNNING_QUERY, f"pid {row['pid']}",
                    f"active for {row['age_seconds']:.0f} s: {(row.get('query') or '')[:120]}",
                    {"pid": row["pid"], "age_seconds": row["age_seconds"], "impact": row["age_seconds"]})
            for row in obs.long_running
            if row.get("state") == "active" and (row.get("wait_event_type") or "") != "Lock"]


def _saturation(obs: Observations, targets: Targets) -> list[Finding]:
    sat = obs.saturation
    if not sat or not sat.get("max_connections"):
        return []
    ratio = sat["sessions"] / max(1, sat["max_connections"] - sat.get("reserved", 0))
    if ratio < targets.saturation_ratio:
        return []
    return [Finding(Kind.DB_SATURATION, "postgres", f"{sat['sessions']} of {sat['max_connections']} connections "
                                                    "in use", {"impact": ratio})]


def _workload_of(pod: Row, targets: Targets) -> str:
    name = str(pod["pod"])
    for workload in (*targets.deployments, *targets.statefulsets):
        if name.startswith(workload + "-"):
            return workload
    return str(pod.get("owner") or name)


def _age_minutes(created: Any, now: datetime) -> float:
    moment = created if isinstance(created, datetime) else datetime.fromisoformat(str(created))
    return (now - moment).total_seconds() / 60


def _pods(obs: Observations, targets: Targets) -> list[Finding]:
    out: list[Finding] = []
    crashing: dict[str, list[Row]] = {}
    for pod in obs.unhealthy_pods:
        reason = pod.get("waiting_reason") or ""
        if reason == "CrashLoopBackOff":
            crashing.setdefault(pod.get("owner") or "", []).append(pod)
        elif pod.get("last_termination_reason") == "OOMKilled":
            workload = _workload_of(pod, targets)
            out.append(Finding(Kind.OOM_KILLED, workload, f"pod {pod['pod']} was OOMKilled ({pod['restarts']} restarts)",
                               {"deployment": workload, "pod": pod["pod"], "impact": pod["restarts"],
                                "container": targets.containers.get(workload, ""),
                                "memory_limit": pod.get("memory_limit") or ""}))
        elif reason in ("ImagePullBackOff", "ErrImagePull"):
            out.append(Finding(Kind.IMAGE_PULL, pod["pod"], f"cannot pull the image ({reason})"))
        elif not pod.get("all_ready"):
            out.append(Finding(Kind.PODS_NOT_READY, pod["pod"], f"{pod.get('phase')} {reason}".strip()))
    for group in crashing.values():
        # A crashloop that started with a recent revision is that revision's fault: roll it back.
        workload = _workload_of(group[0], targets)
        history = [h for h in obs.rollout_history if h["deployment"] == workload]
        current = [h for h in history if h.get("current")]
        previous = [h for h in history if not h.get("current")]
        age = _age_minutes(current[-1]["created"], obs.now) if current else None
        if current and previous and age is not None and age < RECENT_DEPLOY_MINUTES:
            cur = current[-1]
            out.append(Finding(Kind.BAD_REVISION, workload,
                               f"revision {cur['revision']} ({cur['images']}) crashloops in {len(group)} pod(s) since "
                               f"its deploy {age:.0f} min ago",
                               {"deployment": workload, "revision": cur["revision"], "image": cur["images"],
                                "previous_revision": previous[-1]["revision"], "age_minutes": age,
                                "impact": len(group)}))
        else:
            out += [Finding(Kind.CRASHLOOP, pod["pod"], f"CrashLoopBackOff, {pod['restarts']} restarts")
                    for pod in group]
    return out


def _symptoms(obs: Observations, targets: Targets) -> list[Finding]:
    out = []
    for row in obs.error_ratio_now:
        ratio = row.get("error_ratio")
        if ratio is not None and ratio >= targets.error_ratio_moderate:
            out.append(Finding(Kind.ERROR_SPIKE, row.get("service", "all"), f"{ratio:.1%} of requests fail",
                               {"impact": ratio}))
    for row in obs.latency_p95_now:
        seconds = row.get("seconds")
        if seconds is not None and seconds > targets.latency_p95_slow_seconds:
            out.append(Finding(Kind.SLOW_LATENCY, row.get("service", "all"), f"p95 {seconds:.1f} s",
                               {"impact": seconds}))
    for ep in obs.endpoints:
        if not ep.get("ok"):
            out.append(Finding(Kind.ENDPOINT_DOWN, ep["url"], ep.get("error") or f"HTTP {ep.get('status')}"))
    return out
