"""Phase 5, post-incident: timeline, response against the deadline, 5 whys, and the post-mortem draft
in the playbook's template (Post-Incident Activities 3-4), with the resolution message."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from irkit import charts, limits, prom
from irkit.findings import is_cause
from irkit.incident import Incident

__all__ = ["five_whys", "resolution_message", "response", "timeline", "write_postmortem"]

PHASES = {1: "detect and assess", 2: "investigate", 3: "mitigate", 4: "recover and validate",
          5: "post-incident"}


def _phase(inc: Incident, n: int) -> dict[str, Any]:
    path = inc.run_dir / f"phase-{n}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def timeline(inc: Incident) -> pd.DataFrame:
    """Detection, each phase's start and end, findings and planned actions, in time order."""
    rows: list[dict[str, Any]] = []
    start = inc.earlier(1, "incident_start")
    if start:
        rows.append({"time": start, "event": "incident start (error ratio crossed the SEV-3 threshold)"})
    for n, name in PHASES.items():
        data = _phase(inc, n) if n != inc.phase else {"started_at": inc.started_at.isoformat()}
        if data.get("started_at"):
            rows.append({"time": data["started_at"], "event": f"phase {n} {name} started"})
        if data.get("finished_at"):
            rows.append({"time": data["finished_at"], "event": f"phase {n} {name} finished"})
        for problem in list(data.get("problems") or []):
            rows.append({"time": problem["at"], "event": f"phase {n}: {problem['step']} unavailable"})
    p1 = _phase(inc, 1)
    severity = (p1.get("records") or {}).get("severity")
    if severity and p1.get("finished_at"):
        rows.append({"time": p1["finished_at"], "event": f"classified {severity['name']}"})
    p2 = _phase(inc, 2)
    for finding in (p2.get("records") or {}).get("findings", [])[:5]:
        rows.append({"time": p2.get("finished_at") or p2.get("started_at"),
                     "event": f"finding: {finding['kind']} {finding['subject']}"})
    p3 = _phase(inc, 3)
    for step in (p3.get("records") or {}).get("mitigations", []):
        rows.append({"time": p3.get("finished_at") or p3.get("started_at"),
                     "event": f"mitigation {step['status']}: {step['action']} {step['target']}"})
    frame = pd.DataFrame(rows, columns=["time", "event"])
    frame["time"] = pd.to_datetime(frame["time"], utc=True, format="ISO8601")
    frame = frame.sort_values("time", kind="stable").reset_index(drop=True)
    inc.record("timeline", frame)
    return frame


def response(inc: Incident) -> pd.DataFrame:
    """Duration and response time against the severity's deadline."""
    severity = inc.earlier(1, "severity") or {}
    start = inc.earlier(1, "incident_start")
    p1 = _phase(inc, 1)
    began = datetime.fromisoformat(start) if start else None
    responded = datetime.fromisoformat(p1["started_at"]) if p1.get("started_at") else None
    now = datetime.now(UTC)
    deadline = datetime.fromisoformat(severity["respond_by"]) if severity.get("respond_by") else None
    rows = [
        ("severity", severity.get("name", "unknown")),
        ("incident start", began.isoformat() if began else "unknown"),
        ("response started", responded.isoformat() if responded else "unknown"),
        ("respond by", deadline.isoformat() if deadline else "unknown"),
        ("response within deadline", "yes" if (responded and deadline and responded <= deadline) else
         ("no" if responded and deadline else "unknown")),
        ("duration so far", str(timedelta(seconds=round((now - began).total_seconds()))) if began else "unknown"),
    ]
    inc.record("response", dict(rows))
    return pd.DataFrame(rows, columns=["measure", "value"])


def five_whys(inc: Incident) -> pd.DataFrame:
    """The 5-whys scaffold, its first answers filled from the findings."""
    found = inc.earlier(2, "findings", [])
    symptom = next((f for f in found if f["kind"] in ("error-spike", "slow-latency", "endpoint-down")), None)
    cause = found[0] if found else None
    rows = [
        ("What happened?", f"{symptom['detail']} on {symptom['subject']}" if symptom else "[symptom]"),
        ("Why did it happen?", f"{cause['kind']}: {cause['detail']}" if cause else "[immediate cause]"),
        ("Why did that happen?", "[underlying cause]"),
        ("Why did that happen?", "[root cause]"),
        ("Why did that happen?", "[system/process failure]"),
    ]
    return pd.DataFrame(rows, columns=["question", "answer"])


def resolution_message(inc: Incident) -> str:
    """The playbook's resolution notification, filled in; a marked draft until phase 4 says recovered."""
    cfg = inc.config
    affected = ", ".join(inc.earlier(1, "affected", []) or [cfg.backend_deployment])
    found = inc.earlier(2, "findings", [])
    cause = next((f for f in found if is_cause(f["kind"])), found[0] if found else None)
    steps = inc.earlier(3, "mitigations", [])
    verdict = inc.earlier(4, "verdict") or {}
    duration = (inc.records.get("response") or {}).get("duration so far", "[duration]")
    brief = f"{cause['kind']} on {cause['subject']}" if cause else "Incident"
    applied = [s["command"] for s in steps if s.get("status") == "applied"]
    planned = [s["command"] for s in steps if s.get("status") != "applied"]
    resolution = "; ".join(applied) or (f"planned, not yet applied: {'; '.join(planned)}" if planned
                                        else "[what was done to fix it]")
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if verdict.get("recovered"):
        head, subject, state = "", f"[RESOLVED] {brief}", f"has been resolved as of {now}"
    else:
        failing = "; ".join((verdict.get("failed") or ["phase 4 has not run"])[:3])
        head = f"DRAFT, do not send: recovery is not validated ({failing}).\n\n"
        subject, state = f"[NOT RESOLVED] {brief}", f"is not resolved as of {now}"
    return (
        f"{head}Subject: {subject}\n\n"
        f"The incident affecting {affected} {state}.\n\n"
        f"Root Cause: {cause['detail'] if cause else '[brief explanation]'}\n"
        f"Resolution: {resolution}\n"
        f"Duration: {duration}\n\n"
        "We apologize for any inconvenience caused. A detailed post-mortem will be published within 48 hours.\n"
    )


def write_postmortem(inc: Incident, window_minutes: int = 120) -> Path:
    """``postmortem.md`` in the playbook's template, beside the notebooks, with chart images."""
    cfg = inc.config
    severity = inc.earlier(1, "severity") or {}
    images: list[str] = []
    frame = inc.attempt("error ratio for the post-mortem", lambda: prom.error_ratio(
        inc.prom, prom.Window.last(timedelta(minutes=limits.bounded("window_minutes", window_minutes))),
        by_service=True))
    if isinstance(frame, pd.DataFrame):
        history = inc.earlier(2, "rollout_history", [])  # an unavailable source is recorded as a dict
        chart = charts.error_ratio_chart(frame, moderate=cfg.error_ratio_moderate, high=cfg.error_ratio_high,
                                         incident_start=inc.earlier(1, "incident_start"),
                                         deploys=pd.DataFrame(history) if isinstance(history, list) and history
                                         else None,
                                         label=cfg.prom_service_label)
        if charts.save_image(chart, inc.run_dir / "postmortem-error-ratio.png"):
            images.append("postmortem-error-ratio.png")
    timeline_rows = inc.records.get("timeline") or []
    found = inc.earlier(2, "findings", [])
    causes = [f for f in found if is_cause(f["kind"])]
    symptoms = [f for f in found if not is_cause(f["kind"])]
    steps = inc.earlier(3, "mitigations", [])
    verdict = inc.earlier(4, "verdict") or {}
    lines = [
        f"# Incident Post-Mortem: {inc.id}",
        "", "## Summary",
        f"- **Date**: {(inc.earlier(1, 'incident_start') or inc.started_at.isoformat())[:10]}",
        f"- **Duration**: {(inc.records.get('response') or {}).get('duration so far', 'unknown')}",
        f"- **Severity**: {severity.get('name', 'unknown')}",
        f"- **Impact**: {'; '.join(severity.get('reasons', [])) or 'unknown'}",
        "", "## Timeline",
        *[f"- {row['time']}: {row['event']}" for row in timeline_rows],
        "", "## Root Cause",
        *([f"{i + 1}. **{f['kind']}** {f['subject']}: {f['detail']}" for i, f in enumerate(causes[:5])]
          or ["[Detailed root cause analysis: the investigation found symptoms but no cause]"]),
        "", "### Symptoms observed",
        *([f"- **{f['kind']}** {f['subject']}: {f['detail']}" for f in symptoms] or ["- none recorded"]),
        "", "## Resolution",
        *([f"- {s['action']} {s['target']} ({s['status']}): `{s['command']}`" for s in steps]
          or ["- no mitigation was planned"]),
        f"- Recovery validated: {'yes' if verdict.get('recovered') else 'no: ' + '; '.join(verdict.get('failed', []))}",
        "", "## Action Items", "- [ ] [Specific actions to prevent recurrence] (owner, due date)",
        "", "## Lessons Learned", "[What we learned from this incident]",
        "", "## Charts", *[f"![{name}]({name})" for name in images],
        "", "## Resolution message", "```", resolution_message(inc).rstrip(), "```", "",
    ]
    path = inc.run_dir / "postmortem.md"
    path.write_text("\n".join(lines))
    inc.record("postmortem", {"path": str(path), "images": images})
    return path
