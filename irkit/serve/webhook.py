"""The webhook's side of ``irkit serve``: an Alertmanager alert group (payload version 4) checked into a
:class:`Group` (:class:`AlertGroup`, a pydantic model, reads the body), the incident it is, and the token a caller
presents.

What an alert carries is hostile data: its labels and annotations are redacted, its name cut to
:data:`MAX_NAME`, the parameters its annotation names checked against the notebooks on receipt, and
``execute_mitigations`` and ``confirm`` refused outright: whatever can post an alert can never change production.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from irkit import runner
from irkit.config import redact
from irkit.errors import ConfigError, ParameterError

__all__ = ["FIRING_PHASES", "MAX_BODY", "MAX_DEPTH", "MAX_NAME", "NEVER_FROM_AN_ALERT", "RESOLVED_PHASES",
           "TOKEN_ENV", "TOKEN_FILE_ENV", "Alert", "AlertGroup", "BadGroup", "Group", "incident_id", "parse_group",
           "read_token"]

MAX_BODY = 1 << 20
TOKEN_ENV, TOKEN_FILE_ENV = "IRKIT_SERVE_TOKEN", "IRKIT_SERVE_TOKEN_FILE"
FIRING_PHASES, RESOLVED_PHASES = "1-2", "4-5"  # a resolved group: validate recovery, then the resolution and post-mortem
MAX_DEPTH = 32  # nesting of a webhook body: Alertmanager's is 4 deep
MAX_NAME = 200  # characters of an alert name kept (a run's --context stays far under its bound)
# Parameters no alert may set: whatever can post an alert must never be able to change production.
NEVER_FROM_AN_ALERT = frozenset({"execute_mitigations", "confirm"})
_STRUCTURE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


class BadGroup(ValueError):
    """A webhook body that is not an alert group Alertmanager sends (version 4); its text is the 400's reason."""


@dataclass(frozen=True)
class Group:
    """What a run needs of an alert group."""

    key: str
    status: str  # firing | resolved
    name: str  # alertname of the group (or of its first alert)
    starts_at: str
    phases: str
    parameters: dict[str, str]


def read_token(env: Mapping[str, str] | None = None) -> str:
    """The token callers must present: ``IRKIT_SERVE_TOKEN``, or the file ``IRKIT_SERVE_TOKEN_FILE`` names."""
    env = os.environ if env is None else env
    if env.get(TOKEN_ENV):
        return env[TOKEN_ENV]
    path = env.get(TOKEN_FILE_ENV)
    if not path:
        raise ConfigError(f"irkit serve needs a bearer token for Alertmanager: set {TOKEN_ENV}, or {TOKEN_FILE_ENV} to "
                          "a file holding it (the same value as the receiver's http_config authorization)")
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{TOKEN_FILE_ENV}={path!r} cannot be read ({exc.strerror}); fix the path") from exc
    if not token:
        raise ConfigError(f"{TOKEN_FILE_ENV}={path!r} is empty; put the token in it")
    return token


def incident_id(group_key: str) -> str:
    """The incident an alert group is: stable for the group, whatever its alerts do meanwhile."""
    return "ALERT-" + hashlib.sha256(group_key.encode()).hexdigest()[:12]


def _depth(text: str) -> int:
    """How deeply a JSON text nests arrays and objects (strings skipped), counted in one linear pass that
    stops at MAX_DEPTH + 1: json.loads would recurse once per level."""
    depth = deepest = 0
    for match in _STRUCTURE.finditer(text):
        token = match.group(0)
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                break
        elif token in "]}":
            depth -= 1
    return deepest

# Alertmanager adds fields to its payload from one release to the next (truncatedAlerts came late): a receiver
# that refused the unknown ones would lose alerts at 3 a.m., so they are ignored; version "4" pins what is read.
_PAYLOAD = ConfigDict(extra="ignore", str_max_length=MAX_BODY)


class Alert(BaseModel):
    """One alert of a group, as irkit reads it."""

    model_config = _PAYLOAD
    status: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str | None = None


class AlertGroup(BaseModel):
    """An Alertmanager webhook body (payload version 4), as irkit reads it."""

    model_config = _PAYLOAD
    version: str
    groupKey: str = Field(min_length=1, max_length=4096)
    status: Literal["firing", "resolved"]
    alerts: list[Alert] = Field(min_length=1, max_length=1000)
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)

    @field_validator("version", mode="before")
    @classmethod
    def _four(cls, value: Any) -> str:
        if value != "4":
            raise ValueError(f"version {str(value)[:20]!r} is not 4: irkit reads Alertmanager's webhook payload "
                             "version 4")
        return str(value)


# What each part of the body must be, said as the 400's reason (pydantic names the part, these say the fix).
_REASONS = {"groupKey": "groupKey must be a non-empty string of at most 4096 characters",
            "status": "status must be firing or resolved",
            "alerts": "alerts must be a non-empty list of at most 1000 alerts",
            "labels": "an alert's labels must be an object of strings",
            "annotations": "an alert's annotations must be an object of strings",
            "groupLabels": "groupLabels must be an object of strings",
            "commonLabels": "commonLabels must be an object of strings"}


def _reason(error: ValidationError) -> str:
    first = error.errors()[0]
    if first["type"] == "value_error":
        return str(first["msg"]).removeprefix("Value error, ")
    named = [str(part) for part in first["loc"] if str(part) in _REASONS]
    if named:
        return _REASONS[named[-1]]
    if not first["loc"]:
        return "the body must be a JSON object (an Alertmanager alert group)"
    return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"


def parse_group(body: bytes, firing_phases: str = FIRING_PHASES, resolved_phases: str = RESOLVED_PHASES) -> Group:
    """An Alertmanager webhook body (version 4) as a :class:`Group`; :class:`BadGroup` says what is wrong (see the
    module docstring for what is refused)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadGroup("the body is not UTF-8 JSON") from exc
    if _depth(text) > MAX_DEPTH:
        raise BadGroup(f"the body nests deeper than {MAX_DEPTH} levels; an alert group is 4 deep")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BadGroup("the body is not JSON") from exc
    try:
        group = AlertGroup.model_validate(data)
    except ValidationError as exc:
        raise BadGroup(_reason(exc)) from exc
    starts = sorted(a.startsAt[:64] for a in group.alerts if a.startsAt)
    name = (group.groupLabels.get("alertname") or group.commonLabels.get("alertname")
            or group.alerts[0].labels.get("alertname") or "alert")
    bound = next((a.annotations for a in group.alerts
                  if "irkit_phases" in a.annotations or "irkit_parameters" in a.annotations), {})
    phases = bound.get("irkit_phases", firing_phases) if group.status == "firing" else resolved_phases
    parameters: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in bound.get("irkit_parameters", "").split(","))):
        pname, sep, value = item.partition("=")
        if not sep or not pname.strip():
            raise BadGroup(f"annotation irkit_parameters: {item[:40]!r} is not name=value")
        if pname.strip() in NEVER_FROM_AN_ALERT:
            raise BadGroup(f"annotation irkit_parameters: {pname.strip()} cannot come from an alert: a person "
                           "confirms a change (JupyterLab, or irkit run -p confirm)")
        parameters[pname.strip()] = value.strip()
    try:
        runner.check_parameters(parameters, runner.parse_phases(phases))  # refused now, not in a worker later
    except ParameterError as exc:
        raise BadGroup(f"annotation irkit_parameters or irkit_phases: {exc}") from exc
    return Group(group.groupKey, group.status, redact(name)[:MAX_NAME], starts[0] if starts else "", phases,
                 parameters)
