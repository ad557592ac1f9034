"""The incident's timeline gathered from every run of it under ``outputs/<incident>/`` (playbook: data collection).

An incident spans several runs: phases 1-3 when it starts, phase 4 again after the fix, phase 5
the next morning. :func:`incident_events` reads each run's records (typed, through
:class:`~irkit.evidence.records.RunRecords`) and its outbox, and turns them into
:class:`~irkit.rules.timeline.Event` entries whose links point at the evidence
(``<run id>/phase-2.json``, relative to the incident's directory).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from irkit.evidence import records as R
from irkit.evidence.manifest import Trust, trust
from irkit.evidence.rundir import RunDir, read_json, regular
from irkit.rules.timeline import Event, merge

__all__ = ["incident_events", "incident_runs", "left_out"]
_DEPLOY_HORIZON_HOURS = 24  # deploys older than this before the onset are history, not this incident's


def _candidates(run_dir: Path) -> list[Path]:
    """This run and the directories beside it with a run.json (real directories, not links), oldest first."""
    parent = run_dir.parent
    drill = _drill(run_dir)
    runs = [p for p in parent.iterdir() if not p.is_symlink() and p.is_dir() and regular(RunDir(p).run_json)
            and p.name <= run_dir.name and _drill(p) == drill] if parent.is_dir() else []
    if run_dir not in runs and run_dir.is_dir():  # this run counts even without run.json (a notebook's own dir)
        runs.append(run_dir)
    return sorted(runs, key=lambda p: p.name)


def incident_runs(run_dir: Path) -> list[Path]:
    """This run and every earlier run of the same incident whose records may be believed, oldest first. A
    drill's runs belong to their drill only (``drill`` in run.json): drilling a scenario again is another
    incident under the same name. An earlier run that does not match its manifest (edited after it was
    sealed, or signed without the key) is left out: :func:`left_out` names it."""
    return [run for run in _candidates(run_dir) if run == run_dir or trust(run).state != "tampered"]


def left_out(run_dir: Path) -> list[tuple[Path, Trust]]:
    """The incident's earlier runs whose evidence does not verify, with why: their records count for nothing."""
    return [(run, found) for run in _candidates(run_dir) if run != run_dir
            and (found := trust(run)).state == "tampered"]


def _drill(run: Path) -> Any:
    meta = read_json(RunDir(run).run_json)
    return meta.get("drill") if isinstance(meta, dict) else None


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _run_events(run: Path, first_onset: datetime | None) -> Iterable[Event]:
    records = R.RunRecords(run)
    files = RunDir(run)
    meta = read_json(files.run_json) or {}
    link = files.phase_link
    started = _time(meta.get("started_at"))
    if started:
        phases = meta.get("phases") or []
        if meta.get("interactive"):  # irkit lab's session, or notebooks opened by hand
            ran = ",".join(map(str, files.phases_recorded())) or "none yet"
            said = f"work in JupyterLab: run {run.name} (phases {ran})"
        else:
            said = f"irkit run {run.name} (phases {','.join(map(str, phases))})"
        yield Event(started, "responder", "run", said, f"{run.name}/{files.run_json.name}")
    alert = meta.get("alert")
    if isinstance(alert, dict) and _time(alert.get("startsAt")):
        yield Event(_time(alert["startsAt"]), "alertmanager", "alert",  # type: ignore[arg-type]
                    f"alert {alert.get('name', '?')} fired", f"{run.name}/{files.run_json.name}")
    onset = records.get(R.INCIDENT_START)
    if onset:
        threshold = records.get(R.ONSET_THRESHOLD)
        if records.get(R.ONSET_SIGNAL) == "p95 latency":  # a latency-only incident
            said = "p95 latency crossed " + (f"{threshold:g} s (the SEV-2 line)" if threshold is not None
                                             else "the SEV-2 line")
        else:
            said = "error ratio crossed " + (f"{threshold:.1%} (the SEV-3 threshold)" if threshold is not None
                                             else "the SEV-3 threshold")
        yield Event(onset, "prometheus", "onset", said, link(1))
    peak = records.get(R.ERROR_RATIO_PEAK)
    if peak and _time(peak.get("at")):
        yield Event(_time(peak["at"]), "prometheus", "peak",  # type: ignore[arg-type]
                    f"peak error ratio {float(peak.get('error_ratio') or 0):.1%} on {peak.get('service')}", link(1))
    resolved = records.get(R.RESOLVED_AT)
    if resolved:
        yield Event(resolved, "prometheus", "resolved", "signals back under their thresholds", link(1))
    horizon = first_onset or onset or started  # deploys and config writes are weighed against it
    for row in records.get(R.ROLLOUT_HISTORY):
        created = _time(row.get("created"))
        if created and (horizon is None or (horizon - created).total_seconds() < _DEPLOY_HORIZON_HOURS * 3600):
            yield Event(created, "kubernetes", "deploy", f"deployment/{row.get('deployment')} revision "
                                                         f"{row.get('revision')}: {row.get('images')}", link(2))
    for row in records.get(R.CONFIG_CHANGES):
        changed = _time(row.get("changed_at"))
        if changed and (horizon is None or abs((horizon - changed).total_seconds()) < _DEPLOY_HORIZON_HOURS * 3600):
            yield Event(changed, "kubernetes", "deploy", f"{str(row.get('kind')).lower()}/{row.get('name')} written"
                        + (f" by {row['manager']}" if row.get("manager") else ""), link(2))
    # Warnings folded per reason and workload (three pods backing off are one event), at the first time seen.
    folded: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in records.get(R.WARNING_EVENTS):
        owner = str(row.get("object") or "").rsplit("-", 1)[0]
        folded.setdefault((str(row.get("reason")), owner), []).append(row)
    for (reason, owner), rows in list(folded.items())[:20]:
        moments = [m for r in rows if (m := _time(r.get("first_seen") or r.get("last_seen")))]
        if moments:
            many = f" ({len(rows)} objects)" if len(rows) > 1 else ""
            yield Event(min(moments), "kubernetes", "k8s-event",
                        f"{reason} {owner}{many}: {str(rows[0].get('message'))[:160]}", link(2))
    p2 = records.phase(2)
    found_at = _time(p2.get("finished_at") or p2.get("started_at"))
    for finding in records.get(R.FINDINGS)[:5]:
        if found_at:
            yield Event(found_at, "irkit", "finding", f"{finding.kind.value} {finding.subject}: {finding.detail}",
                        link(2))
    p3 = records.phase(3)
    planned_at = _time(p3.get("started_at"))
    for step in records.get(R.STEPS):
        if planned_at:
            yield Event(planned_at, "irkit", "planned", f"planned {step.id}: {step.action} {step.target}"
                        + (f" ({step.refused})" if step.refused else ""), link(3))
    for outcome in records.get(R.OUTCOMES):
        if outcome.status == "dry-run":
            continue
        confirmed = _time(outcome.confirmation.get("at"))
        if confirmed:
            yield Event(confirmed, "responder", "confirmed", f"{outcome.id} confirmed by "
                                                             f"{outcome.confirmation.get('by')} "
                                                             f"({outcome.confirmation.get('via')})", link(3))
        done = _time(outcome.started_at)
        if done:
            kind = {"applied": "applied", "undone": "undone", "applying": "applying"}.get(outcome.status, "failed")
            status = "in flight, may have been applied" if outcome.status == "applying" else outcome.status
            yield Event(done, "irkit", kind, f"{outcome.action} {status}: {outcome.detail}", link(3))
    verdict = records.get(R.VERDICT)
    p4 = records.phase(4)
    if verdict is not None and _time(p4.get("finished_at")):
        kind = "recovered" if verdict.recovered else "not-recovered"
        text = "recovery validated (phase 4)" if verdict.recovered else \
            f"not recovered: {'; '.join((list(verdict.failed) + list(verdict.unmeasured))[:2]) or 'unknown'}"
        yield Event(_time(p4["finished_at"]), "irkit", kind, text, link(4))  # type: ignore[arg-type]
    for message in files.messages():
        data = read_json(message)
        if isinstance(data, dict) and _time(data.get("created_at")):
            state = data.get("status", "outbox")
            yield Event(_time(data["created_at"]), "comms", "message",  # type: ignore[arg-type]
                        f"{data.get('kind')} via {data.get('channel')}: {state}",
                        f"{run.name}/{message.relative_to(run)}")


def _marked(events: Iterable[Event], run: Path, current: Path) -> Iterable[Event]:
    """An earlier run that is not sealed (killed, still running, or interactive) speaks unverified."""
    if run == current or trust(run).state == "verified":
        yield from events
        return
    for event in events:
        yield dataclasses.replace(event, text=f"{event.text} (unverified: run {run.name} is not sealed)")


def incident_events(run_dir: Path) -> list[Event]:
    """Every event of the incident, from this run and the earlier ones beside it, merged; an earlier run whose
    evidence does not verify is one event saying so, its records left out."""
    runs = incident_runs(run_dir)
    onsets = [o for run in runs if (o := R.RunRecords(run).get(R.INCIDENT_START))]
    first_onset = min(onsets) if onsets else None  # deploys are weighed against the incident's first onset
    refused = [Event(_time((read_json(RunDir(run).run_json) or {}).get("started_at")) or datetime.now(UTC),
                     "irkit", "tampered",
                     f"run {run.name} {found.describe()}: its records are left out; check it with irkit verify",
                     f"{run.name}/{RunDir(run).manifest.name}") for run, found in left_out(run_dir)]
    return merge([*refused, *(event for run in runs for event in _marked(_run_events(run, first_onset), run,
                                                                             run_dir))])
