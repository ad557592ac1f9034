"""Phase 5, post-incident: timeline, response against the deadline, 5 whys, and the post-mortem draft
in the playbook's template (Post-Incident Activities 3-4), with the resolution message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from irkit import limits
from irkit.display import charts
from irkit.evidence import records as R
from irkit.phases import PHASES
from irkit.phases.incident import Incident
from irkit.rules.kinds import Kind
from irkit.rules.recovery import Verdict
from irkit.sources import prom

__all__ = ["five_whys", "resolution_message", "response", "timeline", "write_postmortem"]

def timeline(inc: Incident) -> pd.DataFrame:
    """Detection, each phase's start and end, findings and planned actions, in time order."""
    run = inc.run
    rows: list[dict[str, Any]] = []
    start = run.get(R.INCIDENT_START)
    if start:
        rows.append({"time": start.isoformat(), "event": "incident start (error ratio crossed the SEV-3 threshold)"})
    for phase in PHASES:
        data = run.phase(phase.number) if phase.number != inc.phase else {"started_at": inc.started_at.isoformat()}
        name = phase.title.lower()
        if data.get("started_at"):
            rows.append({"time": data["started_at"], "event": f"phase {phase.number} {name} started"})
        if data.get("finished_at"):
            rows.append({"time": data["finished_at"], "event": f"phase {phase.number} {name} finished"})
        for problem in list(data.get("problems") or []):
            rows.append({"time": problem["at"], "event": f"phase {phase.number}: {problem['step']} unavailable"})
    severity = run.get(R.SEVERITY)
    if severity and run.phase(1).get("finished_at"):
        rows.append({"time": run.phase(1)["finished_at"], "event": f"classified {severity.name}"})
    p2, p3 = run.phase(2), run.phase(3)
    for finding in run.get(R.FINDINGS)[:5]:
        rows.append({"time": p2.get("finished_at") or p2.get("started_at"),
                     "event": f"finding: {finding.kind.value} {finding.subject}"})
    for step in run.get(R.MITIGATIONS):
        rows.append({"time": p3.get("started_at"), "event": f"mitigation planned: {step.action} {step.target}"})
    for outcome in run.get(R.OUTCOMES):  # what was done, when, and who confirmed it
        if outcome.status != "dry-run" and outcome.started_at:
            by = f" (confirmed by {outcome.confirmation['by']})" if outcome.confirmation.get("by") else ""
            rows.append({"time": outcome.started_at, "event": f"{outcome.action} {outcome.status}{by}: "
                                                             f"{outcome.detail}"})
    frame = pd.DataFrame(rows, columns=["time", "event"])
    frame["time"] = pd.to_datetime(frame["time"], utc=True, format="ISO8601")
    frame = frame.sort_values("time", kind="stable").reset_index(drop=True)
    inc.record(R.TIMELINE, frame)
    return frame


def response(inc: Incident) -> pd.DataFrame:
    """Duration and response time against the severity's deadline."""
    severity = inc.earlier(R.SEVERITY)
    began = inc.earlier(R.INCIDENT_START)
    p1 = inc.run.phase(1)
    responded = datetime.fromisoformat(p1["started_at"]) if p1.get("started_at") else None
    now = datetime.now(UTC)
    deadline = severity.respond_by if severity else None
    rows = [
        ("severity", severity.name if severity else "unknown"),
        ("incident start", began.isoformat() if began else "unknown"),
        ("response started", responded.isoformat() if responded else "unknown"),
        ("respond by", deadline.isoformat() if deadline else "unknown"),
        ("response within deadline", "yes" if (responded and deadline and responded <= deadline) else
         ("no" if responded and deadline else "unknown")),
        ("duration so far", str(timedelta(seconds=round((now - began).total_seconds()))) if began else "unknown"),
    ]
    inc.record(R.RESPONSE, dict(rows))
    return pd.DataFrame(rows, columns=["measure", "value"])


def five_whys(inc: Incident) -> pd.DataFrame:
    """The 5-whys scaffold, its first answers filled from the findings."""
    found = inc.earlier(R.FINDINGS)
    symptom = next((f for f in found if not f.is_cause and f.kind is not Kind.SOURCE_UNAVAILABLE), None)
    cause = found[0] if found else None
    rows = [
        ("What happened?", f"{symptom.detail} on {symptom.subject}" if symptom else "[symptom]"),
        ("Why did it happen?", f"{cause.kind.value}: {cause.detail}" if cause else "[immediate cause]"),
        ("Why did that happen?", "[underlying cause]"),
        ("Why did that happen?", "[root cause]"),
        ("Why did that happen?", "[system/process failure]"),
    ]
    return pd.DataFrame(rows, columns=["question", "answer"])


def resolution_message(inc: Incident) -> str:
    """The playbook's resolution notification, filled in; a marked draft until phase 4 says recovered."""
    cfg = inc.config
    affected = ", ".join(inc.earlier(R.AFFECTED) or [cfg.backend_deployment])
    found = inc.earlier(R.FINDINGS)
    cause = next((f for f in found if f.is_cause), found[0] if found else None)
    steps = inc.earlier(R.MITIGATIONS)
    verdict = inc.earlier(R.VERDICT)
    duration = (inc.current(R.RESPONSE) or {}).get("duration so far", "[duration]")
    brief = f"{cause.kind.value} on {cause.subject}" if cause else "Incident"
    applied = [s.command for s in steps if s.status == "applied"]
    planned = [s.command for s in steps if s.status != "applied"]
    resolution = "; ".join(applied) or (f"planned, not yet applied: {'; '.join(planned)}" if planned
                                        else "[what was done to fix it]")
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if verdict is not None and verdict.recovered:
        head, subject, state = "", f"[RESOLVED] {brief}", f"has been resolved as of {now}"
    else:
        reasons = (list(verdict.failed) + list(verdict.unmeasured)) if verdict else []
        failing = "; ".join((reasons or ["phase 4 has not run"])[:3])
        head = f"DRAFT, do not send: recovery is not validated ({failing}).\n\n"
        subject, state = f"[NOT RESOLVED] {brief}", f"is not resolved as of {now}"
    return (
        f"{head}Subject: {subject}\n\n"
        f"The incident affecting {affected} {state}.\n\n"
        f"Root Cause: {cause.detail if cause else '[brief explanation]'}\n"
        f"Resolution: {resolution}\n"
        f"Duration: {duration}\n\n"
        "We apologize for any inconvenience caused. A detailed post-mortem will be published within 48 hours.\n"
    )


def _recovery_line(verdict: Verdict | None) -> str:
    if verdict is None:
        return "no: phase 4 has not run"
    if verdict.recovered:
        return "yes"
    if verdict.recovered is None:
        return "unknown: not measured: " + "; ".join(verdict.unmeasured)
    return "no: " + "; ".join(verdict.failed)


def write_postmortem(inc: Incident, window_minutes: int = 120) -> Path:
    """``postmortem.md`` in the playbook's template, beside the notebooks, with chart images."""
    cfg = inc.config
    severity = inc.earlier(R.SEVERITY)
    start = inc.earlier(R.INCIDENT_START)
    images: list[str] = []
    frame = inc.attempt("error ratio for the post-mortem", lambda: prom.error_ratio(
        inc.prom, prom.Window.last(timedelta(minutes=limits.bounded("window_minutes", window_minutes))),
        by_service=True))
    if isinstance(frame, pd.DataFrame):
        history = inc.run.get(R.ROLLOUT_HISTORY)
        chart = charts.error_ratio_chart(frame, moderate=cfg.error_ratio_moderate, high=cfg.error_ratio_high,
                                         incident_start=start, deploys=pd.DataFrame(history) if history else None,
                                         label=cfg.prom_service_label)
        if charts.save_image(chart, inc.run_dir / "postmortem-error-ratio.png"):
            images.append("postmortem-error-ratio.png")
    found = inc.earlier(R.FINDINGS)
    causes = [f for f in found if f.is_cause]
    symptoms = [f for f in found if not f.is_cause]
    steps = inc.earlier(R.MITIGATIONS)
    lines = [
        f"# Incident Post-Mortem: {inc.id}",
        "", "## Summary",
        f"- **Date**: {(start or inc.started_at).date().isoformat()}",
        f"- **Duration**: {(inc.current(R.RESPONSE) or {}).get('duration so far', 'unknown')}",
        f"- **Severity**: {severity.name if severity else 'unknown'}",
        f"- **Impact**: {'; '.join(severity.reasons) if severity else 'unknown'}",
        "", "## Timeline",
        *[f"- {row['time']}: {row['event']}" for row in inc.rows(R.TIMELINE)],
        "", "## Root Cause",
        *([f"{i + 1}. **{f.kind.value}** {f.subject}: {f.detail}" for i, f in enumerate(causes[:5])]
          or ["[Detailed root cause analysis: the investigation found symptoms but no cause]"]),
        "", "### Symptoms observed",
        *([f"- **{f.kind.value}** {f.subject}: {f.detail}" for f in symptoms] or ["- none recorded"]),
        "", "## Resolution",
        *([f"- {s.action} {s.target} ({s.status}): `{s.command}`" for s in steps]
          or ["- no mitigation was planned"]),
        f"- Recovery validated: {_recovery_line(inc.earlier(R.VERDICT))}",
        "", "## Action Items", "- [ ] [Specific actions to prevent recurrence] (owner, due date)",
        "", "## Lessons Learned", "[What we learned from this incident]",
        "", "## Charts", *[f"![{name}]({name})" for name in images],
        "", "## Resolution message", "```", resolution_message(inc).rstrip(), "```", "",
    ]
    path = inc.run_dir / "postmortem.md"
    path.write_text("\n".join(lines))
    inc.record(R.POSTMORTEM, {"path": str(path), "images": images})
    return path
