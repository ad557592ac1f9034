"""kubectl against the drill's Kubernetes API emulator: every kubectl line irkit prints, pasted as is, succeeds and
has the same effect as irkit's own action; the playbook's reading commands work."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from irkit import actions
from irkit import config as irconfig
from irkit.actions import Confirmation, Systems
from irkit.lab.kube import KubeLab, build_cluster
from irkit.rules.kinds import (
    BadRevision,
    DatastoreDown,
    DbSaturation,
    Dependency,
    Finding,
    Kind,
    OomKilled,
    Overload,
)
from irkit.rules.plan import PlanTargets, plan
from tests.conftest import CLUSTER, NAMESPACE

KUBECTL = shutil.which("kubectl") or "kubectl"  # scripts/install.sh installs it when the machine has none

FINDINGS = {
    "rollout-undo": Finding(Kind.BAD_REVISION, "backend-deployment", "d",
                            BadRevision(deployment="backend-deployment", revision=2, previous_revision=1)),
    "scale": Finding(Kind.OVERLOAD, "backend", "d", Overload(deployment="backend-deployment", replicas=3, impact=3)),
    "set-env": Finding(Kind.PROVIDER_FAILING, "backend-deployment", "d", Dependency(deployment="backend-deployment")),
    "raise-memory-limit": Finding(Kind.OOM_KILLED, "frontend-deployment", "d", OomKilled(
        deployment="frontend-deployment", container="frontend", memory_limit="1Gi")),
    "rollout-restart": Finding(Kind.DB_SATURATION, "postgres", "d", DbSaturation(deployment="frontend-deployment")),
    "delete-pod": Finding(Kind.DATASTORE_DOWN, "redis", "d", DatastoreDown(pod="redis-master-0", failure="refused")),
}


def _lab(tmp: Path) -> tuple[KubeLab, Path]:
    lab = KubeLab().start()
    lab.load(build_cluster(CLUSTER, NAMESPACE))
    return lab, lab.write_kubeconfig(tmp / "kubeconfig", NAMESPACE)


@pytest.fixture()
def twins(tmp_path: Path) -> Iterator[tuple[tuple[KubeLab, Path], tuple[KubeLab, Path]]]:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    pair = (_lab(tmp_path / "a"), _lab(tmp_path / "b"))
    yield pair
    for lab, _ in pair:
        lab.stop()


def kubectl(kubeconfig: Path, line: str) -> subprocess.CompletedProcess[str]:
    argv = shlex.split(line)
    assert argv[0] == "kubectl", line
    return subprocess.run([KUBECTL, *argv[1:]], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "KUBECONFIG": str(kubeconfig)})


def essence(lab: KubeLab) -> dict[str, Any]:
    """What an action changes: each workload's replicas, containers (image, env, limits) and ready pods."""
    out: dict[str, Any] = {}
    objects = [(k, o.raw) for k, o in lab.emulator.objects.items() if not o.deleted]
    for key, obj in objects:
        if key[0].plural in ("deployments", "statefulsets"):
            containers = [{"image": c["image"], "env": c.get("env") or [],
                           "memory": str(((c.get("resources") or {}).get("limits") or {}).get("memory"))}
                          for c in obj["spec"]["template"]["spec"]["containers"]]
            pods = [p for k, p in objects if k[0].plural == "pods" and k[0].group == ""
                    and k[2].startswith(key[2] + "-")]
            out[key[2]] = {"replicas": obj["spec"].get("replicas"), "containers": containers,
                           "restarted": "kubectl.kubernetes.io/restartedAt" in
                                        ((obj["spec"]["template"].get("metadata") or {}).get("annotations") or {}),
                           "pods": sorted(p["status"]["conditions"][0]["status"] for p in pods),
                           "old pods": sorted(k[2] for k, p in objects if k[0].plural == "pods" and k[0].group == ""
                                              and k[2].startswith(key[2] + "-")
                                              and p["metadata"]["creationTimestamp"] < "2026-11-29")}
    return out


@pytest.mark.parametrize("action", list(FINDINGS))
def test_the_printed_command_pasted_into_kubectl_does_what_irkits_action_does(twins: Any, action: str):
    (by_hand, hand_config), (by_irkit, irkit_config) = twins
    [m] = plan([FINDINGS[action]], PlanTargets(namespace=NAMESPACE))
    assert m.action == action
    result = kubectl(hand_config, m.command)
    assert result.returncode == 0, result.stderr
    systems = Systems(irconfig.load(env={}, kubeconfig=str(irkit_config), action_timeout=2.0))
    [step] = actions.prepare([m], systems, "INC-K")
    outcome = actions.execute(step, systems, incident="INC-K", enabled=True,
                              confirmation=Confirmation.parse(f"INC-K:{step.id}", by="test"))
    assert outcome.status in ("applied", "failed"), outcome.detail  # failed: a restarted bad revision stays down
    assert essence(by_hand) == essence(by_irkit)
    if step.undo_command:  # the undo line for a person works too
        undo = kubectl(hand_config, step.undo_command)
        assert undo.returncode == 0, undo.stderr


PLAYBOOK_READS = [
    ("kubectl get pods -n {ns}", "backend-deployment-"),
    ("kubectl get events -n {ns} --sort-by=.lastTimestamp", "BackOff"),
    ("kubectl get deployments,statefulsets -n {ns}", "postgres-primary"),
    ("kubectl top pods -n {ns}", "MEMORY"),
    ("kubectl logs deployment/backend-deployment -n {ns} --tail=5 --previous", "panic"),
    ("kubectl rollout history deployment/backend-deployment -n {ns}", "release 1.42.0"),
    ("kubectl rollout status deployment/frontend-deployment -n {ns} --timeout=10s", "successfully rolled out"),
    ("kubectl rollout undo deployment/backend-deployment -n {ns} --dry-run=server", "rolled back (server dry run)"),
    ("kubectl get hpa -n {ns}", "No resources found"),  # playbook 4.2: the cluster has none
    ("kubectl get svc -n {ns}", "No resources found"),
    ("kubectl get all -n {ns}", "deployment.apps/backend-deployment"),
    ("kubectl auth can-i patch deployments -n {ns}", "yes"),
]


@pytest.mark.parametrize(("line", "expected"), PLAYBOOK_READS, ids=[r[0].split(" -n")[0] for r in PLAYBOOK_READS])
def test_the_playbooks_commands_answer(twins: Any, line: str, expected: str):
    (lab, config), _ = twins
    before = essence(lab)
    result = kubectl(config, line.format(ns=NAMESPACE))
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout + result.stderr
    assert essence(lab) == before  # reading, and a server-side dry run, change nothing


def test_top_forgets_a_deleted_pod_and_can_i_says_what_rbac_refuses(twins: Any):
    (lab, config), _ = twins
    [victim] = [p["metadata"]["name"] for p in lab.objects("pods", group="") if p["metadata"]["name"].startswith(
        "frontend-deployment-")][:1]
    assert victim in kubectl(config, f"kubectl top pods -n {NAMESPACE}").stdout
    assert kubectl(config, f"kubectl delete pod {victim} -n {NAMESPACE}").returncode == 0
    assert victim not in kubectl(config, f"kubectl top pods -n {NAMESPACE}").stdout  # its usage went with it
    lab.emulator.forbidden.add("events")
    refused = kubectl(config, f"kubectl auth can-i list events -n {NAMESPACE}")
    assert refused.returncode == 1 and refused.stdout.startswith("no - RBAC")
