"""The mitigation plan (playbook 3.1): findings turned into the playbook's actions, with the command to run.

Pure: each :class:`Mitigation` names its action (a kubectl-like verb), its target, why,
and the command a responder would paste, built as words and quoted for the shell
(:func:`shell`), so no name from a cluster, a config or a query can run as a command of
its own. SQL handed to ``psql -c`` takes integer pids only. Every target comes from the
findings and the configuration (:class:`PlanTargets`); nothing here changes anything.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from irkit.rules.kinds import Finding, Kind, rank

__all__ = ["ACTIONS", "Mitigation", "PlanTargets", "plan", "raised_quantity", "shell", "sql_literal"]

# Every action a plan can hold (kubectl-like verbs); scenario files are checked against it.
ACTIONS = ("terminate-backend", "cancel-query", "terminate-idle", "rollout-undo", "raise-memory-limit",
           "delete-pod", "rollout-restart", "set-env", "enable-circuit-breaker", "scale", "flushdb")


@dataclass(frozen=True)
class Mitigation:
    """One planned action: ``action`` (kubectl-like verb), ``target``, ``why``, ``command``, the ``finding`` it
    answers (``kind: subject``), its ``status`` (``planned`` until something applies it) and ``params``, what
    :mod:`irkit.actions` needs to carry it out (namespace, deployment, pid, replicas...)."""

    action: str
    target: str
    why: str
    command: str
    finding: str
    status: str = "planned"
    params: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "params": dict(self.params)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Mitigation:
        params = data.get("params")
        return cls(**{k: str(data.get(k, "")) for k in ("action", "target", "why", "command", "finding")},
                   status=str(data.get("status") or "planned"), params=dict(params) if isinstance(params, Mapping) else {})


@dataclass(frozen=True)
class PlanTargets:
    """What the plan needs of the configuration (see :meth:`from_config`)."""

    namespace: str = "web3-marketplace-prod"
    postgres: str = "postgres-primary"
    database: str = "web3marketplace"
    admin_user: str = "postgres"
    backend: str = "backend-deployment"
    memory_factor: float = 1.5
    scale_factor: float = 2.0
    max_replicas: int = 20
    circuit_breaker_url: str = "http://localhost:3000/admin/circuit-breaker/enable"
    backup_provider: str = "BLOCKCHAIN_PROVIDER=backup"
    upstream_timeout: str = "API_TIMEOUT=30000"

    @classmethod
    def from_config(cls, cfg: Any) -> PlanTargets:
        return cls(cfg.namespace, cfg.postgres_statefulset, cfg.pg_database, cfg.pg_admin_user,
                   cfg.backend_deployment, cfg.memory_limit_factor, cfg.scale_factor, cfg.max_replicas,
                   cfg.circuit_breaker_url, cfg.backup_provider_env, cfg.upstream_timeout_env)


def shell(*argv: object) -> str:
    """A command line a person pastes: every word quoted for a POSIX shell."""
    return shlex.join(str(arg) for arg in argv)


def sql_literal(text: str) -> str:
    """``text`` as a SQL string literal (quotes doubled), for SQL that is itself passed through a shell."""
    return "'" + text.replace("'", "''") + "'"


def _pid(value: Any) -> int | None:
    """A PostgreSQL backend pid from a finding's evidence; None when it is not a plain integer."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value).removeprefix("pid ").strip()
    return int(text) if text.isdigit() else None


_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_FACTOR = {None: 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def raised_quantity(limit: str, factor: float) -> str | None:
    """A Kubernetes memory quantity raised by ``factor``, in Mi (``"1Gi"``, 1.5 -> ``"1536Mi"``); None if
    ``limit`` is not a quantity irkit reads."""
    match = _QUANTITY.match(limit.strip())
    if not match:
        return None
    raw = float(match.group(1)) * _FACTOR[match.group(2)] * factor
    return f"{-(-int(raw) // 2**20)}Mi"  # rounded up to a whole Mi


def plan(findings: Iterable[Finding], targets: PlanTargets | None = None) -> list[Mitigation]:
    """The playbook's 3.1 mitigations for the findings, most urgent first, one per target."""
    t = targets or PlanTargets()
    steps: list[Mitigation] = []
    seen: set[tuple[str, str, str]] = set()

    def psql(statement: str) -> str:
        return shell("kubectl", "exec", "-n", t.namespace, f"statefulset/{t.postgres}", "--", "psql", "-U",
                     t.admin_user, "-d", t.database, "-c", statement)

    def add(action: str, target: str, why: str, command: str, finding: Finding, **params: Any) -> None:
        if (action, target, command) not in seen:  # one step per change: two set-env on one deployment stay
            seen.add((action, target, command))
            steps.append(Mitigation(action, target, why, command, f"{finding.kind.value}: {finding.subject}",
                                    params={"namespace": t.namespace, **params}))

    ranked = rank(findings)
    # The safe first step: a queued DDL statement is cancelled before the reader it waits on is terminated
    # (cancelling it releases every query queued behind it, and loses nothing anyone is waiting for).
    ranked.sort(key=lambda f: f.kind is not Kind.DDL_QUEUED)
    for f in ranked:
        ev = f.evidence
        if f.kind in (Kind.LOCK_ROOT, Kind.DEADLOCK):
            pid = _pid(ev.get("pid", f.subject) if f.kind is Kind.LOCK_ROOT else (ev.get("pids") or [None])[0])
            why = (f"it holds the lock {ev.get('blocked_count', '?')} sessions wait behind ({ev.get('state', '')})"
                   if f.kind is Kind.LOCK_ROOT else "breaks the lock cycle")
            if pid is not None:
                add("terminate-backend", f"pid {pid}", why, psql(f"SELECT pg_terminate_backend({pid});"), f, pid=pid,
                    reason="lock-root" if f.kind is Kind.LOCK_ROOT else "deadlock")
        elif f.kind is Kind.LONG_RUNNING_QUERY:
            pid = _pid(ev.get("pid", f.subject))
            if pid is not None:
                add("cancel-query", f"pid {pid}",
                    f"query running {float(ev.get('age_seconds') or 0):.0f} s saturates the database",
                    psql(f"SELECT pg_cancel_backend({pid});"), f, pid=pid, reason="long-running",
                    query=str(ev.get("query") or ""))
        elif f.kind is Kind.BAD_REVISION:
            dep = ev.get("deployment", f.subject)
            add("rollout-undo", f"deployment/{dep}",
                f"revision {ev.get('revision')} ({ev.get('image')}) deployed "
                f"{float(ev.get('age_minutes') or 0):.0f} min ago crashloops; "
                f"previous revision {ev.get('previous_revision')} was healthy",
                shell("kubectl", "rollout", "undo", f"deployment/{dep}", "-n", t.namespace), f, deployment=dep,
                from_revision=ev.get("revision"))
        elif f.kind is Kind.OOM_KILLED:
            dep, container, limit = ev.get("deployment", f.subject), ev.get("container", ""), ev.get("memory_limit", "")
            raised = raised_quantity(str(limit), t.memory_factor) if limit else None
            if raised is None:
                why = "containers are OOMKilled; their memory limit is not known: raise it by hand"
                command = shell("kubectl", "get", f"deployment/{dep}", "-n", t.namespace, "-o",
                                "jsonpath={.spec.template.spec.containers[*].resources.limits.memory}")
            else:
                why = f"containers are OOMKilled at their memory limit {limit}; raise it {t.memory_factor:g}x"
                command = shell("kubectl", "set", "resources", f"deployment/{dep}", "-n", t.namespace,
                                *(("-c", container) if container else ()), f"--limits=memory={raised}")
            add("raise-memory-limit", f"deployment/{dep}", why, command, f, deployment=dep, container=container,
                memory=raised or "")
        elif f.kind is Kind.DATASTORE_DOWN and ev.get("pod"):
            add("delete-pod", f"pod/{ev['pod']}", f"{f.subject} is down ({ev.get('failure')}): restart its pod "
                                                   "(the playbook's 'restart failed services'); read its logs first",
                shell("kubectl", "delete", "pod", ev["pod"], "-n", t.namespace), f, pod=ev["pod"])
        elif f.kind in (Kind.CRASHLOOP, Kind.IMAGE_PULL, Kind.PODS_NOT_READY):
            add("delete-pod", f"pod/{f.subject}", f"{f.kind.value}: restart it if it is not a bad revision",
                shell("kubectl", "delete", "pod", f.subject, "-n", t.namespace), f, pod=f.subject)
        elif f.kind is Kind.DDL_QUEUED:
            pid = _pid(ev.get("pid", f.subject))
            if pid is not None:
                add("cancel-query", f"pid {pid}",
                    f"the queued DDL holds {ev.get('queued_behind', '?')} session(s) behind it; cancel it, then "
                    "deal with the session it waits on", psql(f"SELECT pg_cancel_backend({pid});"), f, pid=pid,
                    reason="ddl-queued", query=str(ev.get("query") or ""))
        elif f.kind is Kind.DB_SATURATION:
            app, deployment = str(ev.get("application") or ""), str(ev.get("deployment") or "")
            if app and not deployment:
                add("terminate-idle", f"application {app}",
                    f"{ev.get('idle_sessions')} idle connections of '{app}' fill the pool",
                    psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE state = 'idle' AND "  # noqa: S608
                         f"application_name = {sql_literal(app)};"), f, application=app)  # a quoted literal
            else:
                target = deployment or t.backend
                add("rollout-restart", f"deployment/{target}", "restart its database connections",
                    shell("kubectl", "rollout", "restart", f"deployment/{target}", "-n", t.namespace), f,
                    deployment=target)
        elif f.kind is Kind.PROVIDER_FAILING:
            dep = ev.get("deployment", f.subject)
            add("set-env", f"deployment/{dep}", f"switch to the backup blockchain provider ({t.backup_provider})",
                shell("kubectl", "set", "env", f"deployment/{dep}", t.backup_provider, "-n", t.namespace), f,
                deployment=dep, env=t.backup_provider)
        elif f.kind is Kind.UPSTREAM_TIMEOUT:
            dep = ev.get("deployment", f.subject)
            add("enable-circuit-breaker", f"deployment/{dep}",
                "stop waiting on the upstream that times out: open the circuit breaker",
                shell("kubectl", "exec", "-n", t.namespace, f"deployment/{dep}", "--", "curl", "-fsS", "-X", "POST",
                      t.circuit_breaker_url), f, deployment=dep, url=t.circuit_breaker_url)
            add("set-env", f"deployment/{dep}", f"raise the upstream timeout while it recovers ({t.upstream_timeout})",
                shell("kubectl", "set", "env", f"deployment/{dep}", t.upstream_timeout, "-n", t.namespace), f,
                deployment=dep, env=t.upstream_timeout)
        elif f.kind is Kind.OVERLOAD and ev.get("deployment"):
            dep, replicas = str(ev["deployment"]), int(ev.get("replicas") or 0)
            wanted = min(t.max_replicas, max(replicas + 1, math.ceil(replicas * t.scale_factor)))
            if wanted > replicas:
                add("scale", f"deployment/{dep}", f"traffic is {float(ev.get('impact') or 0):.1f}x its baseline: "
                                                  f"scale from {replicas} to {wanted} replicas",
                    shell("kubectl", "scale", f"deployment/{dep}", f"--replicas={wanted}", "-n", t.namespace), f,
                    deployment=dep, replicas=wanted)
    return steps
