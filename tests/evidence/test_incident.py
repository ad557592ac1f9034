"""The incident as people work it, in many runs: what a reader is shown is built from all of them, each fact from
the run that established it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from irkit import evidence
from irkit.evidence.incident import incident_view, story
from irkit.evidence.report import write_report
from irkit.evidence.summary import PhaseStatus, summarize
from irkit.rules.severity import Signals, classify

SEV2 = classify(Signals(error_ratio=0.12, latency_p95_seconds=0.2), detected_at=datetime(2026, 12, 1, 1, tzinfo=UTC))
ROOT = {"kind": "lock-root", "subject": "pid 7", "detail": "idle in transaction session blocks 3 session(s)",
        "evidence": {"pid": 7, "blocked_count": 3}}
PLAN = [{"action": "terminate-backend", "target": "pid 7", "command": "SELECT pg_terminate_backend(7);",
         "status": "planned", "finding": "lock-root: pid 7", "params": {"pid": 7}}]
APPLIED = {"id": "ACTION-1a2b3c", "action": "terminate-backend", "status": "applied", "detail": "terminated",
           "confirmation": {"incident": "INC-7", "by": "alice", "at": "2026-12-01T01:20:00+00:00"},
           "started_at": "2026-12-01T01:20:00+00:00", "seconds": 0.4}
STEP = {"id": "ACTION-1a2b3c", "action": "terminate-backend", "target": "pid 7", "system": "postgresql",
        "why": "lock root", "command": "SELECT pg_terminate_backend(7);", "params": {"pid": 7}}


def _run(incident_dir: Path, run_id: str, records: dict[int, dict[str, object]]) -> Path:
    run = incident_dir / run_id
    run.mkdir(parents=True)
    evidence.write_json(run / evidence.RUN, {"schema_version": 1, "incident": incident_dir.name, "run_id": run_id,
                                            "phases": sorted(records), "started_at": f"2026-12-01T0{run_id[-2]}:00:00+00:00"})
    for phase, found in records.items():
        evidence.write_json(run / f"phase-{phase}.json", {"phase": phase, "finished_at": "2026-12-01T01:00:00+00:00",
                                                         "records": found})
    return run


def _worked(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Phases 1-3 from an alert, the fix applied from JupyterLab (an interactive run), phase 4 later, phase 5 alone."""
    incident = tmp_path / "INC-7"
    first = _run(incident, "20261201T010000Z", {
        1: {"severity": SEV2.as_dict(), "real": True, "ongoing": True, "affected": ["backend"],
            "incident_start": "2026-12-01T00:55:00+00:00"},
        2: {"findings": [ROOT, {"kind": "error-spike", "subject": "backend", "detail": "12% fail"}]},
        3: {"mitigations": PLAN}})
    _run(incident, "20261201T012000Z", {3: {"steps": [STEP], "outcomes": [APPLIED]}})
    _run(incident, "20261201T013000Z", {4: {"verdict": {"recovered": True, "failed": [], "unmeasured": []}}})
    last = _run(incident, "20261201T090000Z", {5: {}})
    return first, incident, last


def test_phase_5_alone_sees_every_fact_from_the_run_that_established_it(tmp_path: Path):
    first, _, last = _worked(tmp_path)
    view = incident_view(last)
    assert view.runs == ("20261201T010000Z", "20261201T012000Z", "20261201T013000Z", "20261201T090000Z")
    assert view.severity and view.severity.value.name == "SEV-2" and view.severity.link == f"{first.name}/phase-1.json"
    assert view.cause and view.cause.subject == "pid 7" and view.cause.evidence.blocked_count == 3
    assert [(d.action, d.target, d.status, d.by, d.run) for d in view.applied] == [
        ("terminate-backend", "pid 7", "applied", "alice", "20261201T012000Z")]
    assert view.recovered is True and view.recovery and view.recovery.run == "20261201T013000Z"
    assert view.onset and view.onset.value == datetime(2026, 12, 1, 0, 55, tzinfo=UTC)


def test_a_later_unknown_does_not_hide_a_measured_severity_and_a_run_that_found_nothing_keeps_the_cause(tmp_path: Path):
    first, incident, _ = _worked(tmp_path)
    unknown = classify(Signals(unmeasured=("error ratio: Prometheus did not answer",)),
                       detected_at=datetime(2026, 12, 1, 2, tzinfo=UTC))
    assert not unknown.known
    later = _run(incident, "20261201T100000Z", {1: {"severity": unknown.as_dict(), "ongoing": False},
                                                2: {"findings": []}})
    view = incident_view(later)
    assert view.severity and view.severity.run == first.name  # SEV-2 measured beats a later unknown
    assert view.findings and view.findings.run == first.name  # the cause was found, and stays found
    assert view.ongoing and view.ongoing.value is False and view.ongoing.run == later.name  # the newest word


def test_an_earlier_run_that_does_not_match_its_manifest_counts_for_nothing(tmp_path: Path):
    first, _, last = _worked(tmp_path)
    evidence.write_manifest(first)
    (first / "phase-2.json").write_text(json.dumps({"phase": 2, "records": {"findings": []}}))  # edited after sealing
    view = incident_view(last)
    assert first.name not in view.runs and view.cause is None and view.severity is None


def test_the_report_of_a_phase_5_run_tells_the_incident_and_names_where_each_fact_came_from(tmp_path: Path):
    first, _, last = _worked(tmp_path)
    summary = summarize(last, "INC-7", datetime.now(UTC), [PhaseStatus(5, "05-post-incident", "x", "ok")])
    assert summary.severity is None and summary.incident_view  # this run's own records, and the incident's
    assert summary.incident_view["cause"]["from"] == f"{first.name}/phase-2.json"
    page = write_report(last, summary, []).read_text()
    box = page.split("<section class='summary' id='summary'>", 1)[1].split("</section>", 1)[0]
    assert "<b>SEV-2</b>" in box and f"(run {first.name})" in box
    assert "lock-root pid 7: idle in transaction session blocks 3 session(s)" in box
    assert "terminate-backend pid 7: <b>applied</b> by alice" in box
    assert "RECOVERED: every check passed" in box
    assert "not assessed" not in box and "none found" not in box and "not validated" not in box


def test_the_terminal_story_is_the_same_incident_and_shows_no_escape_sequence(tmp_path: Path):
    first, incident, last = _worked(tmp_path)
    lines = story(incident_view(last), last.name, str(last / "report.html"))
    text = "\n".join(lines)
    assert lines[0] == "incident INC-7 (4 runs)"
    assert f"severity  SEV-2, real, ongoing  (run {first.name})" in text
    assert "cause     lock-root pid 7: idle in transaction" in text
    assert "done      terminate-backend pid 7: applied (confirmed by alice)  (run 20261201T012000Z)" in text
    assert "recovery  RECOVERED  (run 20261201T013000Z)" in text
    hostile = _run(incident, "20261201T110000Z", {2: {"findings": [
        {**ROOT, "detail": "idle \x1b]0;pwned\x07\x1b[2J\x9b31m\nFAKE"}]}})
    shown = "\n".join(story(incident_view(hostile), hostile.name, "r"))
    assert not any(ord(c) < 32 and c != "\n" or 0x7f <= ord(c) <= 0x9f for c in shown)
    assert shown.count("\n") == len(story(incident_view(hostile), hostile.name, "r")) - 1  # no line of its own
