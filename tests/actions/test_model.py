"""An action on paper: a step's id names exactly the change reviewed, a confirmation names steps of this incident's
plan only, and an outcome says whether anything may have changed."""

from __future__ import annotations

import pytest

from irkit.actions.model import Confirmation, Outcome, Step, step_id
from irkit.errors import ConfirmationError

PARAMS = {"namespace": "prod", "deployment": "backend-deployment", "replicas": 5}


def test_a_steps_id_is_its_action_and_moves_when_the_situation_does():
    first = step_id("INC-42", "scale", "deployment/backend-deployment", PARAMS)
    assert first.startswith("scale-") and len(first) == len("scale-") + 6
    assert step_id("INC-42", "scale", "deployment/backend-deployment", dict(reversed(PARAMS.items()))) == first
    for moved in (step_id("INC-43", "scale", "deployment/backend-deployment", PARAMS),
                  step_id("INC-42", "scale", "deployment/frontend-deployment", PARAMS),
                  step_id("INC-42", "scale", "deployment/backend-deployment", {**PARAMS, "replicas": 6})):
        assert moved != first


def test_a_step_round_trips_through_its_record_and_shows_what_it_changes_as_a_diff():
    step = Step("scale-1a2b3c", "scale", "deployment/backend-deployment", "kubernetes", "overload",
                "kubectl scale ...", PARAMS, before={"replicas": 3, "image": "b:1"},
                after={"replicas": 5, "image": "b:1"},
                guardrails=("allowed_actions",), undo="scale back to 3 replicas")
    assert Step.from_dict(step.as_dict()) == step
    changed = [line for line in step.diff() if line[:1] in "+-"]
    assert changed == ['- "replicas": 3', '+ "replicas": 5']  # the image, unchanged, is context only


def test_a_confirmation_names_an_incident_and_the_steps_of_its_plan():
    confirmation = Confirmation.parse(" INC-42:rollout-undo-3f9a2c,scale-1a2b3c ", by="alice")
    assert (confirmation.incident, confirmation.ids, confirmation.by, confirmation.via) == (
        "INC-42", ("rollout-undo-3f9a2c", "scale-1a2b3c"), "alice", "parameter")
    confirmation.check("INC-42", ["rollout-undo-3f9a2c", "scale-1a2b3c", "delete-pod-0a0b0c"])


@pytest.mark.parametrize("text", ["rollout-undo-3f9a2c", "INC-42:", "INC-42:Rollout-Undo", "INC 42:scale-1a2b3c",
                                  "INC-42:scale-1a2b3c;reboot", "INC-42:scale-1a2b3c,"])
def test_a_malformed_confirmation_is_refused_with_an_example(text: str):
    with pytest.raises(ConfirmationError, match="e.g. INC-42:rollout-undo-3f9a2c"):
        Confirmation.parse(text, by="alice")


def test_a_confirmation_of_another_incident_or_of_a_step_the_plan_does_not_have_is_refused():
    confirmation = Confirmation.parse("INC-42:scale-1a2b3c", by="alice")
    with pytest.raises(ConfirmationError, match="for incident INC-42, this run is INC-43"):
        confirmation.check("INC-43", ["scale-1a2b3c"])
    with pytest.raises(ConfirmationError, match="names scale-1a2b3c, which this plan does not have .*scale-9f8e7d"):
        confirmation.check("INC-42", ["scale-9f8e7d"])  # the situation moved: the id did too


@pytest.mark.parametrize(("status", "confirmed", "changed"), [
    ("dry-run", False, False), ("refused", True, False), ("applied", True, True), ("failed", True, True),
    ("undone", True, True), ("undo-failed", True, True), ("applied", False, False),
])
def test_an_outcome_may_have_changed_its_target_only_when_confirmed_and_tried(status: str, confirmed: bool,
                                                                              changed: bool):
    outcome = Outcome("scale-1a2b3c", "scale", status, "d",
                      confirmation={"incident": "INC-42", "by": "alice"} if confirmed else {})
    assert outcome.changed is changed
    assert Outcome.from_dict(outcome.as_dict()) == outcome
