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
    quiet = _summary(severity=_severity("SEV-4"), real=False, mitigations=[], findings=[])
    assert drill.check(quiet, truth, {}) == []
    problems = drill.check(_summary(severity=_severity("SEV-4"), real=False), truth, {})
    assert problems == ["cause lock-root pid 42 is not one the truth accepts",
                        "mitigation: expected none, got terminate-backend pid 42"]



def test_a_run_of_some_phases_is_checked_on_what_those_phases_decide_only():
    truth = drill.Truth(real=True, severity="SEV-2", root={"kind": "lock-root", "subject": "pid {holder}"},
                        mitigation={"action": "terminate-backend", "target": "pid {holder}"}, recovered=True)
    first_two = _summary(phases=[{"phase": 1, "name": "01", "status": "ok"}, {"phase": 2, "name": "02", "status": "ok"}],
                         mitigations=[])
    assert drill.check(first_two, truth, {"holder": 42}) == []  # nothing planned, no verdict: not asked for
    everything = _summary(mitigations=[])
    assert drill.check(everything, truth, {"holder": 42}) == [
        "first mitigation: expected terminate-backend pid 42, got nothing planned", "recovered: expected True, got unknown"]


def test_every_step_planned_must_be_one_the_truth_accepts_and_none_it_forbids():
    truth = drill.Truth(real=True, severity="SEV-2", root={"kind": "lock-root", "subject": "pid {holder}"},
                        mitigation={"action": "terminate-backend", "target": "pid {holder}"},
                        plan_accept=({"action": "cancel-query"},),  # any target
                        plan_forbid=({"action": "enable-circuit-breaker"},))
    right = [{"action": "terminate-backend", "target": "pid 42"}, {"action": "cancel-query", "target": "pid 50"}]
    assert drill.check(_summary(mitigations=right), truth, {"holder": 42}) == []
    assert drill.plan_precision(_summary(mitigations=right), truth.resolved({"holder": 42})).right
    breaker = {"action": "enable-circuit-breaker", "target": "https://api/admin"}
    stray = {"action": "scale", "target": "deployment/backend-deployment"}
    summary = _summary(mitigations=[*right, breaker, stray])
    assert drill.check(summary, truth, {"holder": 42}) == [
        "step enable-circuit-breaker https://api/admin is forbidden by the truth",
        "step scale deployment/backend-deployment is not one the truth accepts"]
    assert drill.plan_precision(summary, truth.resolved({"holder": 42})) == drill.Precision(2, 4, (
        "step enable-circuit-breaker https://api/admin is forbidden by the truth",
        "step scale deployment/backend-deployment is not one the truth accepts"))


def test_every_cause_named_must_be_accepted_while_symptoms_are_not_scored():
    truth = drill.Truth(real=True, severity="SEV-2", root={"kind": "lock-root", "subject": "pid {holder}"},
                        mitigation={"action": "terminate-backend", "target": "pid {holder}"},
                        findings_forbid=({"kind": "upstream-timeout"},))
    symptoms = [{"kind": "lock-root", "subject": "pid 42"}, {"kind": "error-spike", "subject": "backend"}]
    assert drill.check(_summary(findings=symptoms), truth, {"holder": 42}) == []
    wrong = [*symptoms, {"kind": "upstream-timeout", "subject": "backend-deployment"}]
    assert drill.check(_summary(findings=wrong), truth, {"holder": 42}) == [
        "cause upstream-timeout backend-deployment is forbidden by the truth"]
    assert drill.finding_precision(_summary(findings=wrong), truth.resolved({"holder": 42})).accepted == 1


def test_unknown_is_a_truth_a_blind_run_must_keep():
    truth = drill.Truth(real="unknown", severity="unknown", ongoing="unknown", recovered="unknown")
    blind = _summary(severity=None, real=None, ongoing=None, findings=[], mitigations=[])
    assert drill.check(blind, truth, {}) == []
    guessed = _summary(real=True, ongoing=True, findings=[], mitigations=[], recovery={"recovered": True})
    assert drill.check(guessed, truth, {}) == [
        "severity: expected unknown, got SEV-2", "real incident: expected unknown, got True",
        "ongoing: expected unknown, got True", "recovered: expected unknown, got True"]


def test_a_negative_control_with_no_cause_refuses_any_cause():
    truth = drill.Truth(real=True, severity="SEV-3", no_cause=True)
    quiet = _summary(severity=_severity("SEV-3"), findings=[{"kind": "error-spike", "subject": "backend"}],
                     mitigations=[])
    assert drill.check(quiet, truth, {}) == []
    named = _summary(severity=_severity("SEV-3"), mitigations=[])
    assert "no cause: the truth is a negative control, yet a cause was named" in drill.check(named, truth, {})
