"""Phase 3, mitigation (3.1): the plan the findings point to. Nothing here changes anything.

Executing a plan (dry run by default, confirmation, before/after audit) is a later
step; this phase states which action, on what, why, and the exact command.
"""

from __future__ import annotations

import pandas as pd

from irkit.display import views
from irkit.evidence import records as R
from irkit.phases.incident import Incident
from irkit.rules.plan import PlanTargets, plan

__all__ = ["findings", "mitigation_plan"]


def findings(inc: Incident) -> pd.DataFrame | views.Note:
    """The ranked findings phase 2 recorded."""
    found = inc.earlier(R.FINDINGS)
    if not found and inc.run.raw(R.FINDINGS) is None:
        return views.Note("phase 2 (investigate) has not been run for this run: there are no findings to plan "
                          "from; run phase 2 first (irkit run --phases 2-3)")
    return views.shown(pd.DataFrame([{"kind": f.kind.value, "subject": f.subject, "detail": f.detail}
                                     for f in found], columns=["kind", "subject", "detail"]),
                       "phase 2 found nothing")


def mitigation_plan(inc: Incident) -> views.PlanView:
    """Playbook 3.1 mitigations for the findings, most urgent first. A false alarm plans nothing."""
    if inc.run.raw(R.FINDINGS) is None:
        inc.record(R.MITIGATIONS, [])
        return views.PlanView([], "no plan: phase 2 (investigate) has not been run, so nothing was found to "
                                  "plan from")
    real, ongoing = inc.earlier(R.REAL), inc.earlier(R.ONGOING)
    if real and ongoing is False:  # it happened and is over: nothing to mitigate, the post-mortem is next
        inc.record(R.MITIGATIONS, [])
        over = inc.earlier(R.RESOLVED_AT)
        return views.PlanView([], f"nothing to mitigate: the incident is over (resolved"
                                  f"{f' at {over:%H:%M} UTC' if over else ''}); validate (phase 4), then write the "
                                  "post-mortem")
    steps = [] if real is False else plan(inc.earlier(R.FINDINGS), PlanTargets.from_config(inc.config))
    inc.record(R.MITIGATIONS, [step.as_dict() for step in steps])
    return views.PlanView(steps)
