"""What the messages and the post-mortem say, in plain words, from the incident's records. Pure.

:func:`title` names what happened the way a person would ("Orders updates blocked by an idle
database transaction"), from the first cause the investigation found; :func:`context` is every
variable the templates may use (docs/communications.md lists them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from irkit.rules import kinds
from irkit.rules.kinds import Finding, Kind

__all__ = ["FACTS", "context", "customer_title", "status_of", "title"]

# The facts a status update compares with the previous one to say what changed.
FACTS = ("status", "severity", "impact", "actions")
_TABLE = re.compile(r"\b(?:UPDATE|INSERT\s+INTO|DELETE\s+FROM|ALTER\s+TABLE|LOCK\s+TABLE)\s+(?:ONLY\s+)?\"?(\w+)",
                    re.IGNORECASE)


def _table(text: Any) -> str:
    match = _TABLE.search(str(text or ""))
    return match.group(1) if match else ""


def _tag(image: str) -> str:
    """An image's tag (``registry:5000/app:1.43.0`` -> ``1.43.0``); empty for an untagged image or a digest."""
    name = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return name.split(":", 1)[1] if ":" in name and "@" not in image else ""


def _who(name: Any) -> str:
    """A workload's name as people say it: backend-deployment -> backend."""
    return str(name or "").removesuffix("-deployment").removesuffix("-primary").removesuffix("-master") or "service"


def title(findings: Sequence[Finding], fallback: str = "Service degradation") -> str:
    """What happened, in plain words, from the first cause found (else the first symptom)."""
    found = next((f for f in findings if f.is_cause), findings[0] if findings else None)
    if found is None:
        return fallback
    match found.evidence:
        case kinds.LockRoot(query=query, state=state):
            table = _table(query or found.detail)
            who = "an idle database transaction" if "idle" in (state or found.detail) else "a long database transaction"
            return f"{table.capitalize() + ' updates' if table else 'Database writes'} blocked by {who}"
        case kinds.Deadlock():
            return "Database transactions deadlocking"
        case kinds.DdlQueued(query=query):
            return f"A schema change queued behind a long read blocks {_table(query or found.detail) or 'a table'}"
        case kinds.LongRunningQuery():
            return "A long-running query saturates the database"
        case kinds.DbSaturation(application=application):
            return "Database connections exhausted" + (f" by {application}" if application else "")
        case kinds.DatastoreDown():
            what = ("database" if "postgres" in found.subject else
                    "cache" if "redis" in found.subject else found.subject)
            return f"The {what} is down"
        case kinds.BadRevision(deployment=deployment, image=image):
            tag = _tag(image)
            return f"The new {_who(deployment or found.subject)} release{' ' + tag if tag else ''} fails"
        case kinds.OomKilled(deployment=deployment):
            return f"The {_who(deployment or found.subject)} runs out of memory"
        case kinds.Overload(deployment=deployment):
            return f"Traffic beyond the {_who(deployment)}'s capacity"
        case kinds.Unschedulable():
            return "New pods cannot be scheduled"
        case kinds.DatastoreRefusing():
            return "The cache refuses the application's requests"
        case kinds.ServiceNoEndpoints(deployment=deployment):
            return f"The {_who(deployment or found.subject)} Service routes to no pod"
        case kinds.VolumeFull():
            return "The database's disk is full" if "postgres" in found.subject or "pg" in found.subject \
                else f"The disk of {found.subject} is full"
        case kinds.QuotaExceeded(deployment=deployment):
            return f"A resource quota stops new {_who(deployment or found.subject)} pods"
        case kinds.MissingIndex(table=table):
            return f"Slow database queries on {table or found.subject}"
        case kinds.ScheduledActor(deployment=deployment):
            return f"A scheduled job keeps putting back a failing {_who(deployment or found.subject)} release"
        case kinds.BrokenSpec(deployment=deployment):
            return f"{_who(deployment or found.subject).capitalize()} pods cannot start"
        case kinds.CredentialsRejected(deployment=deployment):
            return f"The database refuses the {_who(deployment or found.subject)}'s password"
    kind = found.kind
    if kind is Kind.IMAGE_PULL:
        return f"A {_who(found.subject)} release cannot be pulled"
    if kind is Kind.CRASHLOOP:
        return f"{_who(found.subject).capitalize()} pods keep crashing"
    if kind is Kind.PROVIDER_FAILING:
        return "The blockchain provider is failing"
    if kind is Kind.UPSTREAM_TIMEOUT:
        return "An upstream service times out"
    if kind is Kind.PODS_NOT_READY:
        return f"{_who(found.subject).capitalize()} pods are not ready"
    if kind is Kind.ENDPOINT_DOWN:
        return f"{found.subject} is failing"
    if kind is Kind.SLOW_LATENCY:
        return f"Slow responses on {found.subject}"
    if kind is Kind.ERROR_SPIKE:
        return f"Elevated errors on {found.subject}"
    return fallback


def customer_title(severity: str) -> str:
    """What customers are told happened: no internal names."""
    return "Service disruption" if severity == "SEV-1" else "Degraded service"


def status_of(*, recovered: bool | None, applied: bool, planned: bool) -> str:
    """The playbook's status words: Investigating, Identified, Monitoring, Resolved."""
    if recovered:
        return "Resolved"
    if applied:
        return "Monitoring"
    return "Identified" if planned else "Investigating"


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "unknown"


def _span(span: timedelta | None) -> str:
    if span is None:
        return "unknown"
    minutes = int(span.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def context(*, incident: str, severity: str, findings: Sequence[Finding], affected: Sequence[str],
            reasons: Sequence[str], onset: datetime | None, now: datetime, recovered: bool | None,
            resolved_at: datetime | None, applied: Sequence[str], planned: Sequence[str], interval: int,
            war_room: str, status_page_url: str, previous: Mapping[str, Any] | None = None,
            ongoing: bool | None = None, not_resolved: Sequence[str] = ()) -> dict[str, Any]:
    """Every variable a template may use. ``previous``: the facts (:data:`FACTS`) of the last update sent
    or written, to say what changed since. ``ongoing`` False: the incident was over when it was assessed (the
    messages speak of a past window); ``not_resolved``: why recovery is not validated yet."""
    head = title(findings)
    cause = next((f for f in findings if f.is_cause), findings[0] if findings else None)
    status = status_of(recovered=recovered, applied=bool(applied), planned=bool(planned))
    impact = "; ".join(reasons[:3]) or "under assessment"
    actions = "; ".join(applied) if applied else (f"planned: {'; '.join(planned)}" if planned else "investigating")
    facts = {"status": status, "severity": severity, "impact": impact, "actions": actions}
    changes = [f"{name}: {previous.get(name)} -> {facts[name]}" for name in FACTS
               if previous and previous.get(name) != facts[name]]
    end = resolved_at or (now if recovered else None)  # an incident over when assessed ended at resolved_at
    return {
        "incident": incident, "severity": severity, "title": head, "issue": head[:1].lower() + head[1:],
        "customer_title": customer_title(severity),
        "customer_impact": "some of our services fail or respond slowly" if severity != "SEV-1"
        else "our marketplace is unavailable or failing for many users",
        "customer_impact_past": "some of our services failed or responded slowly" if severity != "SEV-1"
        else "our marketplace was unavailable or failing for many users",
        "past": ongoing is False and not recovered,
        "not_resolved": "; ".join(not_resolved) or "phase 4 has not validated recovery",
        "affected": ", ".join(affected) or "the marketplace", "impact": impact, "status": status,
        "started": _when(onset), "now": _when(now), "eta": "monitoring after the fix" if applied and not recovered
        else ("resolved" if recovered else "under investigation"),
        "interval": interval, "next_update": _when(now + timedelta(minutes=interval)) if not recovered else "none",
        "actions": actions, "changes": changes, "last_update": str((previous or {}).get("at", "none")),
        "war_room": war_room, "status_page_url": status_page_url,
        "root_cause": f"{cause.detail} ({cause.kind.value} {cause.subject})" if cause else "under investigation",
        "resolution": "; ".join(applied) or (f"planned, not yet applied: {'; '.join(planned)}" if planned
                                             else "no change was applied by irkit; see the post-mortem"),
        "resolved_at": _when(end), "duration": _span(end - onset if end and onset else None),
        "facts": facts,
    }
