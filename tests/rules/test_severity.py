"""Severity classification: the playbook's table, its boundaries, and never failing open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from irkit.display.views import html_of
from irkit.rules.severity import LEVELS, Signals, Thresholds, classify, revise

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)  # a Friday, 3 a.m.



@pytest.mark.parametrize(("ratio", "level"), [
    (0.0, 4), (0.0499, 4), (0.05, 3), (0.07, 3), (0.10, 3), (0.1001, 2), (0.5, 2),
])
def test_error_ratio_boundaries_follow_the_playbook_wording(ratio: float, level: int):
    assert classify(Signals(error_ratio=ratio), detected_at=NOW).level == level



@pytest.mark.parametrize(("p95", "level"), [(4.9, 4), (5.0, 4), (5.01, 2)])
def test_latency_above_five_seconds_is_sev2(p95: float, level: int):
    assert classify(Signals(latency_p95_seconds=p95), detected_at=NOW).level == level



def test_highest_rule_wins_and_every_fired_rule_is_a_reason():
    result = classify(Signals(outage=True, error_ratio=0.12, latency_p95_seconds=6.0, performance_degraded=True),
                      detected_at=NOW)
    assert result.level == 1 and result.name == "SEV-1"
    assert len(result.reasons) == 4
    assert result.reasons[0].startswith("complete service outage")
    assert result.respond_by == NOW + timedelta(minutes=5)
    assert result.escalation == LEVELS[1].escalation



@pytest.mark.parametrize("signal", ["database_corruption", "security_breach", "payment_failure"])
def test_each_sev1_example_is_sev1(signal: str):
    assert classify(Signals(**{signal: True}), detected_at=NOW).level == 1



@pytest.mark.parametrize("signal", ["authentication_failures", "blockchain_connectivity_lost"])
def test_each_sev2_example_is_sev2(signal: str):
    assert classify(Signals(**{signal: True}), detected_at=NOW).level == 2



def test_sev3_from_degradation_alerts_and_features():
    assert classify(Signals(alerts_firing=("HighCPU",)), detected_at=NOW).level == 3
    assert classify(Signals(feature_failures=("wishlist",)), detected_at=NOW).level == 3
    result = classify(Signals(performance_degraded=True), detected_at=NOW)
    assert result.respond_by == NOW + timedelta(hours=1)



def test_nothing_fired_is_sev4_next_business_day_and_not_real():
    result = classify(Signals(error_ratio=0.01, latency_p95_seconds=0.3), detected_at=NOW)
    assert result.level == 4 and not result.real
    assert result.respond_by == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # Friday -> Monday



def test_thresholds_come_from_the_caller():
    strict = Thresholds(error_ratio_high=0.02, error_ratio_moderate=0.01)
    assert classify(Signals(error_ratio=0.03), strict, detected_at=NOW).level == 2



def test_nothing_fired_but_a_signal_unmeasured_is_unknown_not_sev4():
    result = classify(Signals(error_ratio=None, latency_p95_seconds=0.3,
                              unmeasured=("error ratio: `http_requests_total` has no series",)), detected_at=NOW)
    assert result.level is None and result.name == "unknown" and result.real is None and not result.known
    assert result.unmeasured == ("error ratio: `http_requests_total` has no series",)
    assert result.respond_by == NOW + timedelta(minutes=15)  # looked at like a SEV-2 until measured
    assert "not an incident" not in html_of(result)



def test_a_fired_rule_stands_beside_what_was_not_measured():
    result = classify(Signals(error_ratio=0.12, unmeasured=("workload readiness: Kubernetes down",)), detected_at=NOW)
    assert result.name == "SEV-2" and result.real is True
    assert result.as_dict()["unmeasured"] == ["workload readiness: Kubernetes down"]
    assert "some signals were not measured" in html_of(result)



def test_a_failing_critical_journey_sets_its_severity_whatever_the_error_ratio():
    result = classify(Signals(error_ratio=0.01, journeys_failing=(("payment", 1),)), detected_at=NOW)
    assert result.level == 1 and any("critical journey 'payment'" in r for r in result.reasons)
    assert classify(Signals(error_ratio=0.01, journeys_failing=(("login", 2),)), detected_at=NOW).level == 2


# Phase 2 revisits phase 1's assessment with the findings: (phase 1's signals, what was found) -> level, real.
@pytest.mark.parametrize(("signals", "found", "level", "real"), [
    # The playbook's SEV-2 examples decided from their evidence: a 7 % error ratio alone is SEV-3.
    (Signals(error_ratio=0.07), {"blockchain_connectivity_lost": "provider-failing api"}, 2, True),
    (Signals(error_ratio=0.07), {"authentication_failures": "credentials-rejected api"}, 2, True),
    # Already higher: the higher level stays.
    (Signals(outage=True), {"authentication_failures": "credentials-rejected api"}, 1, True),
    # A cause beside a SEV-4 is a minor incident, not "not an incident".
    (Signals(error_ratio=0.01), {"cause": "oom-killed worker: pod worker-1 was OOMKilled"}, 4, True),
    # Nothing found: phase 1's word stands.
    (Signals(error_ratio=0.01), {}, 4, False),
    (Signals(error_ratio=0.07), {"cause": "lock-root pid 7"}, 3, True),
    # Unknown stays unknown without a SEV-2 finding; with one, SEV-2 is its floor.
    (Signals(unmeasured=("error ratio: down",)), {"cause": "lock-root pid 7"}, None, None),
    (Signals(unmeasured=("error ratio: down",)), {"blockchain_connectivity_lost": "provider-failing api"}, 2, True),
])
def test_the_investigation_revises_severity_by_the_playbooks_table(signals: Signals, found: dict[str, str],
                                                                     level: int | None, real: bool | None):
    revised = revise(classify(signals, detected_at=NOW), **found)
    assert (revised.level, revised.real) == (level, real)
    for value in found.values():
        if level is not None and level <= 2 or (level == 4 and real):
            assert any(value in reason for reason in revised.reasons), revised.reasons


def test_a_minor_incident_survives_its_record_and_is_named_as_one():
    revised = revise(classify(Signals(error_ratio=0.0), detected_at=NOW), cause="oom-killed worker")
    again = type(revised).from_dict(revised.as_dict())
    assert again.real and again.cause == "oom-killed worker"
    assert revised.respond_by.date() == (NOW + timedelta(days=3)).date()  # next business day after a Friday
    assert "not an incident" not in html_of(again)
