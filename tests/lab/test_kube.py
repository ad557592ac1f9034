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


def test_log_times_follow_the_format_of_the_software_that_prints_them():
    from irkit.lab.kube import build_cluster
    now = datetime(2026, 12, 7, 13, 2, 41, 412345, tzinfo=UTC)
    lines = ("{ago:30s|%Y-%m-%d %H:%M:%S.%3f UTC} [2291] FATAL:  password authentication failed\n"  # PostgreSQL %m
             "{ago:1m|I%m%d %H:%M:%S.%f}    1 reflector.go:424] watch closed\n"  # klog
             '{"ts": {ago:2m|epoch}, "level": "error"}\n')  # a JSON logger's epoch seconds
    cluster = build_cluster({"workloads": [{"name": "api", "pods": [{"logs": lines}]}]}, "ns", now=now)
    [text] = cluster.logs.values()
    assert text.splitlines() == ["2026-12-07 13:02:11.412 UTC [2291] FATAL:  password authentication failed",
                                 "I1207 13:01:41.412345    1 reflector.go:424] watch closed",
                                 f'{{"ts": {now.timestamp() - 120:.3f}, "level": "error"}}']


def _pods(cluster):
    return {o["metadata"]["name"]: o for r, o in cluster.objects if r == "v1/pods"}


def test_a_container_shows_the_termination_the_scenario_gives_it():
    from irkit.lab.kube import build_cluster
    cluster = build_cluster({"workloads": [{"name": "worker", "container": "worker", "pods": [
        {"state": "crashloop", "reason": "OOMKilled", "exit_code": 137},
        {"state": "crashloop", "reason": "StartError", "exit_code": 128,
         "message": 'exec: "wge": executable file not found in $PATH'},
        {"state": "crashloop", "waiting_reason": "CreateContainerConfigError",
         "waiting_message": 'couldn\'t find key DATABASE_URL in Secret ns/worker-env'}]}]}, "ns")
    statuses = [p["status"]["containerStatuses"][0] for p in _pods(cluster).values()]
    ended = [s["lastState"]["terminated"] for s in statuses]
    assert [(e["reason"], e["exitCode"]) for e in ended] == [("OOMKilled", 137), ("StartError", 128), ("Error", 2)]
    assert ended[1]["message"] == 'exec: "wge": executable file not found in $PATH'
    assert statuses[0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert statuses[2]["state"]["waiting"] == {"reason": "CreateContainerConfigError",
                                               "message": "couldn't find key DATABASE_URL in Secret ns/worker-env"}


def test_a_stalled_rollout_keeps_old_pods_serving_beside_the_new_ones_that_fail():
    from irkit.lab.kube import build_cluster
    cluster = build_cluster({"workloads": [{"name": "checkout", "replicas": 3, "revisions": [
        {"image": "registry.local/checkout:4.1.0", "age": "9d"}, {"image": "registry.local/checkout:4.2.0", "age": "12m"}],
        "pods": [{"count": 3, "revision": 1}, {"count": 1, "revision": 2, "state": "imagepull",
                                                "waiting_reason": "ErrImagePull"}]}]}, "ns")
    sets = {o["spec"]["template"]["spec"]["containers"][0]["image"]: o for r, o in cluster.objects
            if r == "apps/v1/replicasets"}
    assert (sets["registry.local/checkout:4.1.0"]["status"], sets["registry.local/checkout:4.2.0"]["status"]) == (
        {"replicas": 3, "readyReplicas": 3}, {"replicas": 1, "readyReplicas": 0})
    [deployment] = [o for r, o in cluster.objects if r == "apps/v1/deployments"]
    assert deployment["status"]["readyReplicas"] == 3 and deployment["status"]["updatedReplicas"] == 1
    owners = sorted(p["metadata"]["ownerReferences"][0]["name"] for p in _pods(cluster).values())
    old = sets["registry.local/checkout:4.1.0"]["metadata"]["name"]
    assert owners.count(old) == 3 and len(owners) == 4


def test_sidecars_init_containers_bare_and_evicted_pods_are_as_kubelet_reports_them():
    from irkit.lab.kube import build_cluster
    cluster = build_cluster({"workloads": [
        {"name": "payments", "container": "payments", "sidecars": [{"name": "istio-proxy", "image": "istio/proxyv2:1.22"}],
         "init_containers": [{"name": "migrate", "state": "crashloop", "logs": "relation \"ledger\" does not exist\n"}]},
        {"name": "debug-shell", "kind": "Pod"},
        {"name": "indexer", "replicas": 1, "pods": [{"count": 1}, {"count": 2, "state": "evicted", "age": "2d"}]}]},
        "ns")
    pods = _pods(cluster)
    [payments] = [p for n, p in pods.items() if n.startswith("payments-")]
    assert [c["name"] for c in payments["spec"]["containers"]] == ["payments", "istio-proxy"]
    assert payments["status"]["phase"] == "Pending"  # its init container never completes
    assert payments["status"]["initContainerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert payments["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "PodInitializing"
    assert cluster.logs[("ns", payments["metadata"]["name"], "migrate", False)] == 'relation "ledger" does not exist\n'
    assert "ownerReferences" not in pods["debug-shell"]["metadata"]  # nothing will make it again
    evicted = [p for n, p in pods.items() if n.startswith("indexer-") and p["status"]["phase"] == "Failed"]
    assert len(evicted) == 2 and all(p["status"]["reason"] == "Evicted" for p in evicted)
    [indexer] = [o for r, o in cluster.objects if r == "apps/v1/deployments" and o["metadata"]["name"] == "indexer"]
    assert indexer["status"]["readyReplicas"] == 1  # evicted pods are not the workload's replicas


def test_a_scenarios_own_events_replace_the_automatic_ones():
    from irkit.lab.kube import build_cluster
    gpu = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: 3 No " \
          "preemption victims found for incoming pod."
    cluster = build_cluster({"workloads": [{"name": "trainer", "pods": [{"state": "unschedulable", "events": [
        {"reason": "FailedScheduling", "message": gpu, "count": 7}]}]}]}, "ns")
    messages = [o["message"] for r, o in cluster.objects if r == "v1/events" and o["involvedObject"]["kind"] == "Pod"]
    assert messages == [gpu]


def test_a_pod_from_a_broken_spec_fails_again_the_same_way_after_a_delete(tmp_path):
    from irkit import config as irconfig
    from irkit.lab.kube import KubeLab, build_cluster
    from irkit.sources import k8s

    spec = {"workloads": [{"name": "worker", "container": "worker", "fault": "template", "pods": [
        {"state": "crashloop", "reason": "StartError", "exit_code": 128, "logs": "{ago:5s} exec failed\n",
         "message": 'exec: "wge": executable file not found in $PATH'}]}]}
    with KubeLab() as lab:
        lab.load(build_cluster(spec, "ns"))
        kube = k8s.connect(irconfig.load(env={}, kubeconfig=str(lab.write_kubeconfig(tmp_path / "k", "ns"))))
        [pod] = kube.core.list_namespaced_pod("ns").items
        kube.core.delete_namespaced_pod(pod.metadata.name, "ns")
        [again] = kube.core.list_namespaced_pod("ns").items
        assert again.metadata.name != pod.metadata.name
        status = again.status.container_statuses[0]
        assert status.state.waiting.reason == "CrashLoopBackOff"
        assert (status.last_state.terminated.reason, status.last_state.terminated.exit_code) == ("StartError", 128)
        assert "exec failed" in kube.core.read_namespaced_pod_log(again.metadata.name, "ns", container="worker")
        kube.close()


def test_nodes_hpas_services_cronjobs_volumes_quotas_and_config_are_staged_as_the_api_serves_them(tmp_path):
    import subprocess

    from irkit.lab.kube import KubeLab, build_cluster
    spec = {
        "nodes": ["node-a", {"name": "node-b", "ready": False, "conditions": {"DiskPressure": True},
                             "taints": [{"key": "node.kubernetes.io/disk-pressure", "effect": "NoSchedule"}]}],
        "workloads": [{"name": "api", "app": "api", "replicas": 2, "ports": [{"name": "http", "port": 8080}]}],
        "services": [{"name": "api", "app": "api", "port": 80, "target_port": "http"},
                     {"name": "api-typo", "app": "api", "port": 80, "target_port": "htpp"}],
        "hpas": [{"name": "api", "target": "api", "min": 2, "max": 4, "current": 4, "desired": 4, "cpu_now": 180}],
        "cronjobs": [{"name": "reset-config", "schedule": "*/5 * * * *", "command": ["kubectl", "apply", "-f", "/c"]}],
        "volumes": [{"name": "data-api-0", "capacity": "20Gi"}],
        "quotas": [{"name": "compute", "hard": {"pods": "10"}, "used": {"pods": "10"}}],
        "secrets": [{"name": "db-credentials", "keys": ["password"], "changed": "12m", "manager": "vault-agent"}],
    }
    cluster = build_cluster(spec, "ns")
    objects = {(r, o["metadata"]["name"]): o for r, o in cluster.objects}
    node = objects[("v1/nodes", "node-b")]
    assert {c["type"]: c["status"] for c in node["status"]["conditions"]} == {
        "Ready": "False", "MemoryPressure": "False", "DiskPressure": "True", "PIDPressure": "False",
        "NetworkUnavailable": "False"}
    assert objects[("v1/endpoints", "api")]["subsets"][0]["ports"] == [{"port": 8080, "protocol": "TCP"}]
    assert len(objects[("v1/endpoints", "api")]["subsets"][0]["addresses"]) == 2
    assert objects[("v1/endpoints", "api-typo")]["subsets"] == []  # a port name no container declares
    secret = objects[("v1/secrets", "db-credentials")]
    assert secret["metadata"]["managedFields"][0]["manager"] == "vault-agent"
    with KubeLab() as lab:
        lab.load(cluster)
        config = lab.write_kubeconfig(tmp_path / "kubeconfig", "ns")

        def kubectl(*args: str) -> str:
            done = subprocess.run(["kubectl", "--kubeconfig", str(config), *args], capture_output=True, text=True,
                                  timeout=30)
            assert done.returncode == 0, done.stderr
            return done.stdout
        assert "Deployment/api" in kubectl("get", "hpa") and "cpu: 180%/70%" in kubectl("get", "hpa")
        assert "80/TCP" in kubectl("get", "svc", "api")
        assert "*/5 * * * *" in kubectl("get", "cronjobs")
        assert "20Gi" in kubectl("get", "pvc")
        assert "NotReady" in kubectl("get", "nodes")
        assert kubectl("get", "quota", "compute", "-o", "jsonpath={.status.used.pods}/{.spec.hard.pods}") == "10/10"
