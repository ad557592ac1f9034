"""irkit: the incident-response playbook as code, for Jupyter runbook notebooks.

The package is laid out by kind of room (see the README's layout): ``sources`` (pg, prom,
k8s, http: read-only investigation of each source), ``rules`` (severity, diagnosis, the
plan: pure), ``evidence`` (the run directory), ``display`` (renderers and charts),
``actions`` (the only code that changes anything: plan, confirm, apply, verify, undo),
``phases`` (one module per notebook). The names below reach each of them from ``irkit``:
``from irkit import pg, prom, k8s``.
"""

from __future__ import annotations

import importlib
from typing import Any

from irkit.config import Config, Secret
from irkit.config import load as load_config
from irkit.errors import IrkitError
from irkit.rules.severity import Assessment, Signals, classify

# The modules a notebook user reaches from ``irkit``, by the name they are known by.
_MODULES = {
    "pg": "irkit.sources.pg", "prom": "irkit.sources.prom", "k8s": "irkit.sources.k8s", "http": "irkit.sources.http",
    "severity": "irkit.rules.severity", "diagnosis": "irkit.rules.diagnosis", "plan": "irkit.rules.plan",
    "charts": "irkit.display.charts", "actions": "irkit.actions", "comms": "irkit.comms",
    "assess": "irkit.phases.assess", "investigate": "irkit.phases.investigate", "mitigate": "irkit.phases.mitigate",
    "validate": "irkit.phases.validate", "postmortem": "irkit.phases.postmortem", "incident": "irkit.phases.incident",
    "phases": "irkit.phases", "rules": "irkit.rules", "sources": "irkit.sources", "display": "irkit.display",
    "evidence": "irkit.evidence", "drill": "irkit.drill", "lab": "irkit.lab", "cli": "irkit.cli", "config": "irkit.config",
    "errors": "irkit.errors", "limits": "irkit.limits", "runner": "irkit.runner", "serve": "irkit.serve",
    "escaping": "irkit.escaping", "redaction": "irkit.redaction", "playbook": "irkit.playbook",
    "jupyter": "irkit.jupyter",
}


def __getattr__(name: str) -> Any:
    # Submodules load on first use: a notebook kernel that needs ``assess`` does not pay
    # for papermill, nbconvert and the drill lab (seconds per kernel otherwise).
    if name in _MODULES:
        return importlib.import_module(_MODULES[name])
    raise AttributeError(f"module 'irkit' has no attribute {name!r}")


__all__ = [
    "Assessment",
    "Config",
    "IrkitError",
    "Secret",
    "Signals",
    "actions",
    "assess",
    "charts",
    "classify",
    "cli",
    "comms",
    "config",
    "diagnosis",
    "display",
    "drill",
    "errors",
    "escaping",
    "evidence",
    "http",
    "incident",
    "jupyter",
    "investigate",
    "k8s",
    "lab",
    "limits",
    "load_config",
    "mitigate",
    "pg",
    "phases",
    "plan",
    "playbook",
    "postmortem",
    "prom",
    "redaction",
    "rules",
    "runner",
    "serve",
    "severity",
    "sources",
    "validate",
]

__version__ = "0.1.0"
