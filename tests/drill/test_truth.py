"""The ground truth against a run's summary: every difference named, a false alarm allowed no plan."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from irkit import drill
from irkit.evidence.summary import Summary
from irkit.rules.severity import Assessment


def _truth(severity: str = "SEV-2") -> drill.Truth:
    return drill.Truth(real=True, severity=severity, root={"kind": "lock-root", "subject": "pid {holder}"},
                       mitigation={"action": "terminate-backend", "target": "pid {holder}"})


def _severity(name: str) -> dict[str, object]:
    """An assessment of ``name`` (SEV-1..4) as summary.json holds it."""
    now = datetime(2026, 12, 1, tzinfo=UTC)
    return Assessment(int(name[-1]), (), now, now, "").as_dict()


def _summary(**changes: object) -> Summary:
    summary: dict[str, object] = {
        "phases": [{"phase": n, "name": name, "status": "ok"} for n, name in
                   ((1, "01-detect-and-assess"), (2, "02-investigate"), (3, "03-mitigate"), (4, "04-recover"))],
        "severity": _severity("SEV-2"), "real": True,
        "findings": [{"kind": "lock-root", "subject": "pid 42", "detail": ""}],
        "mitigations": [{"action": "terminate-backend", "target": "pid 42"}],
    }
    summary.update(changes)
    return Summary.from_dict(summary)


def test_check_accepts_the_truth_with_session_pids_resolved():
    assert drill.check(_summary(), _truth(), {"holder": 42}) == []


@pytest.mark.parametrize(("changes", "expected"), [
    ({"severity": _severity("SEV-3")}, "severity: expected SEV-2, got SEV-3"),
    ({"findings": [{"kind": "error-spike", "subject": "backend"}]}, "first finding: expected lock-root pid 42"),
    ({"findings": [{"kind": "lock-root", "subject": "pid 43"}]}, "got lock-root pid 43"),
    ({"findings": []}, "got no findings"),
    ({"mitigations": []}, "first mitigation: expected terminate-backend pid 42, got nothing planned"),
    ({"real": False}, "real incident: expected True"),
    ({"phases": [{"phase": 2, "name": "02-investigate", "status": "failed", "error": "boom"}]}, "phase 2"),
])
def test_check_names_every_difference(changes: dict[str, object], expected: str):
    problems = drill.check(_summary(**changes), _truth(), {"holder": 42})
    assert any(expected in p for p in problems), problems


def test_check_of_a_false_alarm_refuses_any_plan():
    truth = drill.Truth(real=False, severity="SEV-4")
    assert drill.check(_summary(severity=_severity("SEV-4"), real=False, mitigations=[]), truth, {}) == []
    problems = drill.check(_summary(severity=_severity("SEV-4"), real=False), truth, {})
    assert problems == ["mitigation: expected none, got terminate-backend pid 42"]



def test_a_run_of_some_phases_is_checked_on_what_those_phases_decide_only():
    truth = drill.Truth(real=True, severity="SEV-2", root={"kind": "lock-root", "subject": "pid {holder}"},
                        mitigation={"action": "terminate-backend", "target": "pid {holder}"}, recovered=True)
    first_two = _summary(phases=[{"phase": 1, "name": "01", "status": "ok"}, {"phase": 2, "name": "02", "status": "ok"}],
                         mitigations=[])
    assert drill.check(first_two, truth, {"holder": 42}) == []  # nothing planned, no verdict: not asked for
    everything = _summary(mitigations=[])
    assert drill.check(everything, truth, {"holder": 42}) == [
        "first mitigation: expected terminate-backend pid 42, got nothing planned", "recovered: expected True, got None"]
