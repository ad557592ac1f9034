"""The timeline merge and the response measures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from irkit.rules.timeline import Event, measures, merge

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def at(minutes: float, kind: str, text: str, source: str = "irkit") -> Event:
    return Event(T0 + timedelta(minutes=minutes), source, kind, text)


def test_events_come_in_time_order_and_a_repeated_finding_is_kept_once():
    events = merge([at(30, "finding", "error-spike backend: 12.1% of requests fail"),
                    at(10, "onset", "error ratio crossed", "prometheus"),
                    at(20, "finding", "error-spike backend: 12.0% of requests fail"),
                    at(-600, "deploy", "deployment/backend revision 3", "kubernetes")])
    assert [e.kind for e in events] == ["deploy", "onset", "finding"]
    assert events[-1].text.endswith("12.0% of requests fail")  # the first run that saw it keeps it


def test_the_measures_follow_the_playbooks_moments():
    events = [at(0, "onset", "o", "prometheus"), at(12, "run", "irkit run", "responder"),
              at(25, "applied", "rollout-undo applied"), at(40, "recovered", "recovery validated")]
    m = measures(events, respond_by=T0 + timedelta(minutes=15))
    assert (m.mttd, m.mtta, m.mttm, m.mttr) == (timedelta(minutes=12), timedelta(0), timedelta(minutes=25),
                                                timedelta(minutes=40))
    assert m.deadline_met is True
    late = measures(events, respond_by=T0 + timedelta(minutes=5))
    assert late.deadline_met is False


def test_an_alert_is_the_detection_and_the_run_the_acknowledgement():
    m = measures([at(0, "onset", "o"), at(3, "alert", "a", "alertmanager"), at(9, "run", "r", "responder")])
    assert (m.mttd, m.mtta) == (timedelta(minutes=3), timedelta(minutes=6))


def test_what_the_timeline_does_not_say_stays_unknown():
    m = measures([at(5, "run", "r", "responder")])
    assert m.onset is None and m.mttd is None and m.mttr is None and m.deadline_met is None
    assert m.as_dict()["mttr_seconds"] is None
