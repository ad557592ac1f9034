"""The incident as a reader sees it: each fact from the run of the incident that established it.

A person works one incident in many runs: phases 1-3 from an alert, a fix by hand or in JupyterLab, phase 4
later, phase 5 the next morning. A run's phases stay its own record (``phase-N.json``); what a reader is shown
(``summary.json``'s ``incident``, the report's summary, the post-mortem, the messages, the terminal's story) is
built here from every run of the incident that may be believed (:func:`~irkit.evidence.timeline.incident_runs`:
the runs beside this one, oldest first, those that fail their manifest left out), each fact with the run that
established it, so the reader can follow it to its evidence.

Which run establishes a fact: the newest run that measured it (a severity assessed with every signal measured
beats a later *unknown*; the cause, from the newest investigation that named one; the recovery verdict, from
the newest phase 4); the onset, from the earliest; what was done, from every run. Pure reading: nothing here
asks a live system.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from irkit.escaping import terminal
from irkit.evidence import records as R
from irkit.evidence.records import RunRecords
from irkit.evidence.timeline import incident_runs
from irkit.rules.kinds import Finding
from irkit.rules.plan import Mitigation
from irkit.rules.recovery import Verdict
from irkit.rules.severity import Assessment

__all__ = ["Done", "Fact", "IncidentView", "incident_view", "story"]

T = TypeVar("T")


@dataclass(frozen=True)
class Fact(Generic[T]):
    """A value and the run (its id, the directory's name under ``outputs/<incident>/``) whose records hold it."""

    value: T
    run: str
    phase: int

    @property
    def link(self) -> str:
        """The record's file, relative to ``outputs/<incident>/``."""
        return f"{self.run}/phase-{self.phase}.json"


@dataclass(frozen=True)
class Done:
    """A step some run applied, tried, refused or undone (never a dry run), and who confirmed it."""

    run: str
    id: str
    action: str
    target: str
    status: str
    detail: str
    by: str
    at: str

    def as_dict(self) -> dict[str, Any]:
        return {"run": self.run, "id": self.id, "action": self.action, "target": self.target, "status": self.status,
                "detail": self.detail, "by": self.by, "at": self.at}


@dataclass(frozen=True)
class IncidentView:
    """What the incident's runs established, each fact with its run (None: no run established it)."""

    incident: str
    runs: tuple[str, ...]
    severity: Fact[Assessment] | None = None  # phase 2's revision when there is one, else phase 1's assessment
    assessed: Fact[Assessment] | None = None  # phase 1's assessment alone (what phase 2 revises)
    real: Fact[bool] | None = None
    ongoing: Fact[bool] | None = None
    affected: Fact[list[str]] | None = None
    onset: Fact[datetime] | None = None
    findings: Fact[list[Finding]] | None = None
    plan: Fact[list[Mitigation]] | None = None
    done: tuple[Done, ...] = ()
    recovery: Fact[Verdict] | None = None

    @property
    def cause(self) -> Finding | None:
        """The first cause the investigation named (findings are ranked: causes first)."""
        return next((f for f in self.findings.value if f.is_cause), None) if self.findings else None

    @property
    def applied(self) -> list[Done]:
        """The steps that changed something (and were not undone since)."""
        undone = {d.id for d in self.done if d.status == "undone"}
        return [d for d in self.done if d.status == "applied" and d.id not in undone]

    @property
    def recovered(self) -> bool | None:
        return self.recovery.value.recovered if self.recovery else None

    def as_dict(self) -> dict[str, Any]:
        """``summary.json``'s ``incident``: each fact's value and the record it came from."""
        def fact(found: Fact[Any] | None, value: Callable[[Any], Any] = lambda v: v) -> dict[str, Any] | None:
            return {"value": value(found.value), "from": found.link} if found else None

        cause = self.cause
        return {
            "incident": self.incident, "runs": list(self.runs),
            "severity": fact(self.severity, lambda s: s.as_dict()),
            "real": fact(self.real), "ongoing": fact(self.ongoing), "affected": fact(self.affected),
            "onset": fact(self.onset, lambda t: t.isoformat()),
            "cause": {"value": {"kind": cause.kind.value, "subject": cause.subject, "detail": cause.detail},
                      "from": self.findings.link} if cause and self.findings else None,
            "plan": fact(self.plan, lambda steps: [s.as_dict() for s in steps]),
            "done": [d.as_dict() for d in self.done],
            "recovery": fact(self.recovery, lambda v: v.as_dict()),
        }


def _newest(runs: list[tuple[str, RunRecords]], key: R.Key[Any],
            wanted: Callable[[Any], bool] = lambda v: v not in (None, [], {})) -> Fact[Any] | None:
    return _newest_of(runs, (key,), wanted)


def _newest_of(runs: list[tuple[str, RunRecords]], keys: tuple[R.Key[Any], ...],
               wanted: Callable[[Any], bool]) -> Fact[Any] | None:
    """The newest run's value of the first of ``keys`` it holds (within a run, ``keys`` in order)."""
    for name, run in reversed(runs):
        for key in keys:
            value = run.get(key)
            if wanted(value):
                return Fact(value, name, key.phase)
    return None


def _first(found: Iterable[Fact[T] | None]) -> Fact[T] | None:
    return next((f for f in found if f is not None), None)


def incident_view(run_dir: Path, incident: str = "") -> IncidentView:
    """The incident that ``run_dir`` belongs to, from its runs so far (``run_dir`` included, as it stands now)."""
    runs = [(path.name, RunRecords(path)) for path in incident_runs(run_dir)]
    done: dict[str, Done] = {}
    for name, run in runs:
        steps = {s.id: s for s in run.get(R.STEPS)}
        for o in run.get(R.OUTCOMES):
            if o.status != "dry-run":
                step = steps.get(o.id)
                done.pop(o.id, None)  # the latest word on a step, in the order it was said
                done[o.id] = Done(name, o.id, o.action, step.target if step else "", o.status, o.detail,
                                  str(o.confirmation.get("by") or ""), o.started_at)
    onset = next((Fact(value, name, R.INCIDENT_START.phase) for name, run in runs
                  if (value := run.get(R.INCIDENT_START)) is not None), None)
    assessed = (R.SEVERITY_REVISED, R.SEVERITY)
    severity = _first([_newest_of(runs, assessed, lambda s: s is not None and s.known),
                       _newest_of(runs, assessed, lambda s: s is not None)])
    real = _newest(runs, R.REAL, lambda v: v is not None)
    if severity is not None and severity.phase == R.SEVERITY_REVISED.phase and severity.value.real is not None:
        real = Fact(severity.value.real, severity.run, severity.phase)  # revised with what was found
    return IncidentView(
        incident=incident or run_dir.parent.name, runs=tuple(name for name, _ in runs), severity=severity,
        assessed=_first([_newest(runs, R.SEVERITY, lambda s: s is not None and s.known), _newest(runs, R.SEVERITY)]),
        real=real, ongoing=_newest(runs, R.ONGOING, lambda v: v is not None),
        affected=_newest(runs, R.AFFECTED), onset=onset,
        findings=_first([_newest(runs, R.FINDINGS, lambda found: any(f.is_cause for f in found)),
                         _newest(runs, R.FINDINGS, lambda found: found is not None and found != [])]),
        plan=_newest(runs, R.MITIGATIONS), done=tuple(done.values()),
        recovery=_newest(runs, R.VERDICT, lambda v: v is not None))


def story(view: IncidentView, run_id: str, report: str) -> list[str]:
    """The incident in a few lines for the terminal after a run: severity, the cause, what was done or planned,
    the recovery verdict, where the evidence is. A fact another run established names that run."""
    def origin(found: Fact[Any] | None) -> str:
        return f"  (run {found.run})" if found is not None and found.run != run_id else ""

    severity = view.severity.value if view.severity else None
    real = view.real.value if view.real else None
    ongoing = view.ongoing.value if view.ongoing else None
    said = [severity.name if severity else "not assessed",
            {True: "real", False: "not an incident", None: "real: unknown"}[real],
            {True: "ongoing", False: "not ongoing", None: "ongoing: unknown"}[ongoing]]
    cause = view.cause
    lines = [f"incident {view.incident}" + (f" ({len(view.runs)} runs)" if len(view.runs) > 1 else ""),
             f"  severity  {', '.join(said)}{origin(view.severity)}",
             f"  cause     {_cut(f'{cause.kind.value} {cause.subject}: {cause.detail}') if cause else 'none found'}"
             f"{origin(view.findings) if cause else ''}"]
    lines += [f"  done      {d.action} {d.target}: {d.status}" + (f" (confirmed by {d.by})" if d.by else "")
              + (f"  (run {d.run})" if d.run != run_id else "") for d in view.done[-5:]]
    planned = [m for m in (view.plan.value if view.plan else []) if m.status == "planned"]
    lines += [f"  planned   {m.action} {m.target} (not applied)" for m in planned[:3]]
    if not view.done and not planned:
        lines.append("  done      nothing applied, nothing planned")
    recovery = view.recovery.value if view.recovery else None
    verdict = ("not validated (phase 4 has not run)" if recovery is None else "RECOVERED" if recovery.recovered
               else f"UNKNOWN: {len(recovery.unmeasured)} signal(s) not measured: " + "; ".join(recovery.unmeasured)
               if recovery.recovered is None
               else f"NOT RECOVERED: {len(recovery.failed)} check(s) failed: " + "; ".join(recovery.failed))
    lines.append(f"  recovery  {_cut(verdict, 300)}{origin(view.recovery)}")
    lines.append(f"  evidence  {report}")
    return [terminal(line) for line in lines]  # names and details are the failing systems' text


def _cut(text: str, width: int = 160) -> str:
    text = " ".join(terminal(text).split())
    return text if len(text) <= width else text[:width - 1] + "…"
