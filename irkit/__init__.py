"""irkit: the incident-response playbook as code, for Jupyter runbook notebooks.

One module per playbook concern: ``config`` (the target system), ``pg``, ``prom``,
``k8s`` (read-only investigation of each source), ``severity`` (classification),
``errors`` (the exception tree). Notebooks import these and call one function per
cell.
"""

from __future__ import annotations

import importlib
from typing import Any

from irkit.config import Config, Secret
from irkit.config import load as load_config
from irkit.errors import IrkitError
from irkit.severity import Assessment, Signals, classify

_MODULES = frozenset({
    "assess", "charts", "cli", "config", "drill", "errors", "evidence", "findings", "http", "incident",
    "investigate", "k8s", "limits", "mitigate", "pg", "postmortem", "prom", "runner", "severity", "validate",
})


def __getattr__(name: str) -> Any:
    # Submodules load on first use: a notebook kernel that needs ``assess`` does not pay
    # for papermill, nbconvert and the drill lab (seconds per kernel otherwise).
    if name in _MODULES:
        return importlib.import_module(f"irkit.{name}")
    raise AttributeError(f"module 'irkit' has no attribute {name!r}")


__all__ = [
    "Assessment",
    "Config",
    "IrkitError",
    "Secret",
    "Signals",
    "assess",
    "charts",
    "classify",
    "cli",
    "config",
    "drill",
    "errors",
    "evidence",
    "findings",
    "http",
    "incident",
    "investigate",
    "k8s",
    "limits",
    "load_config",
    "mitigate",
    "pg",
    "postmortem",
    "prom",
    "runner",
    "severity",
    "validate",
]

__version__ = "0.1.0"
