"""The cluster a scenario describes."""

from __future__ import annotations

from datetime import UTC, datetime


def test_scenario_log_lines_are_stamped_relative_to_the_drill_start():
    from irkit.lab.kube import build_cluster
    now = datetime(2026, 11, 28, 3, 0, 0, tzinfo=UTC)
    cluster = build_cluster({"workloads": [{"name": "api-deployment", "container": "api", "pods": [
        {"count": 1, "state": "crashloop", "logs": "{ago:5s} INFO up\n", "previous_logs": "{ago:2m} panic\n"}]}]},
        "ns", now=now)
    texts = sorted(cluster.logs.values())
    assert texts == ["2026-11-28T02:58:00Z panic\n", "2026-11-28T02:59:55Z INFO up\n"]



def test_put_replaces_a_deployment_and_a_stale_resource_version_conflicts(tmp_path):
    import pytest
    from kubernetes.client.exceptions import ApiException

    from irkit import config as irconfig
    from irkit.lab.kube import KubeLab, build_cluster
    from irkit.sources import k8s
    from tests.conftest import CLUSTER, NAMESPACE

    with KubeLab() as lab:
        lab.load(build_cluster(CLUSTER, NAMESPACE))
        kube = k8s.connect(irconfig.load(env={}, kubeconfig=str(lab.write_kubeconfig(tmp_path / "k", NAMESPACE))))
        dep = kube.apps.read_namespaced_deployment("frontend-deployment", NAMESPACE)
        dep.spec.replicas = 4
        replaced = kube.apps.replace_namespaced_deployment("frontend-deployment", NAMESPACE, dep)
        assert replaced.spec.replicas == 4 and replaced.status.ready_replicas == 4  # the controller followed
        dep.spec.replicas = 1  # still carries the resourceVersion it was read at
        with pytest.raises(ApiException) as stale:
            kube.apps.replace_namespaced_deployment("frontend-deployment", NAMESPACE, dep)
        assert stale.value.status == 409
        dry = kube.apps.patch_namespaced_deployment("frontend-deployment", NAMESPACE, {"spec": {"replicas": 9}},
                                                    dry_run="All")
        assert dry.spec.replicas == 9
        assert kube.apps.read_namespaced_deployment("frontend-deployment", NAMESPACE).spec.replicas == 4
        with pytest.raises(ApiException) as invalid:
            kube.apps.patch_namespaced_deployment("frontend-deployment", NAMESPACE, {"spec": {"replicas": -1}})
        assert invalid.value.status == 422
        kube.close()
