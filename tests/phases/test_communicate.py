"""The playbook's communications on recorded data: the messages speak from every run of the incident, go to the
outbox and leave nothing unless sending is on, a draft is never sent, and a false alarm announces nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from irkit import evidence
from irkit.config import Config
from irkit.evidence import records as R
from irkit.phases import communicate
from irkit.phases.incident import Incident
from irkit.rules.severity import Signals, classify

ONSET = datetime(2026, 11, 30, 0, 5, tzinfo=UTC)


def _phase(run_dir: Path, phase: int, **records: object) -> None:
    """One finished phase of a run of INC-9, as irkit run leaves it (run.json beside its records)."""
    inc = Incident("INC-9", phase, run_dir, Config())
    evidence.write_json(run_dir / "run.json", {"incident": "INC-9", "run_id": run_dir.name})
    for name, value in records.items():
        inc.record(R.KEYS[name], value)
    inc.finish()


def _incident(tmp_path: Path, *, real: bool = True) -> Incident:
    """Phases 1-2 in a first run of the incident, phase 3 opening in a second one."""
    first, second = tmp_path / "INC-9" / "20261130T000000Z", tmp_path / "INC-9" / "20261130T010000Z"
    sev2 = classify(Signals(error_ratio=0.12, latency_p95_seconds=0.2), detected_at=ONSET).as_dict()
    _phase(first, 1, severity=sev2, real=real, affected=["backend"], incident_start=ONSET.isoformat())
    _phase(first, 2, findings=[{"kind": "error-spike", "subject": "backend", "detail": "12% fail"},
                               {"kind": "lock-root", "subject": "pid 7", "detail": "idle in transaction",
                                "evidence": {"pid": 7, "state": "idle in transaction",
                                             "query": "UPDATE orders SET status = 'paid'"}}])
    inc = Incident("INC-9", 3, second, Config())
    evidence.write_json(second / "run.json", {"incident": "INC-9", "run_id": second.name})
    return inc


def test_the_messages_speak_from_every_run_of_the_incident(tmp_path: Path):
    inc = _incident(tmp_path)
    runs = communicate.incident_records(inc)
    assert [r.run_dir.name for r in runs] == ["20261130T000000Z", "20261130T010000Z"]  # oldest first
    assert communicate.latest(runs, R.AFFECTED) == ["backend"]
    context = communicate.incident_context(inc)
    assert context["title"] == "Orders updates blocked by an idle database transaction"  # the cause, not the spike
    assert (context["severity"], context["affected"], context["status"]) == ("SEV-2", "backend", "Investigating")
    assert context["started"] == "2026-11-30 00:05 UTC"


def test_messages_go_to_the_outbox_and_leave_nothing_unless_sending_is_on(tmp_path: Path):
    inc = _incident(tmp_path)
    view = communicate.write_and_send(inc, "initial")
    assert view.written and {m.status for m in view.written} == {"outbox"}
    assert all(not m.attempts for m in view.written)
    assert view.note.endswith("nothing left this machine")
    assert sorted(p.name for p in (inc.run_dir / "outbox").iterdir()) == [f"{m.id}.json" for m in view.written]
    initial = [m for m in view.written if m.kind == "initial"]
    assert initial and communicate.earlier_messages(inc) == initial  # what the next update compares with


def test_a_draft_is_never_sent_even_with_sending_on(tmp_path: Path):
    inc = _incident(tmp_path)
    view = communicate.write_and_send(inc, "resolution", send_messages=True, draft=True)
    assert view.written and all(m.status != "outbox" and not m.attempts for m in view.written)
    assert "a DRAFT: recovery is not validated" in view.note


def test_a_false_alarm_announces_nothing(tmp_path: Path):
    inc = _incident(tmp_path, real=False)
    view = communicate.write_and_send(inc, "initial", send_messages=True)
    assert view.written == [] and view.note.startswith("not an incident")
    assert not (inc.run_dir / "outbox").exists()
