"""`irkit serve --job-template`: each run a Job made from the template, its arguments what `irkit run` accepts
(the Job followed in a cluster is tested in tests/test_deploy.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from irkit import config as irconfig
from irkit import runner, serve
from irkit.errors import KubernetesUnavailable, ParameterError
from tests.support.kube import kubeconfig_for

TEMPLATE = Path(__file__).resolve().parent.parent.parent / "deploy" / "job-template.yaml"


@pytest.fixture()
def unreachable(closed_port: str, tmp_path: Path) -> irconfig.Config:
    """A configuration whose cluster does not answer: making a Job's manifest asks the cluster nothing."""
    kubeconfig = kubeconfig_for(closed_port, tmp_path / "kubeconfig", "down")
    return irconfig.load(env={}, kubeconfig=str(kubeconfig), connect_timeout=1.0, request_timeout=1.0)


def test_the_job_is_the_template_with_the_runs_name_labels_and_arguments(unreachable: irconfig.Config):
    launcher = serve.JobLauncher(unreachable, TEMPLATE, outputs="s3://evidence/runs")
    context = {"serve_job": "f00dfeedbeef", "alert": {"name": "HighErrorRatio"}}
    job = launcher.manifest("ALERT-0123abcd", [1, 2], {"window_minutes": "60"}, context)
    assert job["metadata"]["name"] == "irkit-alert-0123abcd-f00dfeed"
    assert job["metadata"]["namespace"] == "irkit"  # the template's namespace
    labels = {"irkit.dev/incident": "alert-0123abcd", "irkit.dev/serve-job": "f00dfeedbeef",
              "irkit.dev/phases": "1.2"}
    assert labels.items() <= job["metadata"]["labels"].items()
    assert labels.items() <= job["spec"]["template"]["metadata"]["labels"].items()
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:7] == ["run", "--incident", "ALERT-0123abcd", "--phases", "1,2", "--outputs", "s3://evidence/runs"]
    assert args[9:] == ["-p", "window_minutes", "60"]
    assert args[7] == "--context" and runner.parse_context(args[8]) == context  # what irkit run accepts
    # The same job is the same Job (a restarted serve follows the one it created); the template stays as it was.
    assert launcher.manifest("ALERT-0123abcd", [1, 2], {"window_minutes": "60"}, context) == job
    assert launcher.template["spec"]["template"]["spec"]["containers"][0]["args"] == []


@pytest.mark.parametrize(("template", "message"), [
    (None, "cannot be read"),
    ("kind: Job\nspec: [unclosed", "is not YAML"),
    ("kind: Deployment\nspec:\n  template:\n    spec:\n      containers: [{name: a}]\n", "is not a batch/v1 Job"),
    ("kind: Job\nspec:\n  template:\n    spec:\n      containers: [{name: a}, {name: b}]\n", "with one container"),
])
def test_a_template_that_is_not_a_one_container_job_is_refused_naming_the_file(
        unreachable: irconfig.Config, tmp_path: Path, template: str | None, message: str):
    path = tmp_path / "job.yaml"
    if template is not None:
        path.write_text(template)
    with pytest.raises(ParameterError, match=message) as caught:
        serve.JobLauncher(unreachable, path, outputs="s3://evidence/runs")
    assert str(path)[:80] in str(caught.value)


def test_a_job_keeps_its_evidence_in_object_storage_never_in_its_pod(unreachable: irconfig.Config):
    with pytest.raises(ParameterError, match="s3://BUCKET/PREFIX"):
        serve.JobLauncher(unreachable, TEMPLATE, outputs="outputs")


def test_a_cluster_that_does_not_answer_fails_the_run_at_once_saying_where(unreachable: irconfig.Config,
                                                                          closed_port: str):
    launcher = serve.JobLauncher(unreachable, TEMPLATE, outputs="s3://evidence/runs", poll=0.1)
    with pytest.raises(KubernetesUnavailable, match=f"Kubernetes API at http://{closed_port}"):
        launcher("ALERT-0123abcd", [1, 2], context={"serve_job": "f00dfeedbeef"})
