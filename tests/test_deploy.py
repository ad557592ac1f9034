"""irkit in a cluster (deploy/): the manifests, the service account over HTTPS, and least privilege.

The Kubernetes API emulator serves TLS with a certificate for 127.0.0.1, accepts only the service account's
token, and records every request. A drill runs the way a Job runs it (in-cluster: KUBERNETES_SERVICE_HOST/PORT,
the projected token and CA files), and each request it made is checked against the Roles in deploy/: phases 1, 2,
4 and 5 by the read-only Role alone, phase 3's writes by the mitigation Role. A request no rule allows fails the
test, and so does a verb a Role grants that no request used.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from irkit import actions, drill, runner, serve
from irkit import config as irconfig
from irkit.actions import Confirmation, Systems
from irkit.errors import KubernetesUnavailable, RunError
from irkit.lab.kube import KubeLab, build_cluster
from irkit.rules.plan import Mitigation
from irkit.sources import k8s
from tests.actions.test_kube import CASES
from tests.conftest import CLUSTER, NAMESPACE
from tests.support import rbac

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
TOKEN = "projected-token-of-irkit"  # what the kubelet would put in the run pod's token file
KUBECTL = shutil.which("kubectl") or "kubectl"  # scripts/install.sh installs it when the machine has none


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def tls_lab(ca: trustme.CA) -> KubeLab:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    lab = KubeLab(tls=context)
    lab.emulator.tokens.add(TOKEN)
    return lab


@pytest.fixture()
def in_cluster(ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[KubeLab, Path]]:
    """An emulator over TLS, and this process (and the kernels it starts) set up as a pod of the irkit Job."""
    with tls_lab(ca) as lab:
        lab.load(build_cluster(CLUSTER, NAMESPACE))
        mount = tmp_path / "serviceaccount"
        for name, value in lab.write_service_account(mount, TOKEN, ca.cert_pem.bytes()).items():
            monkeypatch.setenv(name, value)
        yield lab, mount


def resources(directory: Path) -> list[dict[str, Any]]:
    return rbac.kustomize(directory)


def by_kind(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


# --------------------------------------------------------------------------- the manifests


def test_kubectl_renders_the_manifests_the_test_reads():
    for directory in (DEPLOY, DEPLOY / "mitigations"):
        rendered = subprocess.run([KUBECTL, "kustomize", str(directory)], capture_output=True, text=True, timeout=60,
                                  check=True).stdout
        objects = {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"])
                   for d in yaml.safe_load_all(rendered) if d}
        read = {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]) for d in resources(directory)}
        generated = {("ConfigMap", "irkit", "irkit-job-template")} if directory == DEPLOY else set()
        assert objects == read | generated


def test_the_pods_run_non_root_on_a_read_only_root_with_an_expiring_token():
    docs = resources(DEPLOY)
    template = yaml.safe_load((DEPLOY / "job-template.yaml").read_text())
    for name, pod in (("serve", by_kind(docs, "Deployment", "irkit-serve")["spec"]["template"]["spec"]),
                      ("job", template["spec"]["template"]["spec"])):
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0, name
        assert pod["automountServiceAccountToken"] is False, name  # the projected token below instead
        sources = next(v["projected"]["sources"] for v in pod["volumes"] if v["name"] == "service-account")
        assert any(s.get("serviceAccountToken", {}).get("expirationSeconds") for s in sources), name
        [container] = pod["containers"]
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False, name
        assert context["capabilities"]["drop"] == ["ALL"], name
        assert {"/tmp"} <= {m["mountPath"] for m in container["volumeMounts"]}, name  # where it writes
    assert template["spec"]["template"]["spec"]["serviceAccountName"] == "irkit"
    serve = by_kind(docs, "Deployment", "irkit-serve")["spec"]["template"]["spec"]
    assert serve["serviceAccountName"] == "irkit-serve"
    token_file = next(e["value"] for e in serve["containers"][0]["env"] if e["name"] == "IRKIT_SERVE_TOKEN_FILE")
    assert any(token_file.startswith(m["mountPath"]) for m in serve["containers"][0]["volumeMounts"]
               if m["name"] == "token")
    dockerfile = (DEPLOY / "Dockerfile").read_text().splitlines()
    user = next(line.split()[1] for line in dockerfile if line.startswith("USER "))
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) > 0  # numeric: runAsNonRoot can check it


def test_the_runs_configuration_loads_and_asks_for_no_secret(tmp_path: Path):
    text = by_kind(resources(DEPLOY), "ConfigMap", "irkit-config")["data"]["irkit.toml"]
    (tmp_path / "irkit.toml").write_text(text)
    cfg = irconfig.load(tmp_path / "irkit.toml", env={})
    assert cfg.kubeconfig == "in-cluster" and cfg.secret_changes is False
    read = [g for g in rbac.grants(resources(DEPLOY), "irkit", "irkit") if g.role == "Role irkit-read"]
    assert read and all(g.namespace == cfg.namespace for g in read)  # the Role is where irkit looks


# --------------------------------------------------------------------------- in-cluster over HTTPS


def test_in_a_pod_irkit_reads_the_cluster_over_https_with_the_service_account(in_cluster, ca, tmp_path):
    lab, mount = in_cluster
    cfg = irconfig.load(env={}, namespace=NAMESPACE, kube_token_file=str(mount / "token"),
                        kube_ca_file=str(mount / "ca.crt"))  # no kubeconfig: KUBERNETES_SERVICE_HOST says in-cluster
    kube = k8s.connect(cfg)
    assert kube.source.startswith("Kubernetes API at https://127.0.0.1:")
    assert len(k8s.pods(kube)) == 7
    seen = [rbac.attributes(r) for r in lab.requests]
    assert seen and all(a is None or a.token == TOKEN for a in seen)
    # The kubelet rotated the token: the next client (each phase makes its own) reads the new file.
    (mount / "token").write_text("rotated-token")
    lab.emulator.tokens = {"rotated-token"}
    assert len(k8s.pods(k8s.connect(cfg))) == 7
    # A certificate from another CA is refused, and the message says what to check.
    other = tmp_path / "other-ca.crt"
    other.write_bytes(trustme.CA().cert_pem.bytes())
    with pytest.raises(KubernetesUnavailable, match="certificate-authority"):
        k8s.pods(k8s.connect(irconfig.load(base=cfg, env={}, kube_ca_file=str(other))))
    with pytest.raises(KubernetesUnavailable, match="IRKIT_KUBE_TOKEN_FILE"):
        k8s.connect(irconfig.load(base=cfg, env={}, kube_token_file=str(tmp_path / "missing")))


# --------------------------------------------------------------------------- least privilege


def _in_cluster_config(env: drill.DrillEnvironment, mount: Path) -> Path:
    """The drill's irkit.toml as the Job's: in-cluster, with deploy/'s choices (no Secrets listed)."""
    values = {key: value for section in tomllib.loads(env.config_path.read_text()).values() for key, value in
              section.items()}
    values.update(kubeconfig="in-cluster", kube_token_file=str(mount / "token"), kube_ca_file=str(mount / "ca.crt"),
                  secret_changes=False)
    path = env.config_path.with_name("in-cluster.toml")
    path.write_text(irconfig.to_toml(values))
    return path


def _check(requests: list[Any], grants: list[rbac.Grant], what: str) -> set[tuple[str, str, str]]:
    """Every request allowed by ``grants``; the (group, resource, verb) of the rules that allowed them."""
    used, refused = set(), []
    for request in requests:
        a = rbac.attributes(request)
        if a is None:
            continue
        grant = rbac.allowing(grants, a)
        if grant is None:
            refused.append(str(a))
        else:
            used |= {p for p in grant.pairs() if p[1] == a.resource and p[2] == a.verb}
    assert not refused, f"{what}: no rule allows {sorted(set(refused))}"
    return used


def _writes(request: Any) -> bool:
    a = rbac.attributes(request)
    return a is not None and a.verb not in ("get", "list", "watch")


# Every Kubernetes action phase 3 can apply, as the action tests apply them; the rollback comes first (the backend's
# current revision crashes: nothing else on it becomes available before it).
KUBE_ACTIONS = CASES
assert KUBE_ACTIONS[0][0] == "rollout-undo"


def test_every_request_of_a_drill_is_allowed_by_the_roles_and_every_granted_verb_is_used(ca, tmp_path, monkeypatch):
    docs = resources(DEPLOY)
    read = rbac.grants(docs, "irkit", "irkit")
    mitigate = [g for g in rbac.grants(resources(DEPLOY / "mitigations"), "irkit", "irkit")]
    assert {g.role for g in read} == {"Role irkit-read"} and {g.role for g in mitigate} == {"Role irkit-mitigate"}
    scenario = drill.load_scenario("crashloop-after-deploy")
    lab = tls_lab(ca)
    with drill.DrillEnvironment(scenario, kube=lab) as env:
        mount = tmp_path / "serviceaccount"
        for name, value in lab.write_service_account(mount, TOKEN, ca.cert_pem.bytes()).items():
            monkeypatch.setenv(name, value)
        config = str(_in_cluster_config(env, mount))
        marks = {}
        # One run each, to tell which phase asked what; phase 3 plans from phase 2 of its own run.
        for phases in ([1], [2, 3], [4, 5]):
            start = len(lab.requests)
            result = runner.run("INC-RBAC", phases, config_path=config, outputs=tmp_path / "outputs",
                                params=dict(scenario.parameters))
            assert all(p.status == "ok" for p in result.summary.phases), result.summary.phases
            marks[tuple(phases)] = lab.requests[start:]
        assert all(rbac.attributes(r) is None or rbac.attributes(r).token == TOKEN for r in lab.requests)
        reading = [r for key in ((1,), (4, 5)) for r in marks[key]]
        used = _check(reading, read, "phases 1, 4, 5 with the read-only Role")
        # Phases 2 and 3 read; phase 3's server-side dry runs are writes to the API server's authorizer.
        planning = marks[(2, 3)]
        dry = [r for r in planning if _writes(r)]
        assert dry and all(r.params.get("dryRun") == "All" for r in dry)  # phase 3 changed nothing
        used |= _check([r for r in planning if not _writes(r)], read, "phases 2 and 3's reads with the read-only Role")
        written = _check(dry, mitigate, "phase 3's dry runs with the mitigation Role")

    # Phase 3 applied: every action, confirmed, and its undo, as the same service account.
    with tls_lab(ca) as lab:
        lab.load(build_cluster(CLUSTER, NAMESPACE))
        for name, value in lab.write_service_account(mount, TOKEN, ca.cert_pem.bytes()).items():
            monkeypatch.setenv(name, value)
        cfg = irconfig.load(env={}, namespace=NAMESPACE, kubeconfig="in-cluster", action_timeout=3.0,
                            kube_token_file=str(mount / "token"), kube_ca_file=str(mount / "ca.crt"))
        systems = Systems(cfg)
        try:
            applied_steps = []
            for action, target, params in KUBE_ACTIONS:
                m = Mitigation(action, target, "test", "kubectl ...", "test", params={"namespace": NAMESPACE, **params})
                [step] = actions.prepare([m], systems, "INC-RBAC")
                assert not step.refused, step.refused
                confirmation = Confirmation.parse(f"INC-RBAC:{step.id}", by="test")
                outcome = actions.execute(step, systems, incident="INC-RBAC", enabled=True, confirmation=confirmation)
                assert outcome.status == "applied", (action, outcome.detail)
                applied_steps.append((step, confirmation))
            for step, confirmation in reversed(applied_steps):  # undone newest first, as a responder backs out
                if step.undo_command:
                    undone = actions.revert(step, systems, incident="INC-RBAC", enabled=True,
                                            confirmation=confirmation)
                    # The rollback's undo brings the crashing revision back: sent, and it never becomes available.
                    assert undone.status == ("undo-failed" if step.action == "rollout-undo" else "undone"), \
                        (step.action, undone.detail)
        finally:
            systems.close()
        applied = lab.requests
    used |= _check([r for r in applied if not _writes(r)], read, "phase 3's applied actions' reads")
    written |= _check([r for r in applied if _writes(r)], mitigate, "phase 3's applied actions with the mitigation Role")

    unused = sorted(set().union(*(g.pairs() for g in read)) - used)
    assert not unused, f"the read-only Role grants what no request used: {unused}"
    unused = sorted(set().union(*(g.pairs() for g in mitigate)) - written)
    assert not unused, f"the mitigation Role grants what no request used: {unused}"


# --------------------------------------------------------------------------- irkit serve starting Jobs


def _jobs(lab: KubeLab) -> list[dict[str, Any]]:
    return sorted((o.raw for k, o in list(lab.emulator.objects.items()) if k[0].plural == "jobs" and not o.deleted),
                  key=lambda j: j["metadata"]["resourceVersion"] if "resourceVersion" in j["metadata"] else "")


def _finish(lab: KubeLab, job: dict[str, Any], condition: str) -> None:
    """What the Job controller writes when the run's pod ends (the emulator runs no pods for Jobs)."""
    status = {"succeeded": 1} if condition == "Complete" else {"failed": 1}
    status["conditions"] = [{"type": condition, "status": "True", "reason": "BackoffLimitExceeded"
                             if condition == "Failed" else "Completed", "message": "the run's pod exited 1"
                             if condition == "Failed" else ""}]
    key = next(k for k, o in lab.emulator.objects.items() if k[0].plural == "jobs"
               and k[2] == job["metadata"]["name"])
    lab.emulator.objects[key] = {**lab.emulator.objects[key].raw, "status": status}


def test_serve_starts_each_run_as_a_job_from_the_template_and_follows_it_with_its_own_role_only(
        ca, tmp_path, monkeypatch):
    from tests.serve.conftest import _group, _post, _wait
    lab = tls_lab(ca)
    lab.emulator.tokens = {"serve-token"}
    with lab:
        mount = tmp_path / "serviceaccount"
        for name, value in lab.write_service_account(mount, "serve-token", ca.cert_pem.bytes()).items():
            monkeypatch.setenv(name, value)
        cfg = irconfig.load(env={}, kube_token_file=str(mount / "token"), kube_ca_file=str(mount / "ca.crt"))
        launcher = serve.JobLauncher(cfg, DEPLOY / "job-template.yaml", outputs="s3://irkit-evidence/runs", poll=0.1)
        server = serve.Serve(token="t0ken", state_dir=tmp_path / "state", listen=("127.0.0.1", 0),
                             start_run=launcher, outputs="s3://irkit-evidence/runs").start()
        try:
            code, answer = _post(server.url, _group(irkit_parameters="window_minutes=30"), token="t0ken")
            assert code == 202
            [job] = _wait(lambda: _jobs(lab), 10, "the firing group's Job")
            template = yaml.safe_load((DEPLOY / "job-template.yaml").read_text())
            pod = job["spec"]["template"]["spec"]
            assert job["metadata"]["namespace"] == "irkit" and job["metadata"]["name"].startswith("irkit-alert-")
            assert job["metadata"]["labels"]["irkit.dev/incident"] == answer["incident"].lower()
            assert pod["serviceAccountName"] == "irkit" and pod["securityContext"] == \
                template["spec"]["template"]["spec"]["securityContext"]  # the template's, untouched
            args = pod["containers"][0]["args"]
            context = json.loads(args[args.index("--context") + 1])
            assert args[:8] == ["run", "--incident", answer["incident"], "--phases", "1,2", "--outputs",
                                "s3://irkit-evidence/runs", "--context"]
            assert args[9:] == ["-p", "window_minutes", "30"] and context["alert"]["name"] == "HighErrorRatio"
            # The resolution waits for the group's firing run: no second Job while the first runs.
            assert _post(server.url, _group("resolved"), token="t0ken")[0] == 202
            time.sleep(0.5)
            assert len(_jobs(lab)) == 1
            _finish(lab, job, "Complete")
            second = _wait(lambda: [j for j in _jobs(lab) if j["metadata"]["name"] != job["metadata"]["name"]], 10,
                           "the resolved group's Job")[0]
            assert second["spec"]["template"]["spec"]["containers"][0]["args"][4] == "4,5"  # recovered? then the resolution
            first = _wait(lambda: [j for j in server.queue.jobs if j.state == "done"], 5, "the first job done")[0]
            assert first.run_dir == f"job irkit/{job['metadata']['name']}"
            _finish(lab, second, "Failed")
            failed = _wait(lambda: [j for j in server.queue.jobs if j.state == "failed"], 5, "the second job failed")[0]
            assert "BackoffLimitExceeded" in failed.error
            assert f"kubectl -n irkit logs job/{second['metadata']['name']}" in failed.error
        finally:
            server.stop()
        # A restarted serve follows the Job it created for a job instead of creating a second one.
        again = serve.JobLauncher(cfg, DEPLOY / "job-template.yaml", outputs="s3://irkit-evidence/runs", poll=0.1)
        context = {"serve_job": failed.id}
        with pytest.raises(RunError, match="BackoffLimitExceeded"):
            again(failed.incident, [4], context=context)
        assert len(_jobs(lab)) == 2
        # serve's queue is lost (a new pod, an emptyDir) while a firing Job runs: the group fires again and the new
        # serve follows the Job the cluster still runs instead of starting a second run.
        first_pod = serve.Serve(token="t0ken", state_dir=tmp_path / "state-a", listen=("127.0.0.1", 0),
                                start_run=launcher, outputs="s3://irkit-evidence/runs").start()
        launcher._closed.clear()  # the same launcher object served the stopped serve above
        try:
            assert _post(first_pod.url, _group(), token="t0ken")[0] == 202
            running = _wait(lambda: _jobs(lab)[2:], 10, "a third Job")[0]
        finally:
            first_pod.stop()
        new_pod = serve.Serve(token="t0ken", state_dir=tmp_path / "state-b", listen=("127.0.0.1", 0),
                              start_run=serve.JobLauncher(cfg, DEPLOY / "job-template.yaml",
                                                          outputs="s3://irkit-evidence/runs", poll=0.1),
                              outputs="s3://irkit-evidence/runs").start()
        try:
            assert _post(new_pod.url, _group(), token="t0ken")[0] == 202
            time.sleep(0.5)
            assert len(_jobs(lab)) == 3  # no second firing run
            _finish(lab, running, "Complete")
            adopted = _wait(lambda: [j for j in new_pod.queue.jobs if j.state == "done"], 5, "the adopted run")[0]
            assert adopted.run_dir == f"job irkit/{running['metadata']['name']}"
        finally:
            new_pod.stop()
        requests = lab.requests
    grants = rbac.grants(resources(DEPLOY), "irkit-serve", "irkit")
    assert _check(requests, grants, "irkit serve with its Role") == set().union(*(g.pairs() for g in grants))
    assert not rbac.grants(resources(DEPLOY), "irkit-serve", "irkit-other")  # bound to that account only


def test_an_alert_becomes_a_job_that_runs_in_the_cluster_and_leaves_its_evidence_in_the_bucket(
        ca, tmp_path, monkeypatch):
    """Everything in deploy/ at once: serve (its own account) makes the Job from the template, a kubelet stand-in
    runs the Job's container (irkit run in-cluster over TLS with the runs' account), the evidence lands in S3,
    the Job completes and serve's job is done; every request checked against the Role of the account that made it."""
    import s3fs

    from irkit.lab.kube import JobProcess
    from tests.evidence.test_manifest import IRKIT
    from tests.serve.conftest import _group, _post, _wait
    from tests.support.s3 import S3Lab
    lab = tls_lab(ca)
    lab.emulator.tokens.add("serve-token")
    with S3Lab() as s3, drill.DrillEnvironment(drill.load_scenario("lock-contention"), kube=lab) as env:
        fs = s3fs.S3FileSystem(endpoint_url=s3.url, key="k", secret="s", skip_instance_cache=True)
        fs.mkdir("evidence")
        pod_env = lab.write_service_account(tmp_path / "run-sa", TOKEN, ca.cert_pem.bytes())
        lab.write_service_account(tmp_path / "serve-sa", "serve-token", ca.cert_pem.bytes())
        for name, value in pod_env.items():
            monkeypatch.setenv(name, value)
        lab.emulator.run_job = JobProcess([IRKIT], {**pod_env, **s3.environment(), "AWS_EC2_METADATA_DISABLED": "true",
                                                    "IRKIT_CONFIG": str(_in_cluster_config(env, tmp_path / "run-sa"))})
        serve_cfg = irconfig.load(env={}, kube_token_file=str(tmp_path / "serve-sa" / "token"),
                                  kube_ca_file=str(tmp_path / "serve-sa" / "ca.crt"))
        launcher = serve.JobLauncher(serve_cfg, DEPLOY / "job-template.yaml", outputs="s3://evidence/runs", poll=0.2)
        server = serve.Serve(token="t0ken", state_dir=tmp_path / "state", listen=("127.0.0.1", 0),
                             start_run=launcher, outputs="s3://evidence/runs").start()
        try:
            code, answer = _post(server.url, _group(), token="t0ken")
            assert code == 202
            job = _wait(lambda: [j for j in server.queue.jobs if j.state in ("done", "failed")], 180, "the Job")[0]
        finally:
            server.stop()
        assert job.state == "done", job.error
        [key] = [k for k in fs.find("evidence/runs") if k.endswith("/run.json")]
        run = json.loads(fs.cat(key))
        assert run["incident"] == answer["incident"] and run["phases"] == [1, 2]
        assert run["alert"]["name"] == "HighErrorRatio" and run["serve_job"] == job.id  # the timeline starts there
        summary = json.loads(fs.cat(key.replace("run.json", "summary.json")))
        assert [p["status"] for p in summary["phases"]] == ["ok", "ok"]
        first = summary["findings"][0]
        assert (first["kind"], first["subject"]) == ("lock-root", f"pid {env.pids['holder']}"), first  # the holder
        verified = subprocess.run([IRKIT, "verify", f"s3://{key.rsplit('/', 1)[0]}"], capture_output=True, text=True,
                                  timeout=120, env={**os.environ, **s3.environment()})
        assert verified.returncode == 0, verified.stdout + verified.stderr
        requests = lab.requests
    by = {token: [r for r in requests if (rbac.attributes(r) or rbac.Attributes("", "", "", "", "", "")).token == token]
          for token in (TOKEN, "serve-token")}
    assert by[TOKEN] and by["serve-token"]
    assert all(not _writes(r) for r in by[TOKEN])  # phases 1-2 read, nothing else
    _check(by[TOKEN], rbac.grants(resources(DEPLOY), "irkit", "irkit"), "the Job's run with irkit-read")
    _check(by["serve-token"], rbac.grants(resources(DEPLOY), "irkit-serve", "irkit"), "serve with irkit-serve")
