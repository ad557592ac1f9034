"""Phase 3, mitigation (3.1): the plan the findings point to. Nothing here changes anything.

Executing a plan (dry run by default, confirmation, before/after audit) is a later
step; this phase states which action, on what, why, and the exact command.
"""

from __future__ import annotations

import pandas as pd

from irkit.findings import Finding, plan
from irkit.incident import Incident

__all__ = ["findings", "mitigation_plan"]


def findings(inc: Incident) -> pd.DataFrame:
    """The ranked findings phase 2 recorded."""
    return pd.DataFrame(inc.earlier(2, "findings", []), columns=["kind", "subject", "detail", "evidence"])


def mitigation_plan(inc: Incident) -> pd.DataFrame:
    """Playbook 3.1 mitigations for the findings, most urgent first. A false alarm plans nothing."""
    cfg = inc.config
    real = inc.earlier(1, "real", True)
    recorded = inc.earlier(2, "findings", [])
    steps = [] if real is False else plan(
        [Finding(f["kind"], f["subject"], f["detail"], f.get("evidence", {})) for f in recorded],
        cfg.namespace, postgres=cfg.postgres_statefulset, database=cfg.pg_database)
    inc.record("mitigations", [{**step.__dict__, "status": "planned"} for step in steps])
    return pd.DataFrame([step.__dict__ for step in steps], columns=["action", "target", "why", "command", "finding"])
