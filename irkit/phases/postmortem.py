"""Phase 5, post-incident (Post-Incident Activities 1-4): the incident's timeline across its runs, the response
times (MTTD, MTTA, MTTM, MTTR) against the severity's deadline, the 5 whys, action items, the post-mortem draft in
the playbook's template, and the resolution notification."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from irkit import comms, evidence
from irkit.comms.context import title
from irkit.display import charts
from irkit.errors import ConfigError
from irkit.escaping import code_span, fence, markdown
from irkit.evidence import records as R
from irkit.evidence.rundir import write_text
from irkit.evidence.timeline import incident_events, incident_runs
from irkit.phases import history
from irkit.phases.communicate import (
    MessagesView,
    incident_context,
    incident_records,
    write_and_send,
)
from irkit.phases.incident import Incident, Note
from irkit.rules.followups import suggest
from irkit.rules.kinds import Finding
from irkit.rules.recovery import Verdict
from irkit.rules.severity import Assessment
from irkit.rules.timeline import Event, Measures, measures
from irkit.sources import prom

__all__ = ["prepare", "action_items", "communicate", "five_whys", "resolution_message", "response", "timeline",
           "timeline_chart", "write_postmortem"]


def _severity(inc: Incident) -> Assessment | None:
    found = inc.view().severity
    return found.value if found else None


def _findings(inc: Incident) -> list[Finding]:
    found = inc.view().findings
    return found.value if found else []


def _verdict(inc: Incident) -> Verdict | None:
    found = inc.view().recovery
    return found.value if found else None


def _events(inc: Incident) -> list[Event]:
    return incident_events(inc.run_dir)


def _measures(inc: Incident, events: list[Event]) -> Measures:
    severity = inc.view().severity
    return measures(events, severity.value.respond_by if severity else None)


def prepare() -> None:
    """Before the phase runs (``irkit run`` calls it in the kernel it starts ahead): start the image renderer."""
    charts.warm_renderer()


def timeline(inc: Incident) -> pd.DataFrame:
    """Every event of the incident, from all its runs under outputs/<incident>/, in order; also timeline.json."""
    charts.warm_renderer()  # the post-mortem's images come a few cells later: start the browser now
    events = _events(inc)
    frame = pd.DataFrame([{"time": e.time.strftime("%Y-%m-%d %H:%M:%S"), "source": e.source, "kind": e.kind,
                           "event": e.text, "link": e.link} for e in events],
                         columns=["time", "source", "kind", "event", "link"])
    inc.record(R.TIMELINE, frame)
    evidence.write_json(inc.files.timeline, {
        "schema_version": evidence.SCHEMA_VERSION, "incident": inc.id,
        "runs": [run.name for run in incident_runs(inc.run_dir)],
        "events": [e.as_dict() for e in events], "measures": _measures(inc, events).as_dict()})
    return frame


def timeline_chart(inc: Incident) -> charts.Chart:
    """The timeline on one time axis, a lane per source."""
    return charts.timeline_chart(pd.DataFrame(inc.rows(R.TIMELINE), columns=["time", "source", "kind", "event"]))


def _span(span: timedelta | None) -> str:
    return str(timedelta(seconds=round(span.total_seconds()))) if span is not None else "unknown"


def response(inc: Incident) -> pd.DataFrame:
    """When it started, was detected, acknowledged, mitigated and resolved; MTTD/MTTA/MTTM/MTTR; the deadline."""
    m = _measures(inc, _events(inc))
    severity = _severity(inc)

    def when(moment: datetime | None) -> str:
        return f"{moment:%Y-%m-%d %H:%M:%S} UTC" if moment else "unknown"

    rows = [
        ("severity", severity.name if severity else "unknown"),
        ("onset (error ratio crossed the threshold)", when(m.onset)),
        ("detected (alert, else the first irkit run)", when(m.detected)),
        ("acknowledged (first irkit run)", when(m.acknowledged)),
        ("mitigated (first applied step with its effect)", when(m.mitigated)),
        ("resolved (signals back, or recovery validated)", when(m.resolved)),
        ("MTTD", _span(m.mttd)), ("MTTA", _span(m.mtta)), ("MTTM", _span(m.mttm)), ("MTTR", _span(m.mttr)),
        ("respond by", when(m.respond_by)),
        ("response within deadline", {True: "yes", False: "no", None: "unknown"}[m.deadline_met]),
        ("duration", _span(m.mttr) if m.resolved else
         (_span(datetime.now(UTC) - m.onset) + " so far, not resolved" if m.onset else "unknown")),
    ]
    inc.record(R.RESPONSE, dict(rows))
    return pd.DataFrame(rows, columns=["measure", "value"])


def five_whys(inc: Incident) -> pd.DataFrame:
    """The 5-whys chain drafted from the findings: the symptom, the cause that explains it, what the cause's
    evidence says of it; the deeper whys are left for people (marked)."""
    found = _findings(inc)
    symptom = next((f for f in found if not f.is_cause and f.kind.value != "source-unavailable"), None)
    cause = next((f for f in found if f.is_cause), None)
    ev = cause.evidence.as_dict() if cause else {}
    deeper = ", ".join(f"{k} {round(v) if isinstance(v, float) else v}" for k, v in ev.items()
                       if k in ("state", "application", "image", "revision", "memory_limit", "age_minutes", "query")
                       and v not in ("", None))[:300]
    rows = [
        ("What happened?", f"{symptom.detail} on {symptom.subject}" if symptom else title(found)),
        ("Why did it happen?", f"{cause.kind.value} {cause.subject}: {cause.detail}" if cause
         else "[immediate cause: the investigation found no cause]"),
        ("Why did that happen?", f"[draft from the evidence: {deeper}]" if deeper else "[underlying cause]"),
        ("Why did that happen?", "[root cause: to be written by the team]"),
        ("Why did that happen?", "[system or process failure: to be written by the team]"),
    ]
    return pd.DataFrame(rows, columns=["question", "answer"])


def _team_items(inc: Incident) -> dict[str, list[str]]:
    path = inc.config.action_items_file
    if not path:
        return {}
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"action_items_file {path}: {exc}; it holds lines like lock-root = [\"...\"]") from exc
    return {str(k): [str(i) for i in v] for k, v in data.items() if isinstance(v, list)}


def action_items(inc: Incident) -> pd.DataFrame:
    """Action items suggested per cause found (the built-in catalogue, then the team's action_items_file)."""
    items = suggest(_findings(inc), _team_items(inc))
    return pd.DataFrame(items, columns=["cause", "action item"])


def resolution_message(inc: Incident) -> str:
    """The playbook's resolution notification from the template; a marked draft until recovery is validated."""
    ctx = incident_context(inc)
    text = comms.render("resolution.txt.j2", {**ctx, "stage": "resolution"}, inc.config.templates_dir, "email")
    if ctx["status"] != "Resolved":  # the same text as the outbox's draft, marked
        verdict = _verdict(inc)
        reasons = (list(verdict.failed) + list(verdict.unmeasured)) if verdict else []
        failing = "; ".join((reasons or ["phase 4 has not validated recovery"])[:3])
        text = f"DRAFT, do not send: recovery is not validated ({failing}).\n\n" + text
    return text


def communicate(inc: Incident, send_messages: bool = False) -> MessagesView:
    """The resolution notification, Slack message, status page resolution and customer mail: into the outbox,
    sent when send_messages is on; a draft (never sent) until phase 4 has validated recovery."""
    draft = incident_context(inc)["status"] != "Resolved"
    return write_and_send(inc, "resolution", send_messages, draft=draft)


def _recovery_line(verdict: Verdict | None) -> str:
    if verdict is None:
        return "no: phase 4 has not run"
    if verdict.recovered:
        return "yes"
    if verdict.recovered is None:
        return "unknown: not measured: " + "; ".join(verdict.unmeasured)
    return "no: " + "; ".join(verdict.failed)


def _impact(inc: Incident, m: Measures) -> list[str]:
    """The impact in user terms: journeys that failed, requests that failed, for how long, still going on."""
    endpoints = [r for run in incident_records(inc) for r in run.get(R.ENDPOINTS)]
    journeys = sorted({str(r.get("journey") or r.get("url")) for r in endpoints if r.get("ok") is False})
    lines = [f"- **Journeys that failed**: {markdown(', '.join(journeys)) if journeys else 'none of the checked journeys'}"]
    if m.onset:
        end = m.resolved or datetime.now(UTC)
        counted = inc.attempt("failed requests", lambda: prom.failed_requests(inc.prom, m.onset, end))  # type: ignore[arg-type]
        if isinstance(counted, tuple):
            failed, total = counted
            share = f" of {total:,.0f} ({failed / total:.1%})" if total else ""
            lines.append(f"- **Failed requests**: {failed:,.0f}{share} from {m.onset:%H:%M} to {end:%H:%M} UTC")
        else:
            lines.append("- **Failed requests**: not measured (see the phase's problems)")
    lines.append(f"- **For how long**: {_span(m.mttr) if m.resolved else 'still going on at the time of writing'}")
    return lines


def write_postmortem(inc: Incident, window_minutes: int = 120) -> Note:
    """``postmortem.md`` in the playbook's template, beside the notebooks, with chart images."""
    view = inc.view()  # every run of the incident: phase 5 alone the next morning writes the same post-mortem
    severity = view.severity.value if view.severity else None
    events = _events(inc)
    m = _measures(inc, events)
    found = view.findings.value if view.findings else []
    wanted: list[tuple[charts.Chart, Path]] = [
        (history.cross_layer(inc, window_minutes), inc.files.image("cross-layer"))]
    if events:
        wanted.append((timeline_chart(inc), inc.files.image("timeline")))
    locks = history.lock_history(inc)  # a table of episodes, or a note that no session blocked another
    lock_episodes = locks.table if isinstance(locks.table, pd.DataFrame) else None
    if lock_episodes is not None:
        wanted.append((locks.chart, inc.files.image("lock-history")))
    images = [path.name for path in charts.save_images(wanted)]  # one Chromium for both
    causes = [f for f in found if f.is_cause]
    symptoms = [f for f in found if not f.is_cause]
    steps = view.plan.value if view.plan else []
    outcomes = [o for run in incident_records(inc) for o in run.get(R.OUTCOMES)
                if o.status != "dry-run"]
    whys = five_whys(inc)
    lines = [
        f"# Incident Post-Mortem: {markdown(title(found))}",
        "", f"Incident {inc.id}. A draft written by irkit from the evidence in `outputs/{inc.id}/`: edit it.",
        "", "## Summary",
        f"- **Date**: {(m.onset or inc.started_at).date().isoformat()}",
        f"- **Duration**: {_span(m.mttr) if m.resolved else 'not resolved at the time of writing'}",
        f"- **Severity**: {severity.name if severity else 'unknown'}",
        f"- **Impact**: {markdown('; '.join(severity.reasons)) if severity else 'unknown'}",
        *_impact(inc, m),
        f"- **Response**: MTTD {_span(m.mttd)}, MTTA {_span(m.mtta)}, MTTM {_span(m.mttm)}, MTTR {_span(m.mttr)}; "
        f"response deadline {({True: 'met', False: 'missed', None: 'unknown'})[m.deadline_met]}",
        "", "## Timeline",
        # Links are relative to outputs/<incident>/, and this file is in one run's directory below it.
        *[f"- {e.time:%Y-%m-%d %H:%M:%S} UTC ({e.source}): {markdown(e.text)}"
          + (f" [evidence](<../{e.link}>)" if e.link else "") for e in events],
        *(["", "### Lock history", *history.episode_lines(lock_episodes)] if lock_episodes is not None else []),
        "", "## Root Cause",
        *([f"{i + 1}. **{f.kind.value}** {markdown(f.subject)}: {markdown(f.detail)}" for i, f in enumerate(causes[:5])]
          or ["[Detailed root cause analysis: the investigation found symptoms but no cause]"]),
        "", "### Symptoms it explains",
        *([f"- **{f.kind.value}** {markdown(f.subject)}: {markdown(f.detail)}" for f in symptoms] or ["- none recorded"]),
        "", "### 5 whys (draft: edit the bracketed answers)",
        *[f"{i + 1}. {row['question']} {markdown(row['answer'])}" for i, row in enumerate(whys.to_dict("records"))],
        "", "## Resolution",
        *([f"- {markdown(o.action)}: {markdown(o.status)}, {markdown(o.detail)} (confirmed by "
           f"{markdown(o.confirmation.get('by', '?'))} at {markdown(o.confirmation.get('at', '?'))})" for o in outcomes]
          or [f"- planned, not applied by irkit: {markdown(s.action)} {markdown(s.target)}: {code_span(s.command)}"
              for s in steps]
          or ["- no mitigation was planned"]),
        f"- Recovery validated: {markdown(_recovery_line(view.recovery.value if view.recovery else None))}",
        "", "## Action Items",
        *([f"- [ ] {markdown(item)} ({markdown(cause)}; owner, due date)"
           for cause, item in suggest(found, _team_items(inc))]
          or ["- [ ] [Specific actions to prevent recurrence] (owner, due date)"]),
        "", "## Lessons Learned", "- What went well: [ ]", "- What went wrong: [ ]", "- Where we got lucky: [ ]",
        "", "## Charts", *[f"![{name}]({name})" for name in images],
        "", "## Resolution message", fence(resolution_message(inc)), "",
    ]
    path = write_text(inc.files.postmortem, "\n".join(lines))
    inc.record(R.POSTMORTEM, {"path": str(path), "images": images})
    return Note(f"{path.name} written in the run's directory ({path.parent}), with {len(images)} chart image(s): "
                "a draft to edit")
