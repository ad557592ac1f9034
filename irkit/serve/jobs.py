"""``irkit serve --job-template``: each run a Kubernetes Job made from a template, followed to its end."""

from __future__ import annotations

import copy
import json
import re
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from irkit.errors import KubernetesError, ParameterError, RunError

__all__ = ["JobLauncher", "Launched"]


@dataclass(frozen=True)
class Launched:
    """What a Job run leaves for the queue: where it ran (``job <namespace>/<name>``), in place of a run dir."""

    run_dir: str


class JobLauncher:
    """``start_run`` for :class:`Serve` that runs each job as a Kubernetes Job made from a template.

    The template (deploy/job-template.yaml) is a ``batch/v1`` Job with one container; irkit fills in the name
    (``irkit-<incident>-<job id>``: the same job is the same Job, so a restarted serve follows the Job it
    created instead of starting a second), labels, and the container's args (``run --incident ... --phases ...
    --outputs ... --context ...``). The Job is created in the template's namespace, else the service account's.
    Then it is read every ``poll`` seconds until it succeeds (the run is done) or fails, within the template's
    ``activeDeadlineSeconds`` and two minutes more.
    """

    def __init__(self, config: Any, template: str | Path, *, outputs: str, poll: float = 2.0) -> None:
        import yaml

        from irkit.sources import k8s
        path = Path(template)
        try:
            spec = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise ParameterError(f"--job-template {str(path)[:80]!r} cannot be read ({exc.strerror}); name the Job "
                                 "template file (deploy/job-template.yaml)") from exc
        except yaml.YAMLError as exc:
            raise ParameterError(f"--job-template {str(path)[:80]!r} is not YAML ({str(exc).splitlines()[0]}); "
                                 "fix the file") from exc
        pod = ((spec.get("spec") or {}).get("template") or {}).get("spec") if isinstance(spec, dict) else None
        if not isinstance(spec, dict) or spec.get("kind") != "Job" or not isinstance(pod, dict) \
                or len(pod.get("containers") or []) != 1:
            raise ParameterError(f"--job-template {str(path)[:80]!r} is not a batch/v1 Job with one container; start "
                                 "from deploy/job-template.yaml")
        if "://" not in outputs:
            raise ParameterError("runs in Jobs keep their evidence in object storage: give irkit serve --outputs "
                                 "s3://BUCKET/PREFIX (a path would be inside each Job's pod, gone with it)")
        self.template, self.outputs, self.poll = spec, outputs, poll
        self.kube = k8s.connect(config)
        account = Path(config.kube_token_file).with_name("namespace")
        self.namespace = str((spec.get("metadata") or {}).get("namespace") or (
            account.read_text().strip() if account.is_file() else config.namespace))
        self.deadline = float((spec.get("spec") or {}).get("activeDeadlineSeconds") or 3600) + 120
        self._closed = threading.Event()

    def close(self) -> None:
        self._closed.set()

    def manifest(self, incident: str, phases: list[int], params: Mapping[str, Any],
                 context: Mapping[str, Any]) -> dict[str, Any]:
        """The Job for one run (pure: the template with the run's name, labels and args)."""
        job = copy.deepcopy(self.template)
        ident = str(context.get("serve_job") or uuid.uuid4().hex[:12])
        stem = re.sub(r"[^a-z0-9-]+", "-", incident.lower())[:40].strip("-")  # a label value ends in an alphanumeric
        meta = job.setdefault("metadata", {})
        meta.pop("generateName", None)
        meta.update(name=f"irkit-{stem}-{ident[:8]}", namespace=self.namespace)
        labels = {"app.kubernetes.io/name": "irkit", "irkit.dev/incident": stem, "irkit.dev/serve-job": ident,
                  "irkit.dev/phases": ".".join(str(p) for p in phases)}
        meta["labels"] = {**(meta.get("labels") or {}), **labels}
        pod = job["spec"]["template"]
        pod.setdefault("metadata", {})["labels"] = {**(pod["metadata"].get("labels") or {}), **labels}
        args = ["run", "--incident", incident, "--phases", ",".join(str(p) for p in phases),
                "--outputs", self.outputs, "--context", json.dumps(dict(context), sort_keys=True, ensure_ascii=False)]
        for name, value in params.items():
            args += ["-p", str(name), str(value)]
        pod["spec"]["containers"][0]["args"] = args
        return job

    def __call__(self, incident: str, phases: list[int], *, params: Mapping[str, Any] | None = None,
                 context: Mapping[str, Any] | None = None, **_: Any) -> Launched:
        """Run one job as a Job. The cluster, not serve's queue file, says what runs: a Job of the incident still
        running with the same phases is this run (serve lost its queue: a new pod, an emptyDir) and is followed;
        one with other phases is waited for first (a resolution after its firing run)."""
        from kubernetes.client.rest import ApiException
        job = self.manifest(incident, phases, params or {}, context or {})
        name, labels = job["metadata"]["name"], job["metadata"]["labels"]
        for other in self._active(labels["irkit.dev/incident"], name):
            if (other.get("metadata") or {}).get("labels", {}).get("irkit.dev/phases") == labels["irkit.dev/phases"]:
                return self._follow(other["metadata"]["name"], incident)
            try:
                self._follow(other["metadata"]["name"], incident)
            except RunError:
                pass  # its failure is its own job's; this run goes on
        try:
            self.kube.call(f"create job {name}", self.kube.batch.create_namespaced_job, self.namespace, job)
        except KubernetesError as exc:
            if not (isinstance(exc.__cause__, ApiException) and exc.__cause__.status == 409):
                raise
            # 409: this job's Job exists (serve restarted while it ran): follow it.
        return self._follow(name, incident)

    def _active(self, incident_label: str, own: str) -> list[dict[str, Any]]:
        """The incident's Jobs other than ``own`` that have not finished, oldest first."""
        items = self.kube.items(f"list jobs of {incident_label}", self.kube.batch.list_namespaced_job, self.namespace,
                                label_selector=f"irkit.dev/incident={incident_label}")
        running = [j for j in items if j.get("metadata", {}).get("name") != own
                   and not ((j.get("status") or {}).get("succeeded") or (j.get("status") or {}).get("failed"))]
        return sorted(running, key=lambda j: str(j.get("metadata", {}).get("creationTimestamp") or ""))

    def _follow(self, name: str, incident: str) -> Launched:
        """Read the Job every ``poll`` seconds until it succeeds (its Launched) or fails (RunError, saying why)."""
        from irkit.rules.plan import shell  # a printed command is pasted: every word quoted
        where = f"job {self.namespace}/{name}"
        started, last_error = time.monotonic(), ""
        while not self._closed.wait(self.poll):
            try:
                status = self.kube.call(f"get job {name}", self.kube.batch.read_namespaced_job, name,
                                        self.namespace).status
            except KubernetesError as exc:  # the API server may be what is down: keep asking until the deadline
                last_error, status = str(exc), None
            if status is not None and (status.succeeded or 0) >= 1:
                return Launched(where)
            failed = [c for c in (status.conditions or []) if c.type == "Failed" and c.status == "True"] \
                if status is not None else []
            if failed or (status is not None and (status.failed or 0) >= 1):
                reason = f"{failed[0].reason}: {failed[0].message}" if failed else "its pod failed"
                raise RunError(f"{where} failed ({reason}; irkit run exits 1 when a phase failed, 3 when a verdict "
                               f"is unknown); what it collected is under {self.outputs}/{incident}/; "
                               + shell("kubectl", "-n", self.namespace, "logs", f"job/{name}"))
            if time.monotonic() - started > self.deadline:
                raise RunError(f"{where} did not finish within {self.deadline:.0f} s"
                               + (f"; {last_error}" if last_error else ""))
        raise RunError(f"{where}: irkit serve stopped while it ran; the next start follows it")
