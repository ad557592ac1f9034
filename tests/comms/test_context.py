"""What the messages say, in plain words: a title per kind of finding from the first cause, the playbook's status
words, and what changed since the last update."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from irkit.comms.context import FACTS, context, status_of, title
from irkit.rules.kinds import BadRevision, DbSaturation, Finding, Kind, LockRoot

FALLBACK = "Service degradation"
NOW = datetime(2026, 12, 1, 3, 30, tzinfo=UTC)


@pytest.mark.parametrize("kind", [k for k in Kind if k is not Kind.SOURCE_UNAVAILABLE], ids=str)
def test_every_kind_of_finding_has_a_title_in_plain_words(kind: Kind):
    said = title([Finding(kind, "backend-deployment", "detail")])
    assert said != FALLBACK and said.strip() == said
    assert "-" not in kind.value or kind.value not in said  # "lock-root" is a word of the records, not of people


def test_a_missing_signal_or_nothing_found_is_not_a_title():
    assert title([Finding(Kind.SOURCE_UNAVAILABLE, "error ratio", "Prometheus did not answer")]) == FALLBACK
    assert title([]) == FALLBACK


@pytest.mark.parametrize(("finding", "said"), [
    (Finding(Kind.LOCK_ROOT, "pid 7", "d", LockRoot(pid=7, state="idle in transaction",
                                                    query="UPDATE orders SET status = 'paid' WHERE id = 5")),
     "Orders updates blocked by an idle database transaction"),
    (Finding(Kind.LOCK_ROOT, "pid 7", "d", LockRoot(pid=7, state="active")),
     "Database writes blocked by a long database transaction"),
    (Finding(Kind.BAD_REVISION, "backend-deployment", "d",
             BadRevision(deployment="backend-deployment", image="marketplace/backend:1.42.0")),
     "The new backend release 1.42.0 fails"),
    (Finding(Kind.BAD_REVISION, "api", "d", BadRevision(deployment="api", image="registry:5000/api")),
     "The new api release fails"),  # a registry's port is not a tag
    (Finding(Kind.BAD_REVISION, "api", "d", BadRevision(deployment="api", image="api@sha256:0a1b")),
     "The new api release fails"),
    (Finding(Kind.DB_SATURATION, "postgres", "d", DbSaturation(application="reporting", idle_sessions=40)),
     "Database connections exhausted by reporting"),
    (Finding(Kind.CRASHLOOP, "frontend-deployment", "d"), "Frontend pods keep crashing"),
])
def test_a_title_names_what_happened_from_its_evidence(finding: Finding, said: str):
    assert title([finding]) == said


def test_the_first_cause_names_the_incident_even_after_a_symptom():
    found = [Finding(Kind.ERROR_SPIKE, "backend", "12% fail"), Finding(Kind.CRASHLOOP, "backend-deployment", "d")]
    assert title(found) == "Backend pods keep crashing"


def test_the_status_words_follow_the_playbook():
    assert status_of(recovered=None, applied=False, planned=False) == "Investigating"
    assert status_of(recovered=None, applied=False, planned=True) == "Identified"
    assert status_of(recovered=False, applied=True, planned=True) == "Monitoring"
    assert status_of(recovered=True, applied=True, planned=False) == "Resolved"


def _context(**changes: object) -> dict[str, object]:
    arguments: dict[str, object] = dict(
        incident="INC-9", severity="SEV-2", findings=[Finding(Kind.CRASHLOOP, "backend-deployment", "it panics")],
        affected=["backend"], reasons=["error ratio 12% over 10%"], onset=NOW - timedelta(minutes=75), now=NOW,
        recovered=None, resolved_at=None, applied=[], planned=["rollout-undo deployment/backend-deployment"],
        interval=30, war_room="#inc", status_page_url="https://status.example")
    arguments.update(changes)
    return context(**arguments)


def test_an_update_says_what_changed_since_the_last_one():
    first = _context()
    assert first["status"] == "Identified" and first["changes"] == []
    assert first["next_update"] == "2026-12-01 04:00 UTC"
    later = _context(applied=["rollout-undo (rollout-undo-1a2b3c)"], previous={**first["facts"], "at": "03:30"})
    assert later["changes"] == ["status: Identified -> Monitoring",
                                "actions: planned: rollout-undo deployment/backend-deployment -> "
                                "rollout-undo (rollout-undo-1a2b3c)"]
    assert set(later["facts"]) == set(FACTS) and later["last_update"] == "03:30"


def test_once_recovered_it_is_resolved_with_its_duration_and_no_next_update():
    resolved = _context(recovered=True, applied=["rollout-undo (rollout-undo-1a2b3c)"])
    assert resolved["status"] == "Resolved" and resolved["next_update"] == "none"
    assert resolved["resolved_at"] == "2026-12-01 03:30 UTC" and resolved["duration"] == "1 h 15 min"


def test_what_customers_are_told_names_no_internal_system():
    for severity in ("SEV-1", "SEV-2"):
        said = _context(severity=severity)
        customer = f"{said['customer_title']} {said['customer_impact']}"
        assert "backend" not in customer and "pod" not in customer
    assert _context(severity="SEV-1")["customer_title"] == "Service disruption"


def _said(stage: str, ctx: dict[str, object]) -> dict[str, str]:
    from irkit import comms, config
    cfg = config.load(env={}, statuspage_page_id="p1", customer_email_to="customers@example.com")
    return {m.channel: f"{m.subject}\n{m.body}" for m in comms.messages(ctx, stage, cfg, draft=stage == "resolution")}


def test_each_stage_says_what_is_true_then_on_every_channel():
    initial = _said("initial", _context())
    unvalidated = _said("resolution", _context(applied=["rollout-undo (ACTION-1)"], not_resolved=["error ratio 9%"]))
    for channel in ("email", "slack", "statuspage", "customer-email"):
        assert unvalidated[channel] != initial[channel], channel  # the resolution draft is no copy of the initial
    assert unvalidated["email"].startswith("[NOT RESOLVED]") and "not resolved as of" in unvalidated["email"]
    assert "error ratio 9%" in unvalidated["email"] and "has been resolved" not in unvalidated["email"]
    assert "NOT RESOLVED YET" in unvalidated["slack"] and "not resolved yet" in unvalidated["statuspage"]
    assert "identified the cause" not in unvalidated["statuspage"]
    resolved = _said("resolution", _context(recovered=True, applied=["rollout-undo (ACTION-1)"]))
    assert resolved["email"].startswith("[RESOLVED]") and "has been resolved" in resolved["statuspage"]
    assert resolved["customer-email"].startswith("Resolved: ") and "was unavailable" not in resolved["email"]


def test_an_incident_over_when_it_was_assessed_is_told_in_the_past_tense():
    over = _said("initial", _context(ongoing=False, resolved_at=NOW - timedelta(minutes=20)))
    assert "failed or responded slowly" in over["customer-email"] and "Since " not in over["customer-email"]
    assert "no longer occurs" in over["statuspage"] and "investigating reports" not in over["statuspage"]
