"""Findings and the mitigation plan: playbook 2.x conclusions and 3.1 strategies, as pure rules.

A :class:`Finding` is one thing the investigation established (a lock root, a
crashlooping deployment, an error spike), with a rank: causes before symptoms.
:func:`plan` maps findings to the playbook's mitigations (which action, on what,
why, and the command a responder would run). Nothing here changes anything.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Finding", "Mitigation", "is_cause", "plan", "rank", "shell"]

# Causes first: a lock root or a bad revision explains the error spike it produces.
_KIND_ORDER = {
    "lock-root": 10, "deadlock": 11, "bad-revision": 12, "long-running-query": 14, "crashloop": 20,
    "oom-killed": 22, "image-pull": 24, "db-saturation": 26, "pods-not-ready": 30, "endpoint-down": 40,
    "error-spike": 50, "slow-latency": 52, "events-warning": 60, "source-unavailable": 90,
}


@dataclass(frozen=True)
class Finding:
    """``kind`` (see ``_KIND_ORDER``), ``subject`` (what it is about), ``detail`` (for humans)."""

    kind: str
    subject: str
    detail: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def order(self) -> int:
        return _KIND_ORDER.get(self.kind, 80)

    @property
    def is_cause(self) -> bool:
        """A cause (lock root, bad revision, ...) rather than a symptom (error spike, endpoint down)."""
        return is_cause(self.kind)


def is_cause(kind: str) -> bool:
    """Whether findings of ``kind`` explain others (ranked before ``endpoint-down``) rather than show them."""
    return _KIND_ORDER.get(kind, 80) < _KIND_ORDER["endpoint-down"]


def rank(findings: Iterable[Finding]) -> list[Finding]:
    """Causes before symptoms; within a kind, the one with more impact first."""
    return sorted(findings, key=lambda f: (f.order, -float(f.evidence.get("impact", 0)), f.subject))


@dataclass(frozen=True)
class Mitigation:
    """One planned action: ``action`` (kubectl-like verb), ``target``, ``why``, ``command``."""

    action: str
    target: str
    why: str
    command: str
    finding: str


def shell(*argv: object) -> str:
    """A command line a person pastes: every word quoted for a POSIX shell, so no value from a cluster,
    a config or a query can run as a command of its own."""
    return shlex.join(str(arg) for arg in argv)


def _pid(value: Any) -> int | None:
    """A PostgreSQL backend pid from a finding's evidence; None when it is not a plain integer."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value).removeprefix("pid ").strip()
    return int(text) if text.isdigit() else None


def plan(findings: Iterable[Finding], namespace: str, *, postgres: str = "postgres-primary",
         database: str = "web3marketplace", admin_user: str = "postgres",
         backend: str = "backend-deployment") -> list[Mitigation]:
    """The playbook's 3.1 mitigations for the findings, most urgent first, one per target.

    Every command is built as a list of words and quoted (:func:`shell`); SQL passed to ``psql -c``
    takes only integer pids, never text.
    """
    steps: list[Mitigation] = []
    seen: set[tuple[str, str]] = set()

    def psql(statement: str) -> str:
        return shell("kubectl", "exec", "-n", namespace, f"statefulset/{postgres}", "--", "psql", "-U", admin_user,
                     "-d", database, "-c", statement)

    def add(action: str, target: str, why: str, command: str, finding: Finding) -> None:
        if (action, target) not in seen:
            seen.add((action, target))
            steps.append(Mitigation(action, target, why, command, f"{finding.kind}: {finding.subject}"))

    for f in rank(findings):
        if f.kind == "lock-root":
            pid = _pid(f.evidence.get("pid", f.subject))
            if pid is not None:
                add("terminate-backend", f"pid {pid}",
                    f"it holds the lock {f.evidence.get('blocked_count', '?')} sessions wait behind "
                    f"({f.evidence.get('state', '')})", psql(f"SELECT pg_terminate_backend({pid});"), f)
        elif f.kind == "deadlock":
            pid = _pid((f.evidence.get("pids") or [f.subject])[0])
            if pid is not None:
                add("terminate-backend", f"pid {pid}", "breaks the lock cycle",
                    psql(f"SELECT pg_terminate_backend({pid});"), f)
        elif f.kind == "long-running-query":
            pid = _pid(f.evidence.get("pid", f.subject))
            if pid is not None:
                add("cancel-query", f"pid {pid}",
                    f"query running {f.evidence.get('age_seconds', 0):.0f} s saturates the database",
                    psql(f"SELECT pg_cancel_backend({pid});"), f)
        elif f.kind == "bad-revision":
            dep = f.evidence.get("deployment", f.subject)
            add("rollout-undo", f"deployment/{dep}",
                f"revision {f.evidence.get('revision')} ({f.evidence.get('image')}) deployed "
                f"{f.evidence.get('age_minutes', 0):.0f} min ago crashloops; "
                f"previous revision {f.evidence.get('previous_revision')} was healthy",
                shell("kubectl", "rollout", "undo", f"deployment/{dep}", "-n", namespace), f)
        elif f.kind == "oom-killed":
            dep = f.evidence.get("deployment", f.subject)
            container = f.evidence.get("container", "")
            limit = f.evidence.get("memory_limit", "")
            add("raise-memory-limit", f"deployment/{dep}",
                f"containers are OOMKilled at their memory limit {limit}".strip(),
                shell("kubectl", "set", "resources", f"deployment/{dep}", "-n", namespace, "-c", container,
                      "--limits=memory=2Gi"), f)
        elif f.kind in ("crashloop", "image-pull", "pods-not-ready"):
            pod = f.subject
            add("delete-pod", f"pod/{pod}", f"{f.kind}: restart it if it is not a bad revision",
                shell("kubectl", "delete", "pod", pod, "-n", namespace), f)
        elif f.kind == "db-saturation":
            add("rollout-restart", f"deployment/{backend}", "restart database connections",
                shell("kubectl", "rollout", "restart", f"deployment/{backend}", "-n", namespace), f)
    return steps
