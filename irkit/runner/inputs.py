"""What ``irkit run`` takes from outside, checked before anything runs: the phases, the parameters against what
each notebook declares (never echoing a value: it may be a secret typed into the wrong parameter), and the
context ``irkit serve`` hands a run it starts as a Job."""

from __future__ import annotations

import ast
import functools
import json
import re
from collections.abc import Mapping
from typing import Any

import papermill

from irkit import limits, playbook
from irkit.config import boolean, redact
from irkit.errors import ParameterError

__all__ = ["CONTEXT_KEYS", "RESERVED", "check_incident", "check_parameters", "declared_parameters", "echo", "parse_context",
           "parse_phases"]

RESERVED = {"incident_id", "run_dir", "config_path"}
_SECRET = re.compile(r"pass(word|wd)?|token|secret|webhook|api_?key|credential|dsn", re.IGNORECASE)
_SECRET_ENV = {"password": "IRKIT_PG_PASSWORD", "dsn": "IRKIT_PG_DSN", "token": "IRKIT_PROM_TOKEN"}

_PHASE_PART = re.compile(r"\s*(\d{1,2})\s*(?:-\s*(\d{1,2})\s*)?")


def parse_phases(text: str) -> list[int]:
    """``"1-5"``, ``"2"``, ``"1,3-4"`` into phase numbers; anything else is refused before a range is built."""
    phases: set[int] = set()
    parts = text.split(",") if len(text) <= 64 else []
    for part in parts:
        match = _PHASE_PART.fullmatch(part)
        if match is None:
            parts = []
            break
        lo, hi = int(match.group(1)), int(match.group(2) or match.group(1))
        if not (lo in playbook.NUMBERS and hi in playbook.NUMBERS and lo <= hi):
            raise ParameterError(f"--phases {echo(text)}: phases are 1 to 5, like 1-5 or 2,4")
        phases.update(range(lo, hi + 1))
    if not parts or not phases:
        raise ParameterError(f"--phases {echo(text)} is not like 1-5 or 1,3; phases are 1 to 5")
    return sorted(phases)


def check_incident(incident: str) -> str:
    """An incident id as irkit names directories after it: letters, digits, '.', '_', '-' (ParameterError)."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", incident):
        raise ParameterError(f"--incident {echo(incident)}: use letters, digits, '.', '_' or '-', like INC-123")
    return incident


CONTEXT_KEYS = ("alert", "alert_group", "serve_job", "drill")  # what serve passes a Job; the drill its runs


def parse_context(text: str) -> dict[str, Any]:
    """``--context``: a JSON object of :data:`CONTEXT_KEYS` (the alert that started the run), at most 8 KiB."""
    try:
        value = json.loads(text) if len(text) <= 8192 else None
    except ValueError:
        value = None
    if not isinstance(value, dict) or set(value) - set(CONTEXT_KEYS) or not all(
            isinstance(v, (str, dict)) for v in value.values()):
        raise ParameterError(f"--context {echo(text)} is not a JSON object of {', '.join(CONTEXT_KEYS)} (at most "
                             "8 KiB); irkit serve and the lines irkit prints write it: leave it out otherwise")
    return value


def echo(text: str) -> str:
    """An input as it goes into a one-line error: its repr, cut short."""
    shown = repr(text)
    return shown if len(shown) <= 40 else shown[:37] + "..."


@functools.lru_cache(maxsize=8)
def declared_parameters(phase: int) -> dict[str, dict[str, Any]]:
    return dict(papermill.inspect_notebook(str(playbook.phase(phase).path)))


def _convert(name: str, raw: Any, type_name: str) -> Any:
    """A -p value (text) as the type the notebook declares. The value is never echoed: it may be a
    secret typed into the wrong parameter."""
    value = raw
    if isinstance(raw, str):
        try:
            if type_name == "int":
                value = int(raw)
            elif type_name == "float":
                value = float(raw)
            elif type_name == "bool":
                value = boolean(raw)
        except ValueError as exc:
            raise ParameterError(f"parameter {name} must be {type_name} (a {len(raw)}-character value was "
                                 "given); fix the -p value") from exc
    if name in limits.PARAMETERS:
        limits.bounded(name, value)
    return value


def check_parameters(params: Mapping[str, Any], phases: list[int]) -> dict[int, dict[str, Any]]:
    """Each phase's parameters, checked against what its notebook declares, before anything runs.

    Errors name the parameter and never its value (see :func:`_convert`).
    """
    if len(params) > limits.MAX_PARAMETERS:
        raise ParameterError(f"{len(params)} parameters given; at most {limits.MAX_PARAMETERS}")
    declared = {phase: declared_parameters(phase) for phase in phases}
    valid = sorted({name for d in declared.values() for name in d} - RESERVED)
    for name, value in params.items():
        text = value if isinstance(value, str) else ""
        if len(name) > limits.MAX_PARAMETER_TEXT or len(text) > limits.MAX_PARAMETER_TEXT:
            raise ParameterError(f"a parameter name or value is longer than {limits.MAX_PARAMETER_TEXT} "
                                 "characters; notebook parameters are short settings")
        if redact(name) != name or (text and redact(text) != text) or _SECRET.search(name):
            shown = "a parameter" if redact(name) != name else f"parameter {name!r}"
            key = next((k for k in _SECRET_ENV if k in name.lower()), "password")
            raise ParameterError(
                f"{shown} looks like a secret: papermill writes parameters into the executed notebook "
                f"in plain text. Set it in the environment instead (e.g. {_SECRET_ENV[key]}) or in a file named "
                "by pg_password_file / prom_token_file")
        if name in RESERVED:
            raise ParameterError(f"parameter {name!r} is set by irkit run itself; use --incident / --config")
        if name not in valid:
            raise ParameterError(f"unknown parameter {echo(name)}; the selected notebooks take: {', '.join(valid)}")
    return {phase: {name: _convert(name, params[name], _type_of(d[name])) for name in params if name in d}
            for phase, d in declared.items()}


def _type_of(declared: Mapping[str, Any]) -> str:
    """The parameter's type: papermill's annotation if any, else the type of its default literal."""
    if declared.get("inferred_type_name") not in (None, "None"):
        return str(declared["inferred_type_name"])
    try:
        return type(ast.literal_eval(declared.get("default") or "None")).__name__
    except (ValueError, SyntaxError):
        return "str"


