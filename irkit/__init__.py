"""irkit: the incident-response playbook as code, for Jupyter runbook notebooks.

One module per playbook concern: ``config`` (the target system), ``pg``, ``prom``,
``k8s`` (read-only investigation of each source), ``severity`` (classification),
``errors`` (the exception tree). Notebooks import these and call one function per
cell.
"""

from __future__ import annotations

from irkit import (
                   assess,
                   charts,
                   cli,
                   config,
                   errors,
                   evidence,
                   findings,
                   http,
                   incident,
                   investigate,
                   k8s,
                   mitigate,
                   pg,
                   postmortem,
                   prom,
                   runner,
                   severity,
                   validate,
)
from irkit.config import Config, Secret
from irkit.config import load as load_config
from irkit.errors import IrkitError
from irkit.severity import Assessment, Signals, classify

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
    "errors",
    "evidence",
    "findings",
    "http",
    "incident",
    "investigate",
    "k8s",
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
