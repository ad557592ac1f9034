"""The records a run keeps, declared once: each quantity one typed key, one name, one shape on disk.

A phase writes its records into ``phase-N.json`` (``{"schema_version", "incident", "phase",
"started_at", "finished_at", "records": {name: value}, "problems": [...]}``) through
:class:`irkit.phases.incident.Incident`; a later phase, the run's summary and the
post-mortem read them back through :class:`RunRecords` and the keys below, typed, never
by a string. The records table of docs/records.md is generated from :data:`KEYS` (a docs test
keeps it so).

A value is JSON: tables are lists of rows (the columns are in each key's doc), typed
records (:class:`~irkit.rules.severity.Assessment`, :class:`~irkit.rules.kinds.Finding`,
:class:`~irkit.rules.plan.Mitigation`, :class:`~irkit.rules.recovery.Verdict`) their
``as_dict()``. A step whose source failed records an *unavailable* marker instead
(``{"what", "error", "kind"}``); typed readers return None for it, and
:meth:`RunRecords.unavailable` says why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from irkit.actions.model import Outcome, Step
from irkit.evidence.rundir import RunDir, read_json
from irkit.rules.kinds import Finding
from irkit.rules.plan import Mitigation
from irkit.rules.recovery import Verdict
from irkit.rules.severity import Assessment

__all__ = ["KEYS", "SCHEMA_VERSION", "Key", "RunRecords", "Unavailable", "is_unavailable"]

SCHEMA_VERSION = 1
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class Unavailable:
    """A step whose source failed: what was asked and the error that says what to check."""

    what: str
    error: str
    kind: str

    def __repr__(self) -> str:
        return f"{self.what}: unavailable ({self.kind}): {self.error}"


def is_unavailable(value: Any) -> bool:
    """Whether a stored value is the marker of a failed step."""
    return isinstance(value, dict) and {"what", "error", "kind"} <= set(value) and len(value) == 3


def _rows(value: Any) -> Rows:
    return [dict(row) for row in value if isinstance(row, dict)] if isinstance(value, list) else []


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _dict(value: Any) -> dict[str, Any] | None:
    return dict(value) if isinstance(value, dict) and not is_unavailable(value) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _from(cls: Any, value: Any) -> Any:
    """``cls.from_dict(value)``, or None for a marker or a record that does not parse (edited by hand, cut
    short): a reader never fails on what a run left behind."""
    if not isinstance(value, dict) or is_unavailable(value):
        return None
    try:
        return cls.from_dict(value)
    except (KeyError, TypeError, ValueError):
        return None


def _typed(cls: Any) -> Callable[[Any], Any]:
    def load(value: Any) -> Any:
        return _from(cls, value)
    return load


def _typed_list(cls: Any) -> Callable[[Any], Any]:
    def load(value: Any) -> Any:
        items = [_from(cls, v) for v in value] if isinstance(value, list) else []
        return [item for item in items if item is not None]
    return load


@dataclass(frozen=True)
class Key(Generic[T_co]):
    """One record: its ``name`` on disk, the ``phase`` that records it, what it holds, and its reader."""

    name: str
    phase: int
    doc: str
    load: Callable[[Any], T_co]


KEYS: dict[str, Key[Any]] = {}


def _key(name: str, phase: int, doc: str, load: Callable[[Any], T]) -> Key[T]:
    key: Key[T] = Key(name, phase, doc, load)
    KEYS[name] = key
    return key


# Phase 1: detection and initial assessment
ERROR_RATIO_NOW = _key("error_ratio_now", 1, "rows: service (`all` = overall), error_ratio (0..1); phase 2 "
                                            "records it again when it runs", _rows)
LATENCY_P95_NOW = _key("latency_p95_now", 1, "rows: service (`all` = overall), seconds; phase 2 again", _rows)
INCIDENT_START = _key("incident_start", 1, "ISO time the error ratio last crossed error_ratio_moderate (when it never "
                                           "did: p95 latency its SEV-2 line), or null", _time)
ONSET_SIGNAL = _key("onset_signal", 1, "what crossed its line at the onset: \"error ratio\", or \"p95 latency\" (a "
                                       "latency-only incident)", lambda v: str(v) if isinstance(v, str) else None)
ONSET_THRESHOLD = _key("onset_threshold", 1, "the line whose crossing is the onset: error_ratio_moderate (0..1), or "
                                            "latency_p95_slow_seconds for a latency-only incident", lambda v: float(v) if isinstance(v, int | float)
                       and not isinstance(v, bool) else None)
LOCK_WAITS_NOW = _key("lock_waits_now", 1, "{waiting, roots}: sessions waiting on a lock now, behind how many roots",
                      _dict)
ERROR_RATIO_PEAK = _key("error_ratio_peak", 1, "{service, error_ratio, at}: the highest error ratio held for three "
                                               "steps in the window", _dict)
LATENCY_P95_PEAK = _key("latency_p95_peak", 1, "{service, seconds, at}: the highest p95 held for three steps", _dict)
RESOLVED_AT = _key("resolved_at", 1, "ISO time the signals went back under their thresholds, when the incident "
                                     "is over; else null", _time)
WINDOW = _key("window", 1, "{start, end}: the charts' window", _dict)
WORKLOADS = _key("workloads", 1, "rows: kind, name, desired, ready, updated, image, template_writer, "
                                 "template_written_at (who last wrote the pod template: managedFields); phase 2 again",
                 _rows)
WORKLOADS_DOWN = _key("workloads_down", 1, "names of workloads with no ready replica", _strings)
WORKLOADS_DEGRADED = _key("workloads_degraded", 1, "names of workloads with some replicas not ready", _strings)
ENDPOINTS = _key("endpoints", 1, "rows: url, ok, status, seconds, error, journey, journey_level; phase 2 again",
                 _rows)
SEVERITY = _key("severity", 1, "the assessment: level (null: unknown), name, real, known, reasons, unmeasured, "
                               "detected_at, respond_by, response_time, escalation", _typed(Assessment))
RELATED_INCIDENTS = _key("related_incidents", 1, "rows: incident, run, severity, overlap, path", _rows)
AFFECTED = _key("affected", 1, "services and workloads over a threshold or not ready", _strings)
REAL = _key("real", 1, "is it an incident: true, false, or null (unknown)", _bool)
ONGOING = _key("ongoing", 1, "is it still happening: true, false, or null (unknown)", _bool)
# Phase 2: investigation
SEVERITY_REVISED = _key("severity_revised", 2, "phase 1's assessment revisited with the findings (authentication "
                                               "failures, blockchain connectivity, a cause beside a SEV-4): the "
                                               "fields of severity, and cause", _typed(Assessment))
UNHEALTHY_PODS = _key("unhealthy_pods", 2, "rows: pod, phase, ready, all_ready, restarts, waiting_reason, "
                                          "last_termination_reason, last_exit_code, last_terminated_at, node, "
                                          "age_seconds, created, owner, app, memory_limit, waiting_message, "
                                          "last_termination_message", _rows)
WARNING_EVENTS = _key("warning_events", 2, "rows: last_seen, type, reason, object, message, count, first_seen "
                                          "(newest first)", _rows)
TOP_PODS = _key("top_pods", 2, "rows: pod, container, cpu_millicores, memory_mib; or {unavailable: why}", _rows)
CONFIG_CHANGES = _key("config_changes", 2, "rows: kind (ConfigMap, Secret), name, changed_at, manager: when each "
                                          "was last written (Secrets read as metadata only)", _rows)
SERVICES = _key("services", 2, "rows: name, selector, port, target_port, ready, not_ready: each Service and the "
                               "addresses its Endpoints list (ready with a port)", _rows)
CRONJOBS = _key("cronjobs", 2, "rows: name, schedule, suspend, last_schedule, command: what runs on a schedule "
                               "(one may re-apply a change after every fix)", _rows)
LOGS = _key("logs", 2, "rows: deployment, container, pods, text (identical text folded)", _rows)
PREVIOUS_LOGS = _key("previous_logs", 2, "rows as logs, of the restarted pods' previous containers", _rows)
ROLLOUT_HISTORY = _key("rollout_history", 2, "rows: deployment, revision, replicaset, images, created, "
                                            "change_cause, current", _rows)
PG_ACTIVITY = _key("pg_activity", 2, "rows: state, sessions, oldest_seconds (pg_stat_activity by state)", _rows)
LOCK_EDGES = _key("lock_edges", 2, "rows: blocked_pid, blocking_pid, wait_event_type, wait_event, wait_seconds, "
                                  "blocked_query, blocking_query, blocking_state, blocking_xact_seconds", _rows)
LOCK_ROOTS = _key("lock_roots", 2, "rows: pid, state, blocked_count, direct_count, xact_seconds, query, usename, "
                                  "application_name", _rows)
LOCK_CYCLES: Key[list[list[int]]] = _key("lock_cycles", 2, "lists of pids waiting on each other",
                                         lambda v: [list(c) for c in v if isinstance(c, list)] if isinstance(v, list)
                                         else [])
LOCK_SAMPLES = _key("lock_samples", 2, "the lock graph at moments of this phase (phase 4 records its own): at, source, "
                                     "waiting, roots (pid, state, query, application_name, xact_seconds, "
                                     "blocked_count), more_roots, cycles", _rows)
LOCK_TREE = _key("lock_tree", 2, "the lock graph as indented text", _text)
LONG_RUNNING = _key("long_running", 2, "rows: pid, state, age_seconds, query_seconds, xact_seconds, "
                                      "wait_event_type, wait_event, usename, application_name, query", _rows)
DATABASE_LOGS = _key("database_logs", 2, "rows as logs, of the database StatefulSet's pods", _rows)
PG_DEADLOCKS = _key("pg_deadlocks", 2, "{deadlocks}: pg_stat_database.deadlocks, detected and broken since the "
                                       "statistics were reset", _dict)
CONNECTIONS = _key("connections", 2, "rows: application_name, state, sessions, oldest_state_seconds (whole server)",
                   _rows)
REQUEST_RATE = _key("request_rate", 2, "rows: service, rps_now, rps_baseline (median of the window's first half)",
                    _rows)
TABLE_SCANS = _key("table_scans", 2, "rows: tablename, seq_scans, rows_per_scan, live_tuples, index_scans "
                                     "(pg_stat_user_tables, most rows read by sequential scans first)", _rows)
TOP_STATEMENTS = _key("top_statements", 2, "rows: query, calls, mean_ms, total_ms, rows (pg_stat_statements, "
                                           "most time first; empty when the extension is not installed)", _rows)
PG_SATURATION = _key("pg_saturation", 2, "{sessions, in_database, max_connections, reserved}", _dict)
FINDINGS = _key("findings", 2, "ranked findings: kind, subject, detail, evidence (the fields of the kind's evidence class in irkit/rules/kinds.py: pid, deployment, revision, ...; impact)", _typed_list(Finding))
# Phase 3: mitigation
MITIGATIONS = _key("mitigations", 3, "the plan: action, target, why, command, finding, status, params",
                   _typed_list(Mitigation))
STEPS = _key("steps", 3, "the plan prepared: id, action, target, system, why, command, params, before, after, "
                         "guardrails, refused, dry_run, undo, undo_command", _typed_list(Step))
OUTCOMES = _key("outcomes", 3, "what became of each step: id, action, status (dry-run, refused, applying: written "
                               "before the change is made and replaced by its outcome, so a run killed in between "
                               "says the step was in flight; applied, failed, undone, undo-failed), detail, before, "
                               "after, confirmation {incident, ids, by, at, via}, started_at, seconds",
                _typed_list(Outcome))
# Phase 4: recovery and validation
BASELINE = _key("baseline", 4, "rows: service, value: the error ratio 10 minutes before the onset", _rows)
CHECKS = _key("checks", 4, "rows: check, ok (true, false, or null: not measured), detail", _rows)
VERDICT = _key("verdict", 4, "recovered (true, false, or null: unknown), failed, unmeasured", _typed(Verdict))
# Phase 5: post-incident
TIMELINE = _key("timeline", 5, "rows: time, source, kind, event, link: every event of the incident across its runs "
                               "(also timeline.json, with the measures)", _rows)
RESPONSE = _key("response", 5, "{measure: value}: severity, onset, detected, acknowledged, mitigated, resolved, MTTD, "
                               "MTTA, MTTM, MTTR, respond by, response within deadline, duration", _dict)
POSTMORTEM = _key("postmortem", 5, "{path, images}", _dict)


class RunRecords:
    """What the phases of one run recorded, read back typed: ``RunRecords(run_dir).get(SEVERITY)``."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._phases: dict[int, dict[str, Any]] = {}

    def phase(self, number: int) -> dict[str, Any]:
        """The whole ``phase-N.json`` (empty when that phase did not run or its file is unreadable)."""
        if number not in self._phases:
            data = read_json(RunDir(self.run_dir).phase_json(number))
            self._phases[number] = data if isinstance(data, dict) else {}
        return self._phases[number]

    def forget(self, number: int) -> None:
        """Read ``phase-N.json`` again next time (its phase wrote to it since)."""
        self._phases.pop(number, None)

    def raw(self, key: Key[Any], phase: int | None = None) -> Any:
        records = self.phase(phase or key.phase).get("records")
        return records.get(key.name) if isinstance(records, Mapping) else None

    def get(self, key: Key[T], phase: int | None = None) -> T:
        """The record, typed; None (or an empty list) when absent or its step was unavailable."""
        return key.load(self.raw(key, phase))

    def unavailable(self, key: Key[Any], phase: int | None = None) -> Unavailable | None:
        value = self.raw(key, phase)
        return Unavailable(**value) if is_unavailable(value) else None
