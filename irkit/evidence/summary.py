"""``summary.json``, typed: what a run concluded, read by attribute (the report, the drill's check, the CLI).

:func:`summarize` builds a :class:`Summary` from the run's phase records when the run is sealed; its
:meth:`Summary.as_dict` is the file (``schema_version`` 1: the same fields as always), and
:meth:`Summary.read` reads one back, passing over what a hand or a crash broke.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from irkit.evidence import records
from irkit.evidence.incident import incident_view
from irkit.evidence.records import RunRecords
from irkit.evidence.rundir import RunDir, read_json
from irkit.rules.kinds import Finding
from irkit.rules.plan import Mitigation
from irkit.rules.recovery import Verdict
from irkit.rules.severity import Assessment

__all__ = ["Action", "PhaseStatus", "Summary", "summarize"]

STATUSES = ("ok", "failed", "interrupted", "skipped", "partial", "running")


@dataclass(frozen=True)
class PhaseStatus:
    """One phase's line: how it ended (``ok``, ``failed``, ``interrupted``, ``skipped``, ``partial``), how long it
    took, and its error."""

    phase: int
    name: str
    notebook: str
    status: str
    duration_seconds: float = 0.0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"phase": self.phase, "name": self.name, "notebook": self.notebook, "status": self.status,
                "duration_seconds": self.duration_seconds, "error": self.error}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PhaseStatus:
        return cls(int(data["phase"]), str(data.get("name") or ""), str(data.get("notebook") or ""),
                   str(data.get("status") or ""), float(data.get("duration_seconds") or 0.0),
                   None if data.get("error") is None else str(data["error"]))


@dataclass(frozen=True)
class Action:
    """A step that was applied, failed, refused, undone, or in flight (``applying``), and who confirmed it."""

    id: str
    action: str
    status: str
    detail: str
    confirmed_by: str | None
    at: str
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "action": self.action, "status": self.status, "detail": self.detail,
                "confirmed_by": self.confirmed_by, "at": self.at, "seconds": self.seconds}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Action:
        return cls(str(data.get("id") or ""), str(data.get("action") or ""), str(data.get("status") or ""),
                   str(data.get("detail") or ""), data.get("confirmed_by"), str(data.get("at") or ""),
                   float(data.get("seconds") or 0.0))


def _typed(cls: Any, value: Any) -> Any:
    try:
        return cls.from_dict(value) if isinstance(value, Mapping) else None
    except (KeyError, TypeError, ValueError):
        return None


def _typed_list(cls: Any, value: Any) -> tuple[Any, ...]:
    items = [_typed(cls, v) for v in value] if isinstance(value, list) else []
    return tuple(item for item in items if item is not None)


@dataclass(frozen=True)
class Summary:
    """What ``summary.json`` holds (docs/records.md)."""

    incident: str
    run_id: str
    started_at: str
    finished_at: str
    phases: tuple[PhaseStatus, ...]
    severity: Assessment | None = None
    real: bool | None = None
    ongoing: bool | None = None
    affected: tuple[str, ...] = ()
    incident_start: str | None = None
    findings: tuple[Finding, ...] = ()  # without their evidence (it stays in phase-2.json)
    mitigations: tuple[Mitigation, ...] = ()
    actions: tuple[Action, ...] = ()
    recovery: Verdict | None = None
    inconclusive: tuple[str, ...] = ()
    artifacts: tuple[str, ...] = field(default=())
    schema_version: int = records.SCHEMA_VERSION
    # The incident across its runs, each fact with the record it came from (IncidentView.as_dict); the fields
    # above are this run's own.
    incident_view: Mapping[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """Every phase passed."""
        return all(p.status == "ok" for p in self.phases)

    @property
    def in_flight(self) -> list[str]:
        """Steps that were being applied when the run stopped: each may or may not have changed its target."""
        return [f"{a.id} ({a.action})" for a in self.actions if a.status == "applying"]

    def with_artifacts(self, artifacts: Sequence[str]) -> Summary:
        return replace(self, artifacts=tuple(artifacts))

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version, "incident": self.incident, "run_id": self.run_id,
            "started_at": self.started_at, "finished_at": self.finished_at,
            "phases": [p.as_dict() for p in self.phases], "ok": self.ok,
            "severity": self.severity.as_dict() if self.severity else None, "real": self.real,
            "ongoing": self.ongoing, "affected": list(self.affected), "incident_start": self.incident_start,
            "findings": [{k: v for k, v in f.as_dict().items() if k != "evidence"} for f in self.findings],
            "mitigations": [m.as_dict() for m in self.mitigations],
            "actions": [a.as_dict() for a in self.actions],
            "recovery": self.recovery.as_dict() if self.recovery else None,
            "inconclusive": list(self.inconclusive),
            **({"artifacts": list(self.artifacts)} if self.artifacts else {}),
            **({"incident_view": dict(self.incident_view)} if self.incident_view is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Summary:
        def flag(value: Any) -> bool | None:
            return value if isinstance(value, bool) else None

        affected = data.get("affected")
        return cls(
            incident=str(data.get("incident") or ""), run_id=str(data.get("run_id") or ""),
            started_at=str(data.get("started_at") or ""), finished_at=str(data.get("finished_at") or ""),
            phases=_typed_list(PhaseStatus, data.get("phases")), severity=_typed(Assessment, data.get("severity")),
            real=flag(data.get("real")), ongoing=flag(data.get("ongoing")),
            affected=tuple(str(a) for a in affected) if isinstance(affected, list) else (),
            incident_start=data.get("incident_start") if isinstance(data.get("incident_start"), str) else None,
            findings=_typed_list(Finding, data.get("findings")),
            mitigations=_typed_list(Mitigation, data.get("mitigations")),
            actions=_typed_list(Action, data.get("actions")), recovery=_typed(Verdict, data.get("recovery")),
            inconclusive=tuple(str(i) for i in data.get("inconclusive") or ()),
            artifacts=tuple(str(a) for a in data.get("artifacts") or ()),
            schema_version=int(data.get("schema_version") or records.SCHEMA_VERSION),
            incident_view=data["incident_view"] if isinstance(data.get("incident_view"), dict) else None)

    @classmethod
    def read(cls, path: Path | RunDir, max_bytes: int = 1 << 20) -> Summary | None:
        """A run's summary (``path``: the run or its summary.json); None when missing, unreadable or not one."""
        file = path.summary if isinstance(path, RunDir) else path
        data = read_json(file, max_bytes)
        return cls.from_dict(data) if isinstance(data, dict) else None


def summarize(run_dir: Path, incident: str, started: datetime, phases: Sequence[PhaseStatus]) -> Summary:
    """The run's summary: each phase's status, and the verdicts its records hold."""
    run = RunRecords(run_dir)
    revised = run.get(records.SEVERITY_REVISED)  # phase 2's, with what the investigation found
    severity = revised or run.get(records.SEVERITY)
    verdict = run.get(records.VERDICT)
    inconclusive = []
    if severity is not None and not severity.known:
        inconclusive.append("severity unknown: not measured: " + "; ".join(severity.unmeasured))
    if verdict is not None and verdict.recovered is None:
        inconclusive.append("recovery unknown: not measured: " + "; ".join(verdict.unmeasured))
    start = run.get(records.INCIDENT_START)
    return Summary(
        incident=incident, run_id=run_dir.name, started_at=started.isoformat(),
        finished_at=datetime.now(UTC).isoformat(), phases=tuple(phases), severity=severity,
        real=revised.real if revised else run.get(records.REAL), ongoing=run.get(records.ONGOING), affected=tuple(run.get(records.AFFECTED)),
        incident_start=start.isoformat() if start else None, findings=tuple(run.get(records.FINDINGS)),
        mitigations=tuple(run.get(records.MITIGATIONS)),
        # What was done, not only planned: every applied, failed, refused or undone step, and who confirmed it.
        actions=tuple(Action(o.id, o.action, o.status, o.detail, o.confirmation.get("by"), o.started_at, o.seconds)
                      for o in run.get(records.OUTCOMES) if o.status != "dry-run"),
        recovery=verdict, inconclusive=tuple(inconclusive),
        incident_view=incident_view(run_dir, incident).as_dict())
