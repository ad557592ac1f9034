"""Kubernetes actions against the emulator over HTTP: dry runs change nothing, applied actions have their effect
and their undo restores the state, guardrails and confirmations refuse."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from irkit import actions
from irkit import config as irconfig
from irkit.actions import Confirmation, Systems
from irkit.lab.kube import KubeLab, build_cluster
from irkit.rules.plan import Mitigation
from tests.conftest import CLUSTER, NAMESPACE

INCIDENT = "INC-ACT"


@pytest.fixture()
def lab() -> Iterator[KubeLab]:
    with KubeLab() as kube:  # a cluster of its own: these tests change it
        kube.load(build_cluster(CLUSTER, NAMESPACE))
        yield kube


@pytest.fixture()
def systems(lab: KubeLab, tmp_path: Path) -> Iterator[Systems]:
    cfg = irconfig.load(env={}, kubeconfig=str(lab.write_kubeconfig(tmp_path / "kubeconfig", NAMESPACE)),
                        action_timeout=2.0)
    with_systems = Systems(cfg)
    yield with_systems
    with_systems.close()


def state(lab: KubeLab) -> str:
    """Every object the emulator holds, as one JSON text: what 'nothing changed' compares."""
    return json.dumps(sorted((str(k), obj.raw) for k, obj in lab.emulator.objects.items() if not obj.deleted),
                      sort_keys=True, default=str)


def mitigation(action: str, target: str, **params: Any) -> Mitigation:
    return Mitigation(action, target, "test", "kubectl ...", "test", params={"namespace": NAMESPACE, **params})


def confirm(*steps: actions.Step, incident: str = INCIDENT) -> Confirmation:
    return Confirmation.parse(f"{incident}:{','.join(s.id for s in steps)}", by="test")


def deployment(lab: KubeLab, name: str) -> dict[str, Any]:
    return next(o.raw for k, o in lab.emulator.objects.items() if k[0].plural == "deployments" and k[2] == name
                and not o.deleted)


def pods(lab: KubeLab, prefix: str) -> list[dict[str, Any]]:
    return [o.raw for k, o in lab.emulator.objects.items()
            if k[0].plural == "pods" and k[0].group == "" and k[2].startswith(prefix) and not o.deleted]


CASES = [
    ("rollout-undo", "deployment/backend-deployment", {"deployment": "backend-deployment"}),
    ("scale", "deployment/backend-deployment", {"deployment": "backend-deployment", "replicas": 5}),
    ("set-env", "deployment/backend-deployment", {"deployment": "backend-deployment", "env": "API_TIMEOUT=30000"}),
    ("raise-memory-limit", "deployment/frontend-deployment",
     {"deployment": "frontend-deployment", "container": "frontend", "memory": "1536Mi"}),
    ("rollout-restart", "deployment/frontend-deployment", {"deployment": "frontend-deployment"}),
    ("delete-pod", "pod/redis-master-0", {"pod": "redis-master-0"}),
    ("suspend-cronjob", "cronjob/pin-release", {"cronjob": "pin-release", "deployment": "backend-deployment"}),
]


@pytest.mark.parametrize(("action", "target", "params"), CASES, ids=[c[0] for c in CASES])
def test_a_dry_run_leaves_the_cluster_exactly_as_it_was(lab: KubeLab, systems: Systems, action: str, target: str,
                                                        params: dict[str, Any]):
    before = state(lab)
    [step] = actions.prepare([mitigation(action, target, **params)], systems, INCIDENT)
    assert not step.refused, step.refused
    assert step.dry_run.startswith("accepted by the API server"), step.dry_run  # dryRun=All reached the server
    # Confirmed, but mitigations not enabled for the run: still a dry run.
    outcome = actions.execute(step, systems, incident=INCIDENT, enabled=False, confirmation=confirm(step))
    assert outcome.status == "dry-run" and "nothing was changed" in outcome.detail
    assert state(lab) == before


def test_a_rollback_brings_back_the_previous_revision_and_its_undo_the_bad_one(lab: KubeLab, systems: Systems):
    [step] = actions.prepare([mitigation("rollout-undo", "deployment/backend-deployment",
                                         deployment="backend-deployment")], systems, INCIDENT)
    assert step.before["images"] == ["marketplace/backend:1.42.0"]
    assert step.after["images"] == ["marketplace/backend:1.41.0"]
    assert any("1.41.0" in line for line in step.diff())
    outcome = actions.execute(step, systems, incident=INCIDENT, enabled=True, confirmation=confirm(step))
    assert outcome.status == "applied", outcome.detail
    assert outcome.confirmation["by"] == "test" and outcome.seconds >= 0
    dep = deployment(lab, "backend-deployment")
    assert [c["image"] for c in dep["spec"]["template"]["spec"]["containers"]] == ["marketplace/backend:1.41.0"]
    assert dep["status"]["readyReplicas"] == 3  # the old revision's pods run
    assert all(p["status"]["containerStatuses"][0]["ready"] for p in pods(lab, "backend-deployment"))
    undone = actions.revert(step, systems, incident=INCIDENT, enabled=True, confirmation=confirm(step))
    dep = deployment(lab, "backend-deployment")
    assert [c["image"] for c in dep["spec"]["template"]["spec"]["containers"]] == ["marketplace/backend:1.42.0"]
    assert dep["status"]["readyReplicas"] == 0  # the bad revision crashes again: the undo is faithful
    assert undone.status == "undo-failed" and "0/3 available" in undone.detail


@pytest.mark.parametrize(("action", "params", "read"), [
    ("scale", {"replicas": 5}, lambda d: d["spec"]["replicas"]),
    ("set-env", {"env": "API_TIMEOUT=30000"},
     lambda d: d["spec"]["template"]["spec"]["containers"][0].get("env")),
], ids=["scale", "set-env"])
def test_an_applied_change_has_its_effect_and_its_undo_restores_the_state(
        lab: KubeLab, systems: Systems, action: str, params: dict[str, Any], read: Any):
    cfg = systems.config
    systems.config = irconfig.Config(**{**cfg.__dict__, "action_timeout": 1.0})
    original = read(deployment(lab, "frontend-deployment"))
    [step] = actions.prepare([mitigation(action, "deployment/frontend-deployment", deployment="frontend-deployment",
                                         **params)], systems, INCIDENT)
    outcome = actions.execute(step, systems, incident=INCIDENT, enabled=True, confirmation=confirm(step))
    changed = read(deployment(lab, "frontend-deployment"))
    assert changed != original
    assert outcome.before != outcome.after
    actions.revert(step, systems, incident=INCIDENT, enabled=True, confirmation=confirm(step))
    assert read(deployment(lab, "frontend-deployment")) in (original, [])


def test_raising_the_memory_limit_stops_the_oom_kills_and_the_undo_sets_it_back(lab: KubeLab, systems: Systems):
    [step] = actions.prepare([mitigation("raise-memory-limit", "deployment/frontend-deployment",
                                         deployment="frontend-deployment", container="frontend", memory="1536Mi")],
                             systems, INCIDENT)
    assert step.before == {"frontend": {"memory": "1Gi"}} and step.after == {"frontend": {"memory": "1536Mi"}}
    outcome = actions.execute(step, systems, incident=INCIDENT, enabled=True, confirmation=confirm(step))
    assert outcome.status == "applied", outcome.detail
    frontend = pods(lab, "frontend-deployment")
    assert len(frontend) == 2 and all("lastState" not in p["status"]["containerStatuses"][0] for p in frontend)
    actions.revert(step, systems, incident=INCIDENT, enabled=True, confirmation=confirm(step))
    limits = deployment(lab, "frontend-deployment")["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert limits["limits"]["memory"] == "1Gi"


def test_a_suspended_cronjob_starts_nothing_until_its_undo_resumes_it(lab: KubeLab, systems: Systems):
    def suspended() -> bool:
        return bool(next(o.raw for k, o in lab.emulator.objects.items()
                         if k[0].plural == "cronjobs" and k[2] == "pin-release")["spec"].get("suspend"))
    [step] = actions.prepare([mitigation("suspend-cronjob", "cronjob/pin-release", cronjob="pin-release",
                                         deployment="backend-deployment")], systems, INCIDENT)
    assert not step.refused and step.before == {"suspend": False} and not suspended()  # the dry run changed nothing
    assert step.undo_command == "kubectl patch cronjob/pin-release -n web3-marketplace-prod --type=merge -p " \
                                "'{\"spec\":{\"suspend\":false}}'"
    outcome = actions.execute(step, systems, incident=INCIDENT, enabled=True, confirmation=confirm(step))
    assert outcome.status == "applied" and suspended(), outcome.detail
    undone = actions.revert(step, systems, incident=INCIDENT, enabled=True, confirmation=confirm(step))
    assert undone.status == "undone" and not suspended(), undone.detail


def test_a_deleted_pod_comes_back_from_its_controller(lab: KubeLab, systems: Systems):
    old_uid = pods(lab, "redis-master-0")[0]["metadata"]["uid"]
    [step] = actions.prepare([mitigation("delete-pod", "pod/redis-master-0", pod="redis-master-0")], systems, INCIDENT)
    outcome = actions.execute(step, systems, incident=INCIDENT, enabled=True, confirmation=confirm(step))
    assert outcome.status == "applied", outcome.detail
    [pod] = pods(lab, "redis-master-0")
    assert pod["metadata"]["uid"] != old_uid and pod["status"]["containerStatuses"][0]["ready"]


@pytest.mark.parametrize(("change", "m", "guardrail"), [
    ({"allowed_actions": ["delete-pod"]}, mitigation("scale", "deployment/backend-deployment",
                                                      deployment="backend-deployment", replicas=4), "allowed_actions"),
    ({}, Mitigation("scale", "deployment/backend-deployment", "t", "c", "f",
                    params={"namespace": "kube-system", "deployment": "backend-deployment", "replicas": 4}),
     "allowed_namespaces"),
    ({}, mitigation("scale", "deployment/payments", deployment="payments", replicas=4), "allowed_workloads"),
    ({"max_replicas": 4}, mitigation("scale", "deployment/backend-deployment", deployment="backend-deployment",
                                     replicas=5), "max_replicas"),
    ({"min_replicas": 2}, mitigation("scale", "deployment/backend-deployment", deployment="backend-deployment",
                                     replicas=1), "min_replicas"),
    ({"allowed_workloads": ["backend-deployment", "nightly-report"]},
     mitigation("suspend-cronjob", "cronjob/pin-release", cronjob="pin-release", deployment="backend-deployment"),
     "allowed_workloads"),
], ids=["action", "namespace", "workload", "max-replicas", "min-replicas", "cronjob"])
def test_each_guardrail_refuses_and_says_how_to_change_it(lab: KubeLab, systems: Systems, change: dict[str, Any],
                                                          m: Mitigation, guardrail: str):
    systems.config = systems.config.replace(**change)
    before = state(lab)
    [step] = actions.prepare([m], systems, INCIDENT)
    assert step.refused.startswith("refused by guardrail") and guardrail in step.refused
    outcome = actions.execute(step, systems, incident=INCIDENT, enabled=True, confirmation=confirm(step))
    assert outcome.status == "refused"
    assert state(lab) == before


def test_a_confirmation_for_another_incident_or_another_step_changes_nothing(lab: KubeLab, systems: Systems):
    [step] = actions.prepare([mitigation("scale", "deployment/backend-deployment", deployment="backend-deployment",
                                         replicas=4)], systems, INCIDENT)
    before = state(lab)
    other_incident = actions.execute(step, systems, incident=INCIDENT, enabled=True,
                                     confirmation=confirm(step, incident="INC-OTHER"))
    assert other_incident.status == "refused" and "INC-OTHER" in other_incident.detail
    other_step = actions.execute(step, systems, incident=INCIDENT, enabled=True,
                                 confirmation=Confirmation.parse(f"{INCIDENT}:scale-000000", by="test"))
    assert other_step.status == "dry-run"
    with pytest.raises(actions.ConfirmationError, match="scale-000000, which this plan does not have"):
        Confirmation.parse(f"{INCIDENT}:scale-000000", by="test").check(INCIDENT, [step.id])
    assert state(lab) == before


def test_the_step_id_follows_what_it_changes():
    a = actions.step_id(INCIDENT, "scale", "deployment/x", {"replicas": 4})
    assert a == actions.step_id(INCIDENT, "scale", "deployment/x", {"replicas": 4})
    assert a != actions.step_id(INCIDENT, "scale", "deployment/x", {"replicas": 5})
    assert a != actions.step_id("INC-2", "scale", "deployment/x", {"replicas": 4})
