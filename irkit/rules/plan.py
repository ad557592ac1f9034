"""The mitigation plan (playbook 3.1): findings turned into the playbook's actions, with the command to run.

Pure: each :class:`Mitigation` names its action (a kubectl-like verb), its target, why,
and the command a responder would paste, built as words and quoted for the shell
(:func:`shell`), so no name from a cluster, a config or a query can run as a command of
its own. SQL handed to ``psql -c`` takes integer pids only. Every target comes from the
findings and the configuration (:class:`PlanTargets`); nothing here changes anything.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from irkit.rules.kinds import Finding, Kind, rank

__all__ = ["ACTIONS", "Mitigation", "PlanTargets", "plan", "raised_quantity", "shell"]

# Every action a plan can hold (kubectl-like verbs); scenario files are checked against it.
ACTIONS = ("terminate-backend", "cancel-query", "rollout-undo", "raise-memory-limit", "delete-pod",
           "rollout-restart")


@dataclass(frozen=True)
class Mitigation:
    """One planned action: ``action`` (kubectl-like verb), ``target``, ``why``, ``command``, the ``finding`` it
    answers (``kind: subject``) and its ``status`` (``planned`` until something applies it)."""

    action: str
    target: str
    why: str
    command: str
    finding: str
    status: str = "planned"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Mitigation:
        return cls(**{k: str(data.get(k, "")) for k in ("action", "target", "why", "command", "finding")},
                   status=str(data.get("status") or "planned"))


@dataclass(frozen=True)
class PlanTargets:
    """What the plan needs of the configuration (see :meth:`from_config`)."""

    namespace: str = "web3-marketplace-prod"
    postgres: str = "postgres-primary"
    database: str = "web3marketplace"
    admin_user: str = "postgres"
    backend: str = "backend-deployment"
    memory_factor: float = 1.5

    @classmethod
    def from_config(cls, cfg: Any) -> PlanTargets:
        return cls(cfg.namespace, cfg.postgres_statefulset, cfg.pg_database, cfg.pg_admin_user,
                   cfg.backend_deployment, cfg.memory_limit_factor)


def shell(*argv: object) -> str:
    """A command line a person pastes: every word quoted for a POSIX shell."""
    return shlex.join(str(arg) for arg in argv)


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
    seen: set[tuple[str, str]] = set()

    def psql(statement: str) -> str:
        return shell("kubectl", "exec", "-n", t.namespace, f"statefulset/{t.postgres}", "--", "psql", "-U",
                     t.admin_user, "-d", t.database, "-c", statement)

    def add(action: str, target: str, why: str, command: str, finding: Finding) -> None:
        if (action, target) not in seen:
            seen.add((action, target))
            steps.append(Mitigation(action, target, why, command, f"{finding.kind.value}: {finding.subject}"))

    for f in rank(findings):
        ev = f.evidence
        if f.kind in (Kind.LOCK_ROOT, Kind.DEADLOCK):
            pid = _pid(ev.get("pid", f.subject) if f.kind is Kind.LOCK_ROOT else (ev.get("pids") or [None])[0])
            why = (f"it holds the lock {ev.get('blocked_count', '?')} sessions wait behind ({ev.get('state', '')})"
                   if f.kind is Kind.LOCK_ROOT else "breaks the lock cycle")
            if pid is not None:
                add("terminate-backend", f"pid {pid}", why, psql(f"SELECT pg_terminate_backend({pid});"), f)
        elif f.kind is Kind.LONG_RUNNING_QUERY:
            pid = _pid(ev.get("pid", f.subject))
            if pid is not None:
                add("cancel-query", f"pid {pid}",
                    f"query running {float(ev.get('age_seconds') or 0):.0f} s saturates the database",
                    psql(f"SELECT pg_cancel_backend({pid});"), f)
        elif f.kind is Kind.BAD_REVISION:
            dep = ev.get("deployment", f.subject)
            add("rollout-undo", f"deployment/{dep}",
                f"revision {ev.get('revision')} ({ev.get('image')}) deployed "
                f"{float(ev.get('age_minutes') or 0):.0f} min ago crashloops; "
                f"previous revision {ev.get('previous_revision')} was healthy",
                shell("kubectl", "rollout", "undo", f"deployment/{dep}", "-n", t.namespace), f)
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
            add("raise-memory-limit", f"deployment/{dep}", why, command, f)
        elif f.kind in (Kind.CRASHLOOP, Kind.IMAGE_PULL, Kind.PODS_NOT_READY):
            add("delete-pod", f"pod/{f.subject}", f"{f.kind.value}: restart it if it is not a bad revision",
                shell("kubectl", "delete", "pod", f.subject, "-n", t.namespace), f)
        elif f.kind is Kind.DB_SATURATION:
            add("rollout-restart", f"deployment/{t.backend}", "restart database connections",
                shell("kubectl", "rollout", "restart", f"deployment/{t.backend}", "-n", t.namespace), f)
    return steps
