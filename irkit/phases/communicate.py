"""The playbook's communications (3.2, and the resolution notification), for the phases that send them.

Phase 3 writes the initial notification (or, when one was already written in an earlier run
of the incident, a status update saying what changed); phase 5 the resolution, a marked draft
until phase 4 has validated recovery. Everything goes to the run's ``outbox/`` first; a
message leaves only when ``send_messages`` is on for the run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd

from irkit import comms
from irkit.comms.context import context
from irkit.evidence import records as R
from irkit.evidence.timeline import incident_runs
from irkit.phases.incident import Incident

__all__ = ["MessagesView", "earlier_messages", "incident_context", "incident_records", "latest",
           "write_and_send"]


def incident_records(inc: Incident) -> list[R.RunRecords]:
    """The records of every run of the incident so far, oldest first: read once, asked many times."""
    return [R.RunRecords(run) for run in incident_runs(inc.run_dir)]


def latest(runs: list[R.RunRecords], key: R.Key[Any]) -> Any:
    """The newest value of ``key`` across the incident's runs (this one last)."""
    return next((found for run in reversed(runs) if (found := run.get(key)) not in (None, [], {})), None)


def _messages(inc: Incident) -> list[comms.Message]:
    """Every message of the incident so far, oldest first."""
    return [m for run in incident_runs(inc.run_dir) for m in comms.Outbox(run).all()]


def earlier_messages(inc: Incident) -> list[comms.Message]:
    """The initial notification and status updates already written for the incident (this run included)."""
    return [m for m in _messages(inc) if m.kind in ("initial", "update")]


def incident_context(inc: Incident) -> dict[str, Any]:
    """The templates' variables from every run of the incident (docs/communications.md): the same facts the
    report and the post-mortem show (:meth:`Incident.view`)."""
    view = inc.view()
    runs = incident_records(inc)
    severity = view.severity.value if view.severity else None
    applied = [f"{d.action} ({d.id})" for d in view.applied]
    mitigations = view.plan.value if view.plan else []
    applied = applied or [m.command for m in mitigations if m.status == "applied"]  # marked applied by hand
    planned = [f"{m.action} {m.target}" for m in mitigations if m.status == "planned"]
    previous = next((m.payload for m in reversed(_messages(inc)) if m.kind in ("initial", "update")
                     and m.payload.get("facts")), None)
    recovered = view.recovered
    p4_done = next((run.phase(4).get("finished_at") for run in reversed(runs) if run.get(R.VERDICT) is not None),
                   None)
    resolved_at = latest(runs, R.RESOLVED_AT) or (datetime.fromisoformat(p4_done) if recovered and p4_done else None)
    return context(
        incident=inc.id, severity=severity.name if severity else "unknown",
        findings=view.findings.value if view.findings else [], affected=view.affected.value if view.affected else [],
        reasons=list(severity.reasons) if severity else [], onset=view.onset.value if view.onset else None,
        now=datetime.now(UTC), recovered=recovered, resolved_at=resolved_at, applied=applied, planned=planned,
        interval=inc.config.update_minutes, war_room=inc.config.war_room, status_page_url=inc.config.status_page_url,
        previous={**previous["facts"], "at": previous.get("at", "")} if previous else None,
        ongoing=view.ongoing.value if view.ongoing else None,
        not_resolved=[*verdict.failed, *verdict.unmeasured] if (verdict := view.recovery.value if view.recovery
                                                                   else None) else [])


class MessagesView:
    """The messages written (and sent) by a cell: a table, then each one in full."""

    def __init__(self, written: list[comms.Message], note: str = "") -> None:
        self.written = written
        self.note = note
        self.frame = pd.DataFrame([{"id": m.id, "channel": m.channel, "to": m.to, "subject": m.subject or
                                    m.body.strip().splitlines()[0][:80], "status": m.status,
                                    "attempts": len(m.attempts)} for m in written],
                                  columns=["id", "channel", "to", "subject", "status", "attempts"])

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from html import escape
        texts = [f"--- {m.id} ({m.status}) to {m.to}\n{('Subject: ' + m.subject + chr(10)) if m.subject else ''}"
                 f"{m.body.rstrip()}" for m in self.written]
        from irkit.display.views import table_html, table_text
        plain = "\n".join([self.note, table_text(self.frame), *texts]).strip()
        html = (f"<p>{escape(self.note)}</p>" if self.note else "") + table_html(self.frame) + "".join(
            f"<details><summary>{escape(m.id)} ({escape(m.status)})</summary><pre>{escape(t)}</pre></details>"
            for m, t in zip(self.written, texts, strict=True))
        return {"text/plain": plain, "text/html": html}


def write_and_send(inc: Incident, stage: str, send_messages: bool = False, *, draft: bool = False) -> MessagesView:
    """The stage's messages into the outbox, sent when ``send_messages`` is on (a draft never is). A false
    alarm announces nothing."""
    real = inc.view().real
    if real is not None and real.value is False:
        return MessagesView([], "not an incident (phase 1): nothing to announce")
    ctx = incident_context(inc)
    outbox = comms.Outbox(inc.run_dir)
    remote = next((m.remote_id for m in _messages(inc) if m.channel == "statuspage" and m.remote_id), "")
    written = []
    for message in comms.messages(ctx, stage, inc.config, draft=draft):
        message = outbox.put(message)
        if send_messages and message.status == "outbox":
            message = outbox.send(message, inc.config, remote_id=remote if message.channel == "statuspage" else "")
            if message.channel == "statuspage" and message.remote_id:
                remote = message.remote_id
        written.append(message)
    note = ("sent" if send_messages else "in the outbox, not sent (send_messages = False): nothing left this "
            "machine") if not draft else "a DRAFT: recovery is not validated, so it is not sent"
    return MessagesView(written, f"{stage}: {note}")
