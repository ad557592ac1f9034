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

from irkit import playbook
from irkit.config import DEFAULTS, Config
from irkit.rules import kinds
from irkit.rules.kinds import Finding, Kind, rank

__all__ = ["ACTIONS", "Mitigation", "PlanTargets", "plan", "raised_quantity", "shell", "sql_literal"]

# Every action a plan can hold (kubectl-like verbs): the playbook's table; scenario files are checked against it.
ACTIONS = tuple(playbook.ACTIONS)


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

    namespace: str = DEFAULTS.namespace
    postgres: str = DEFAULTS.postgres_statefulset
    database: str = DEFAULTS.pg_database
    admin_user: str = DEFAULTS.pg_admin_user
    backend: str = DEFAULTS.backend_deployment
    memory_factor: float = DEFAULTS.memory_limit_factor
    scale_factor: float = DEFAULTS.scale_factor
    max_replicas: int = DEFAULTS.max_replicas
    circuit_breaker_url: str = DEFAULTS.circuit_breaker_url
    backup_provider: str = DEFAULTS.backup_provider_env
    upstream_timeout: str = DEFAULTS.upstream_timeout_env
    idle_transaction_seconds: float = DEFAULTS.pg_idle_transaction_seconds

    @classmethod
    def from_config(cls, cfg: Config) -> PlanTargets:
        return cls(cfg.namespace, cfg.postgres_statefulset, cfg.pg_database, cfg.pg_admin_user,
                   cfg.backend_deployment, cfg.memory_limit_factor, cfg.scale_factor, cfg.max_replicas,
                   cfg.circuit_breaker_url, cfg.backup_provider_env, cfg.upstream_timeout_env,
                   cfg.pg_idle_transaction_seconds)


def shell(*argv: object) -> str:
    """A command line a person pastes: every word quoted for a POSIX shell."""
    return shlex.join(str(arg) for arg in argv)


def sql_literal(text: str) -> str:
    """``text`` as a SQL string literal (quotes doubled), for SQL that is itself passed through a shell. With a
    backslash in it, an escape string (``E'...'``, backslashes doubled): read the same whatever the server's
    ``standard_conforming_strings`` (off, a plain literal's backslash would escape the closing quote)."""
    if "\\" in text:
        return "E'" + text.replace("\\", "\\\\").replace("'", "''") + "'"
    return "'" + text.replace("'", "''") + "'"


def _pid(subject: str) -> int | None:
    """A PostgreSQL backend pid from a finding's subject (``pid 42``); None when it is not a plain integer."""
    text = subject.removeprefix("pid ").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


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
    seen: set[tuple[Any, ...]] = set()

    def psql(statement: str) -> str:
        return shell("kubectl", "exec", "-n", t.namespace, f"statefulset/{t.postgres}", "--", "psql", "-U",
                     t.admin_user, "-d", t.database, "-c", statement)

    def add(action: str, target: str, why: str, command: str, finding: Finding, **params: Any) -> None:
        # One step per change (two set-env on one deployment stay), and one per database session: a backend
        # the plan already terminates or cancels needs no second step (a cancel after a terminate finds no one).
        session = params.get("pid") if action in ("terminate-backend", "cancel-query") else None
        if (action, target, command) not in seen and (session is None or ("pid", session) not in seen):
            seen.add((action, target, command))
            if session is not None:
                seen.add(("pid", session))
            steps.append(Mitigation(action, target, why, command, f"{finding.kind.value}: {finding.subject}",
                                    params={"namespace": t.namespace, **params}))

    ranked = rank(findings)
    # The safe first step: a queued DDL statement is cancelled before the reader it waits on is terminated
    # (cancelling it releases every query queued behind it, and loses nothing anyone is waiting for).
    ranked.sort(key=lambda f: f.kind is not Kind.DDL_QUEUED)
    for f in ranked:
        match f.evidence:
            case kinds.LockRoot(pid=pid, blocked_count=behind, state=state):
                pid = pid or _pid(f.subject)
                if pid is not None:
                    add("terminate-backend", f"pid {pid}",
                        f"it holds the lock {behind or '?'} sessions wait behind ({state})",
                        psql(f"SELECT pg_terminate_backend({pid});"), f, pid=pid, reason="lock-root")
            case kinds.Deadlock(pids=pids) if pids:
                add("terminate-backend", f"pid {pids[0]}", "breaks the lock cycle",
                    psql(f"SELECT pg_terminate_backend({pids[0]});"), f, pid=pids[0], reason="deadlock")
            case kinds.LongRunningQuery(pid=pid, age_seconds=age, query=query):
                pid = pid or _pid(f.subject)
                if pid is not None:
                    add("cancel-query", f"pid {pid}", f"query running {age:.0f} s saturates the database",
                        psql(f"SELECT pg_cancel_backend({pid});"), f, pid=pid, reason="long-running", query=query)
            case kinds.ScheduledActor(cronjob=cronjob, deployment=dep, schedule=schedule) if cronjob:
                add("suspend-cronjob", f"cronjob/{cronjob}",
                    f"it writes deployment/{dep}'s failing template ({schedule}): suspend it before rolling back, "
                    "or it puts the change back", shell("kubectl", "patch", f"cronjob/{cronjob}", "-n", t.namespace,
                                                        "--type=merge", "-p", '{"spec":{"suspend":true}}'),
                    f, cronjob=cronjob, deployment=dep)
            case kinds.BadRevision(deployment=dep, revision=revision, image=image, age_minutes=age,
                             previous_revision=previous, failures=failures):
                dep = dep or f.subject
                how = ", ".join(failures) or "fails"  # crashloop, oom-killed, image-pull, not-ready: as seen
                add("rollout-undo", f"deployment/{dep}",
                    f"revision {revision} ({image}) deployed {age:.0f} min ago: {how}; "
                    f"previous revision {previous} was healthy",
                    shell("kubectl", "rollout", "undo", f"deployment/{dep}", "-n", t.namespace), f, deployment=dep,
                    from_revision=revision)
            case kinds.OomKilled(deployment=dep, container=container, memory_limit=limit):
                dep = dep or f.subject
                raised = raised_quantity(limit, t.memory_factor) if limit else None
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
            case kinds.DatastoreDown(pod=pod, failure=failure) if pod:
                add("delete-pod", f"pod/{pod}", f"{f.subject} is down ({failure}): restart its pod "
                                                "(the playbook's 'restart failed services'); read its logs first",
                    shell("kubectl", "delete", "pod", pod, "-n", t.namespace), f, pod=pod)
            case kinds.DdlQueued(pid=pid, queued_behind=behind, query=query):
                pid = pid or _pid(f.subject)
                if pid is not None:
                    add("cancel-query", f"pid {pid}",
                        f"the queued DDL holds {behind or '?'} session(s) behind it; cancel it, then "
                        "deal with the session it waits on", psql(f"SELECT pg_cancel_backend({pid});"), f, pid=pid,
                        reason="ddl-queued", query=query)
            case kinds.CredentialsRejected(deployment=dep, secret=secret, changed_minutes=minutes) if secret:
                # Pods read a Secret at start: a restart puts them on the rotated value (no restart: a wrong
                # password stays wrong, and the finding says where to fix it).
                dep = dep or f.subject
                add("rollout-restart", f"deployment/{dep}",
                    f"Secret {secret} was rotated {minutes or 0:.0f} min ago and the pods still hold the old "
                    "password: restart them onto the new one",
                    shell("kubectl", "rollout", "restart", f"deployment/{dep}", "-n", t.namespace), f,
                    deployment=dep)
            case kinds.DbSaturation(application=app, deployment=deployment, idle_sessions=idle,
                                    idle_in_transaction=open_):
                if app and not deployment:
                    # Sessions idle in a transaction they never end are terminated too: their transactions are
                    # rolled back (nothing of them was committed) and their locks released.
                    # Only those idle in a transaction for a minute: a busy application is, between statements.
                    states = ["idle", "idle in transaction", "idle in transaction (aborted)"] if open_ else ["idle"]
                    which = ("(state = 'idle' OR (state LIKE 'idle in transaction%' AND state_change < now() - "
                             f"interval '{t.idle_transaction_seconds:g} seconds'))" if open_ else "state = 'idle'")
                    add("terminate-idle", f"application {app}",
                        f"{idle} idle connections of '{app}' fill the pool"
                        + (f" ({open_} idle in a transaction: rolled back)" if open_ else ""),
                        psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {which} AND "  # noqa: S608
                             f"datname = current_database() AND application_name = {sql_literal(app)};"), f,
                        application=app, states=states)
                else:
                    target = deployment or t.backend
                    add("rollout-restart", f"deployment/{target}", "restart its database connections",
                        shell("kubectl", "rollout", "restart", f"deployment/{target}", "-n", t.namespace), f,
                        deployment=target)
            case kinds.Dependency(deployment=dep) if f.kind is Kind.PROVIDER_FAILING:
                dep = dep or f.subject
                add("set-env", f"deployment/{dep}", f"switch to the backup blockchain provider ({t.backup_provider})",
                    shell("kubectl", "set", "env", f"deployment/{dep}", t.backup_provider, "-n", t.namespace), f,
                    deployment=dep, env=t.backup_provider)
            case kinds.Dependency(deployment=dep):  # the upstream times out
                dep = dep or f.subject
                add("enable-circuit-breaker", f"deployment/{dep}",
                    "stop waiting on the upstream that times out: open the circuit breaker",
                    shell("kubectl", "exec", "-n", t.namespace, f"deployment/{dep}", "--", "curl", "-fsS", "-X",
                          "POST", t.circuit_breaker_url), f, deployment=dep, url=t.circuit_breaker_url)
                add("set-env", f"deployment/{dep}",
                    f"raise the upstream timeout while it recovers ({t.upstream_timeout})",
                    shell("kubectl", "set", "env", f"deployment/{dep}", t.upstream_timeout, "-n", t.namespace), f,
                    deployment=dep, env=t.upstream_timeout)
            case kinds.Overload(deployment=dep, replicas=replicas, impact=impact) if dep:
                wanted = min(t.max_replicas, max(replicas + 1, math.ceil(replicas * t.scale_factor)))
                if wanted > replicas:
                    add("scale", f"deployment/{dep}", f"traffic is {impact:.1f}x its baseline: "
                                                      f"scale from {replicas} to {wanted} replicas",
                        shell("kubectl", "scale", f"deployment/{dep}", f"--replicas={wanted}", "-n", t.namespace), f,
                        deployment=dep, replicas=wanted)
            case _ if f.kind in (Kind.CRASHLOOP, Kind.IMAGE_PULL, Kind.PODS_NOT_READY):
                add("delete-pod", f"pod/{f.subject}", f"{f.kind.value}: restart it if it is not a bad revision",
                    shell("kubectl", "delete", "pod", f.subject, "-n", t.namespace), f, pod=f.subject)
    return steps
