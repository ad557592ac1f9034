"""The kinds of finding as one table: every kind has its row, causes rank before symptoms, and each kind's
evidence is typed where it is made and where it is read back."""

from __future__ import annotations

import pytest

from irkit.rules.kinds import KINDS, Finding, Kind, LockRoot, Overload, rank


def test_a_finding_carries_its_kinds_evidence():
    with pytest.raises(TypeError, match="LockRoot"):
        Finding(Kind.LOCK_ROOT, "pid 1", "d", Overload(deployment="x"))
    root = Finding(Kind.LOCK_ROOT, "pid 7", "d", LockRoot(pid=7, blocked_count=3, query="UPDATE orders"))
    assert Finding.from_dict(root.as_dict()) == root
    assert Finding.from_dict({"kind": "lock-root", "subject": "pid 7", "evidence": {"pid": 7, "gone": 1}}).evidence \
        == LockRoot(pid=7)  # a key an older irkit wrote is dropped, not an error


def test_every_kind_has_one_row_and_its_own_rank():
    assert set(KINDS) == set(Kind)
    orders = [info.order for info in KINDS.values()]
    assert len(set(orders)) == len(orders)


def test_every_cause_ranks_before_every_symptom():
    causes = [info.order for info in KINDS.values() if info.cause]
    symptoms = [info.order for info in KINDS.values() if not info.cause]
    assert max(causes) < min(symptoms)
    found = [Finding(Kind.ERROR_SPIKE, "backend", "12% fail"), Finding(Kind.SOURCE_UNAVAILABLE, "error ratio", "d"),
             Finding(Kind.BAD_REVISION, "backend-deployment", "d"), Finding(Kind.LOCK_ROOT, "pid 7", "d")]
    assert [f.kind for f in rank(found)] == [Kind.LOCK_ROOT, Kind.BAD_REVISION, Kind.ERROR_SPIKE,
                                             Kind.SOURCE_UNAVAILABLE]


def test_within_a_kind_the_finding_with_more_impact_ranks_first():
    small = Finding(Kind.OVERLOAD, "frontend", "d", Overload(deployment="frontend", impact=1.5))
    large = Finding(Kind.OVERLOAD, "backend", "d", Overload(deployment="backend", impact=4.0))
    assert rank([small, large]) == [large, small]


@pytest.mark.parametrize("kind", list(Kind), ids=str)
def test_each_kinds_evidence_round_trips_through_its_record_and_a_later_irkits_key_still_reads(kind: Kind):
    finding = Finding(kind, "subject", "detail", KINDS[kind].evidence(impact=2.5))
    record = finding.as_dict()
    assert Finding.from_dict(record) == finding
    later = {**record, "evidence": {**record["evidence"], "added_by_a_later_irkit": [1, 2]}}
    assert Finding.from_dict(later) == finding


def test_a_finding_made_without_evidence_carries_its_kinds_defaults():
    assert Finding(Kind.LOCK_ROOT, "pid 7", "d").evidence == LockRoot()


def test_a_record_of_a_kind_irkit_does_not_write_is_refused():
    with pytest.raises(ValueError, match="no-such-kind"):
        Finding.from_dict({"kind": "no-such-kind", "subject": "x"})
