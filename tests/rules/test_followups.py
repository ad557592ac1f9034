"""The post-mortem's suggested action items: one set per cause found, none for a symptom, the team's own after
the built-in ones, each item once."""

from __future__ import annotations

from irkit.rules.followups import ACTION_ITEMS, suggest
from irkit.rules.kinds import KINDS, Finding, Kind


def test_every_kind_of_cause_has_action_items_and_no_symptom_does():
    causes = {kind for kind, info in KINDS.items() if info.cause}
    assert set(ACTION_ITEMS) == causes
    assert all(ACTION_ITEMS[kind] for kind in causes)


def test_items_are_suggested_for_causes_only_each_named_with_its_cause():
    found = [Finding(Kind.ERROR_SPIKE, "backend", "12% fail"), Finding(Kind.LOCK_ROOT, "pid 7", "idle")]
    assert suggest(found) == [("lock-root pid 7", item) for item in ACTION_ITEMS[Kind.LOCK_ROOT]]


def test_the_teams_own_items_come_after_the_built_in_ones_and_no_item_twice():
    found = [Finding(Kind.LOCK_ROOT, "pid 7", "d"), Finding(Kind.LOCK_ROOT, "pid 9", "d")]
    team = {"lock-root": ["Page the payments team's on-call", ACTION_ITEMS[Kind.LOCK_ROOT][0]]}
    items = [item for _, item in suggest(found, team)]
    assert items == [*ACTION_ITEMS[Kind.LOCK_ROOT], "Page the payments team's on-call"]
