"""Kubernetes reads through the official client against the kmock-based emulator over HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from irkit.config import Config
from irkit.display.views import html_of
from irkit.errors import KubernetesError, KubernetesTimeout, KubernetesUnavailable
from irkit.lab.kube import KubeLab, build_cluster, match_fields, match_labels
from irkit.sources import k8s


@pytest.fixture(scope="module")
def kube(cfg: Config) -> Iterator[k8s.Kube]:
    client = k8s.connect(cfg)
    yield client
    client.close()


def test_crashlooping_pods_are_unhealthy_with_their_reason(kube: k8s.Kube):
    bad = k8s.unhealthy_pods(kube)
    backend = bad[bad.app == "backend"]
    assert len(backend) == 3
    assert set(backend.waiting_reason) == {"CrashLoopBackOff"}
    assert set(backend.restarts) == {7}
    assert set(backend.ready) == {"0/1"}
    assert backend.age_seconds.min() > 0


def test_oomkilled_pod_shows_its_last_termination(kube: k8s.Kube):
    bad = k8s.unhealthy_pods(kube)
    front = bad[bad.app == "frontend"].iloc[0]
    assert front.last_termination_reason == "OOMKilled"
    assert front.last_exit_code == 137
    assert front.last_terminated_at is not None
    # Healthy pods stay out of the unhealthy list.
    assert "postgres-primary-0" not in set(bad.pod)
    assert "postgres-primary-0" in set(k8s.pods(kube).pod)


def test_label_selector_is_honoured(kube: k8s.Kube):
    only = k8s.pods(kube, selector="app=frontend")
    assert set(only.app) == {"frontend"} and len(only) == 2
    assert set(k8s.pods(kube, selector="app in (redis-master, postgres-primary)").app) == {
        "redis-master", "postgres-primary"}


def test_previous_logs_of_a_crashlooping_container(kube: k8s.Kube, cfg: Config):
    previous = k8s.logs(kube, cfg.backend_deployment, previous=True)
    assert len(previous) == 3
    assert all("panic: assignment to entry in nil map" in text for text in previous.text)
    current = k8s.logs(kube, cfg.backend_deployment, tail=1)
    assert all(text.strip().endswith("backend starting") for text in current.text)


def test_previous_logs_of_a_pod_that_never_restarted_is_a_note_not_a_failure(kube: k8s.Kube):
    frame = k8s.logs(kube, "frontend-deployment", previous=True)
    notes = [t for t in frame.text if t.startswith("(no previous logs")]
    assert len(notes) == 1 and len(frame) == 2


def test_events_newest_first_with_warnings(kube: k8s.Kube):
    frame = k8s.events(kube)
    assert frame.last_seen.is_monotonic_decreasing
    warnings = k8s.events(kube, warnings_only=True)
    assert set(warnings.type) == {"Warning"}
    assert {"BackOff", "OOMKilling"} <= set(warnings.reason)
    assert any(obj.startswith("Pod/backend-deployment-") for obj in warnings.object)


def test_top_pods_and_nodes(kube: k8s.Kube):
    top = k8s.top_pods(kube)
    assert top.available
    assert {"cpu_millicores", "memory_mib"} <= set(top.frame.columns)
    assert (top.frame.memory_mib > 0).all()
    nodes = k8s.top_nodes(kube)
    assert nodes.available and len(nodes.frame) == 2


def test_missing_metrics_api_is_said_plainly(tmp_path: Path, cfg: Config):
    with KubeLab() as lab:
        lab.load(build_cluster({"metrics_api": False, "workloads": []}, cfg.namespace))
        client = k8s.connect(cfg.replace(kubeconfig=str(lab.write_kubeconfig(tmp_path / "kc", cfg.namespace))))
        top = k8s.top_pods(client)
        assert not top.available
        assert "metrics-server" in top.note
        assert "metrics unavailable" in html_of(top)


def test_rollout_history_lists_revisions_with_images(kube: k8s.Kube, cfg: Config):
    history = k8s.rollout_history(kube, cfg.backend_deployment)
    assert list(history.revision) == [1, 2]
    assert list(history.images) == ["marketplace/backend:1.41.0", "marketplace/backend:1.42.0"]
    assert list(history.current) == [False, True]
    assert history.created.iloc[1] > history.created.iloc[0]
    assert history.change_cause.iloc[1] == "release 1.42.0"


def test_deployments_and_statefulsets(kube: k8s.Kube):
    frame = k8s.deployments(kube).set_index("name")
    assert frame.loc["backend-deployment", "ready"] == 0
    assert frame.loc["postgres-primary", "kind"] == "StatefulSet"


def test_unknown_deployment_names_the_config_key(kube: k8s.Kube):
    with pytest.raises(KubernetesError, match="IRKIT_NAMESPACE"):
        k8s.logs(kube, "no-such-deployment")


def test_api_down_is_unavailable(cfg: Config, closed_port: str, tmp_path: Path):
    kc = KubeLab(url=f"http://{closed_port}").write_kubeconfig(tmp_path / "kc", cfg.namespace)
    client = k8s.connect(cfg.replace(kubeconfig=str(kc)))
    with pytest.raises(KubernetesUnavailable):
        k8s.pods(client)


def test_api_hung_times_out_within_the_bound(cfg: Config, black_hole: str, tmp_path: Path):
    kc = KubeLab(url=f"http://{black_hole}").write_kubeconfig(tmp_path / "kc", cfg.namespace)
    client = k8s.connect(cfg.replace(kubeconfig=str(kc), request_timeout=1.0))
    started = time.monotonic()
    with pytest.raises(KubernetesTimeout):
        k8s.pods(client)
    assert time.monotonic() - started < 3


def test_missing_kubeconfig_names_the_fix(cfg: Config, tmp_path: Path):
    with pytest.raises(KubernetesUnavailable, match="IRKIT_KUBECONFIG"):
        k8s.connect(cfg.replace(kubeconfig=str(tmp_path / "absent")))


def test_scale_subresource_answers_a_scale(kube: k8s.Kube, cfg: Config):
    scale = kube.apps.read_namespaced_deployment_scale(cfg.frontend_deployment, cfg.namespace)
    assert scale.kind == "Scale" and scale.spec.replicas == 2


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ("app=a", {"app": "a"}, True), ("app=a", {"app": "b"}, False), ("app!=a", {}, True),
    ("app in (a, b),tier", {"app": "b", "tier": "x"}, True), ("app notin (a)", {"app": "a"}, False),
    ("!canary", {"canary": "1"}, False), ("", {"x": "y"}, True),
])
def test_label_selector_grammar(selector: str, labels: dict[str, str], expected: bool):
    assert match_labels(selector, labels) is expected


def test_field_selector_grammar():
    pod = {"metadata": {"name": "p"}, "status": {"phase": "Running"}}
    assert match_fields("status.phase=Running,metadata.name!=q", pod)
    assert not match_fields("status.phase!=Running", pod)


def test_config_changes_read_secrets_as_metadata_only(kube: k8s.Kube, kube_lab):
    frame = k8s.config_changes(kube)
    assert {("ConfigMap", "backend-config"), ("Secret", "backend-secrets")} <= set(zip(frame.kind, frame.name))
    assert frame["changed_at"].is_monotonic_decreasing and (frame["manager"] == "kubectl-client-side-apply").all()
    secret_lists = [r for r in kube_lab.emulator._requests if "/secrets" in str(r.url)]
    assert secret_lists and all("as=PartialObjectMetadataList" in r.headers.get("Accept", "") for r in secret_lists)
    assert "ZHJpbGwtb25seQ==" not in frame.to_json()  # the seeded secret value never reached irkit


def test_what_pods_write_is_kept_bounded_and_without_its_secrets(cfg: Config, tmp_path: Path):
    """A pod decides what its logs, its probe events and its deploy's change cause say: a 40 MB line, a bearer
    token, an AWS key. irkit keeps a bounded, redacted copy."""
    huge = "x" * (40 << 20)
    cluster = {"workloads": [{
        "name": "backend-deployment", "container": "backend", "replicas": 1,
        "revisions": [{"image": "b:1", "age": "2d"},
                      {"image": "b:2", "age": "1d", "change_cause": "deploy token=hunter2-cause"}],
        "pods": [{"count": 1, "state": "running",
                  "logs": f"INFO ok AKIAHUNTER2EXAMPLE01 Authorization: Bearer hunter2hunter2hunter2\n"
                          f"{'y' * 5000}\nINFO next\n{huge}\nINFO after the flood\n"}]}],
        "events": [{"kind": "Pod", "name": "backend-deployment-abc", "type": "Warning", "reason": "Unhealthy",
                    "message": "Readiness probe failed: Authorization: Bearer hunter2hunter2hunter2 says 401"}]}
    with KubeLab() as lab:
        lab.load(build_cluster(cluster, cfg.namespace))
        client = k8s.connect(cfg.replace(kubeconfig=str(lab.write_kubeconfig(tmp_path / "kc", cfg.namespace))))
        logs = k8s.logs(client, "backend-deployment", tail=5)
        events = k8s.events(client, warnings_only=True)
        history = k8s.rollout_history(client, "backend-deployment")
    text = logs["text"].iloc[0]
    assert "hunter2" not in text and "[redacted: aws key]" in text and "[redacted: token]" in text
    assert len(text.encode()) <= k8s.MAX_LOG_BYTES  # the API cut it (limitBytes); the cut line is left out
    assert f"{'y' * k8s.MAX_LOG_LINE} [3000 characters cut]" in text
    assert "hunter2" not in events["message"].iloc[0] and "[redacted: token]" in events["message"].iloc[0]
    assert history["change_cause"].tolist()[-1] == "deploy token=[redacted: secret]"


def test_why_a_container_waits_or_ended_and_who_wrote_a_template_are_read_bounded_and_redacted(
        cfg: Config, tmp_path: Path):
    """The runtime's and the kubelet's messages explain a pod that cannot run; the CronJobs and the template's
    writer (managedFields) explain a change that keeps coming back. Text from the cluster: cut and redacted."""
    cluster = {"workloads": [{
        "name": "backend-deployment", "container": "backend", "replicas": 2, "written_by": "pin-release",
        "revisions": [{"image": "b:1", "age": "2d"}, {"image": "b:2", "age": "9m"}],
        "pods": [{"count": 1, "state": "crashloop", "reason": "StartError", "exit_code": 128,
                  "message": 'exec: "wge": executable file not found in $PATH token=hunter2 ' + "z" * 5000},
                 {"count": 1, "state": "imagepull", "waiting_reason": "ErrImagePull",
                  "waiting_message": "pull access denied, repository does not exist or may require authorization"}]}],
        "cronjobs": [{"name": "pin-release", "schedule": "*/10 * * * *", "last_schedule": "9m",
                      "command": ["kubectl", "set", "image", "deployment/backend-deployment", "backend=b:2",
                                  "--token=hunter2hunter2"]}]}
    with KubeLab() as lab:
        lab.load(build_cluster(cluster, cfg.namespace))
        client = k8s.connect(cfg.replace(kubeconfig=str(lab.write_kubeconfig(tmp_path / "kc", cfg.namespace))))
        pods = k8s.pods(client)
        workloads = k8s.deployments(client)
        jobs = k8s.cronjobs(client)
    ended = pods["last_termination_message"].dropna().iloc[0]
    assert ended.startswith('exec: "wge": executable file not found in $PATH') and "hunter2" not in ended
    assert len(ended) < 600  # cut at 500 characters, then redacted (a marker may add a few)
    assert pods["waiting_message"].dropna().str.contains("pull access denied").any()
    [writer] = workloads[workloads["name"] == "backend-deployment"]["template_writer"].tolist()
    assert writer == "pin-release"
    [job] = jobs.to_dict("records")
    assert job["name"] == "pin-release" and not job["suspend"] and "deployment/backend-deployment" in job["command"]
    assert "hunter2" not in job["command"]


def test_a_service_whose_target_port_names_no_declared_port_lists_no_ready_address(cfg: Config, tmp_path: Path):
    cluster = {"workloads": [{"name": "profile-api", "container": "api", "app": "profile-api", "replicas": 2,
                              "ports": [{"name": "web", "port": 8080}]}],
               "services": [{"name": "profile-api", "app": "profile-api", "port": 80, "target_port": "http"},
                            {"name": "profile-api-web", "app": "profile-api", "port": 80, "target_port": "web"}]}
    with KubeLab() as lab:
        lab.load(build_cluster(cluster, cfg.namespace))
        client = k8s.connect(cfg.replace(kubeconfig=str(lab.write_kubeconfig(tmp_path / "kc", cfg.namespace))))
        found = {r["name"]: r for r in k8s.services(client).to_dict("records")}
    assert found["profile-api"]["ready"] == 0 and found["profile-api"]["target_port"] == "http"
    assert found["profile-api-web"]["ready"] == 2 and found["profile-api"]["selector"] == "app=profile-api"
