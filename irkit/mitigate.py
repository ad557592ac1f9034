"""Phase 3, mitigation (3.1): the plan the findings point to. Nothing here changes anything.

Executing a plan (dry run by default, confirmation, before/after audit) is a later
step; this phase states which action, on what, why, and the exact command.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from irkit.findings import Finding, plan
from irkit.incident import Incident

__all__ = ["PlanView", "findings", "mitigation_plan"]


def findings(inc: Incident) -> pd.DataFrame:
    """The ranked findings phase 2 recorded."""
    return pd.DataFrame(inc.earlier(2, "findings", []), columns=["kind", "subject", "detail", "evidence"])


class PlanView:
    """The plan as numbered steps, each with its reason and the whole command ready to copy."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from html import escape
        steps = self.frame.to_dict("records")
        if not steps:
            text = "nothing to do: no finding calls for a mitigation"
            return {"text/plain": text, "text/html": f"<p>{escape(text)}</p>"}
        plain = "\n\n".join(f"{i}. {s['action']} {s['target']}: {s['why']}\n   {s['command']}"
                             for i, s in enumerate(steps, 1))
        html = "<ol>" + "".join(
            f"<li><b>{escape(s['action'])}</b> {escape(s['target'])}: {escape(s['why'])} "
            f"<i>(from {escape(s['finding'])})</i><pre>{escape(s['command'])}</pre></li>" for s in steps) + "</ol>"
        return {"text/plain": plain, "text/html": html}


def mitigation_plan(inc: Incident) -> PlanView:
    """Playbook 3.1 mitigations for the findings, most urgent first. A false alarm plans nothing."""
    cfg = inc.config
    real = inc.earlier(1, "real", True)
    recorded = inc.earlier(2, "findings", [])
    steps = [] if real is False else plan(
        [Finding(f["kind"], f["subject"], f["detail"], f.get("evidence", {})) for f in recorded],
        cfg.namespace, postgres=cfg.postgres_statefulset, database=cfg.pg_database, admin_user=cfg.pg_admin_user,
        backend=cfg.backend_deployment)
    inc.record("mitigations", [{**step.__dict__, "status": "planned"} for step in steps])
    return PlanView(pd.DataFrame([step.__dict__ for step in steps],
                                 columns=["action", "target", "why", "command", "finding"]))
