"""A name stands for a workload exactly or not at all: a plan never acts on a workload by a prefix."""

from __future__ import annotations

import pytest

from irkit.rules.diagnosis import Observations, Targets, diagnose
from irkit.rules.kinds import Kind
from irkit.rules.names import belongs_to, workload_named
from irkit.rules.plan import plan
from tests.rules.test_diagnosis import NOW

DEPLOYMENTS = ("backend-deployment", "frontend-deployment")


@pytest.mark.parametrize(("name", "workload"), [
    ("backend", "backend-deployment"), ("backend-deployment", "backend-deployment"), ("frontend", "frontend-deployment"),
    ("b", ""), ("f", ""), ("back", ""), ("backend-deployment-evil", ""), ("", ""), ("reporting-worker", ""),
])
def test_a_service_or_application_names_its_workload_exactly(name: str, workload: str):
    assert workload_named(name, DEPLOYMENTS) == workload


@pytest.mark.parametrize(("pod", "owner", "yes"), [
    ("backend-deployment-7f9c6d8b5d-x2x4z", "", True),
    ("backend-deployment-7f9c6d8b5d-x2x4z", "ReplicaSet/backend-deployment-7f9c6d8b5d", True),
    ("postgres-primary-0", "StatefulSet/postgres-primary", True),
    ("backend-deployment-evil-7f9c6d8b5d-x2x4z", "", False),  # another Deployment's pod
    ("backend-deployment-evil-7f9c6d8b5d-x2x4z", "ReplicaSet/backend-deployment-evil-7f9c6d8b5d", False),
    ("backend-deployment-7f9c6d8b5d-x2x4z", "ReplicaSet/frontend-deployment-7f9c6d8b5d", False),
    ("backend-deployment", "", False),
])
def test_a_pod_belongs_to_the_workload_whose_controller_made_it(pod: str, owner: str, yes: bool):
    assert belongs_to(pod, "backend-deployment" if not pod.startswith("postgres") else "postgres-primary",
                      owner) is yes


def test_an_application_whose_name_is_a_prefix_of_a_deployment_is_not_that_deployment():
    obs = Observations(now=NOW, saturation={"sessions": 95, "max_connections": 100},
                       connections=[{"application_name": "b", "state": "idle", "sessions": 90}])
    [finding] = diagnose(obs, Targets())
    steps = plan([finding])
    assert finding.evidence.deployment == "" and [s.action for s in steps] == ["terminate-idle"]
    assert steps[0].target == "application b"  # its idle sessions, not a restart of backend-deployment


def test_a_service_label_that_is_a_prefix_of_a_deployment_scales_nothing():
    obs = Observations(now=NOW, error_ratio_now=[{"service": "f", "error_ratio": 0.2}],
                       request_rate=[{"service": "f", "rps_now": 120.0, "rps_baseline": 40.0}],
                       workloads=[{"name": "frontend-deployment", "desired": 2}])
    found = diagnose(obs, Targets())
    overload = next(f for f in found if f.kind is Kind.OVERLOAD)
    assert overload.evidence.deployment == "" and not [s for s in plan(found) if s.action == "scale"]
