"""``irkit serve``: Alertmanager's webhook starts runs where the incident is (issue 15, alert-triggered runs).

Alertmanager posts an alert group (webhook payload version 4) to ``POST /alerts``. Each group is one incident,
``ALERT-<12 hex digits of the group key>``: when the group fires, phases 1-2 run (``serve_firing_phases``);
when it resolves, phase 4 (``serve_resolved_phases``). A rule binds itself to the runbook with annotations on its
alerts: ``irkit_phases`` (e.g. ``1-3``) and ``irkit_parameters`` (``window_minutes=60,log_tail=100``).

The caller authenticates with a bearer token (``IRKIT_SERVE_TOKEN`` or the file ``IRKIT_SERVE_TOKEN_FILE``):
anything else is 401. A body over 1 MiB is 413; one that is not JSON, or not a version-4 alert group, 400 with
the reason. Accepted groups become jobs in a queue kept in ``<state>/queue.json`` (rewritten atomically at
each change), so jobs waiting when ``irkit serve`` stops run after it starts again; a job that was running
then is run again (its cut run can be sealed with ``irkit seal``). At most ``max_runs`` runs at once; never two
for one group (a group's jobs run in order), and no second firing run for a group whose firing run is queued
or running.

A run is started in-process (``runner.run``), or, with ``--job-template``, as a Kubernetes Job made from the
template (:class:`JobLauncher`): Kubernetes runs it in a pod of its own, with the runs' service account; irkit
serve follows the Job to its end, so the queue's order and bounds hold the same way.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import http.server
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from irkit import evidence, runner
from irkit.config import redact
from irkit.errors import ConfigError, IrkitError, KubernetesError, ParameterError, RunError
from irkit.evidence.remote import is_remote
from irkit.evidence.rundir import make_dir

__all__ = ["MAX_BODY", "BadGroup", "QueueFull", "context", "Group", "Job", "JobLauncher", "JobQueue", "Launched", "Serve", "TOKEN_ENV", "TOKEN_FILE_ENV", "incident_id", "parse_group",
           "read_token"]

MAX_BODY = 1 << 20
RETRY_AFTER = 60  # seconds a caller is asked to wait when the queue is full (Alertmanager retries on 5xx)
TOKEN_ENV, TOKEN_FILE_ENV = "IRKIT_SERVE_TOKEN", "IRKIT_SERVE_TOKEN_FILE"
FIRING_PHASES, RESOLVED_PHASES = "1-2", "4"


class BadGroup(ValueError):
    """A webhook body that is not an alert group Alertmanager sends (version 4); its text is the 400's reason."""


@dataclass(frozen=True)
class Group:
    """What a run needs of an alert group."""

    key: str
    status: str  # firing | resolved
    name: str  # alertname of the group (or of its first alert)
    starts_at: str
    phases: str
    parameters: dict[str, str]


def read_token(env: Mapping[str, str] | None = None) -> str:
    """The token callers must present: ``IRKIT_SERVE_TOKEN``, or the file ``IRKIT_SERVE_TOKEN_FILE`` names."""
    env = os.environ if env is None else env
    if env.get(TOKEN_ENV):
        return env[TOKEN_ENV]
    path = env.get(TOKEN_FILE_ENV)
    if not path:
        raise ConfigError(f"irkit serve needs a bearer token for Alertmanager: set {TOKEN_ENV}, or {TOKEN_FILE_ENV} to "
                          "a file holding it (the same value as the receiver's http_config authorization)")
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{TOKEN_FILE_ENV}={path!r} cannot be read ({exc.strerror}); fix the path") from exc
    if not token:
        raise ConfigError(f"{TOKEN_FILE_ENV}={path!r} is empty; put the token in it")
    return token


def incident_id(group_key: str) -> str:
    """The incident an alert group is: stable for the group, whatever its alerts do meanwhile."""
    return "ALERT-" + hashlib.sha256(group_key.encode()).hexdigest()[:12]


def _strings(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise BadGroup(f"{what} must be an object of strings")
    return dict(value)


MAX_DEPTH = 32  # nesting of a webhook body: Alertmanager's is 4 deep
MAX_NAME = 200  # characters of an alert name kept (a run's --context stays far under its bound)
MAX_CONTEXT_KEY = 1000  # characters of the group key a run's context carries (serve keys on the whole of it)
# Parameters no alert may set: whatever can post an alert must never be able to change production.
NEVER_FROM_AN_ALERT = frozenset({"execute_mitigations", "confirm"})
_STRUCTURE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _depth(text: str) -> int:
    """How deeply a JSON text nests arrays and objects (strings skipped), counted in one linear pass that
    stops at MAX_DEPTH + 1: json.loads would recurse once per level."""
    depth = deepest = 0
    for match in _STRUCTURE.finditer(text):
        token = match.group(0)
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                break
        elif token in "]}":
            depth -= 1
    return deepest


def parse_group(body: bytes, firing_phases: str = FIRING_PHASES, resolved_phases: str = RESOLVED_PHASES) -> Group:
    """An Alertmanager webhook body (version 4) as a :class:`Group`; :class:`BadGroup` says what is wrong.

    What an alert carries is hostile data: its labels and annotations are redacted, its name is cut to
    :data:`MAX_NAME`, and the parameters its annotation names are checked against the notebooks now (a bad one
    is refused here, not in a run later); ``execute_mitigations`` and ``confirm`` are refused outright."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadGroup("the body is not UTF-8 JSON") from exc
    if _depth(text) > MAX_DEPTH:
        raise BadGroup(f"the body nests deeper than {MAX_DEPTH} levels; an alert group is 4 deep")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BadGroup("the body is not JSON") from exc
    if not isinstance(data, dict):
        raise BadGroup("the body must be a JSON object (an Alertmanager alert group)")
    if data.get("version") != "4":
        raise BadGroup(f"version {str(data.get('version'))[:20]!r} is not 4: irkit reads Alertmanager's webhook "
                       "payload version 4")
    key, status, alerts = data.get("groupKey"), data.get("status"), data.get("alerts")
    if not isinstance(key, str) or not key or len(key) > 4096:
        raise BadGroup("groupKey must be a non-empty string of at most 4096 characters")
    if status not in ("firing", "resolved"):
        raise BadGroup("status must be firing or resolved")
    if not isinstance(alerts, list) or not alerts or len(alerts) > 1000 or not all(isinstance(a, dict) for a in alerts):
        raise BadGroup("alerts must be a non-empty list of at most 1000 alerts")
    labels = [_strings(a.get("labels"), "an alert's labels") for a in alerts]
    annotations = [_strings(a.get("annotations"), "an alert's annotations") for a in alerts]
    common = _strings(data.get("commonLabels"), "commonLabels")
    group_labels = _strings(data.get("groupLabels"), "groupLabels")
    starts = sorted(str(a.get("startsAt"))[:64] for a in alerts if isinstance(a.get("startsAt"), str))
    name = group_labels.get("alertname") or common.get("alertname") or labels[0].get("alertname") or "alert"
    bound = next((a for a in annotations if "irkit_phases" in a or "irkit_parameters" in a), {})
    phases = bound.get("irkit_phases", firing_phases) if status == "firing" else resolved_phases
    parameters: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in bound.get("irkit_parameters", "").split(","))):
        pname, sep, value = item.partition("=")
        if not sep or not pname.strip():
            raise BadGroup(f"annotation irkit_parameters: {item[:40]!r} is not name=value")
        if pname.strip() in NEVER_FROM_AN_ALERT:
            raise BadGroup(f"annotation irkit_parameters: {pname.strip()} cannot come from an alert: a person "
                           "confirms a change (JupyterLab, or irkit run -p confirm)")
        parameters[pname.strip()] = value.strip()
    try:
        runner.check_parameters(parameters, runner.parse_phases(phases))  # refused now, not in a worker later
    except ParameterError as exc:
        raise BadGroup(f"annotation irkit_parameters or irkit_phases: {exc}") from exc
    return Group(key, status, redact(name)[:MAX_NAME], starts[0] if starts else "", phases, parameters)


@dataclass
class Job:
    """One run to start: for an alert group, firing or resolved."""

    id: str
    incident: str
    group_key: str
    status: str  # firing | resolved
    phases: str
    parameters: dict[str, str]
    alert: dict[str, str]
    state: str = "queued"  # queued | running | done | failed
    received_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    run_dir: str = ""
    error: str = ""


class QueueFull(Exception):
    """The queue holds its bound of waiting jobs; the caller is told to retry later (503, Retry-After)."""


class JobQueue:
    """The jobs, kept in ``<state>/queue.json``: waiting jobs survive a restart of ``irkit serve``.

    Bounded: at most ``max_queued`` jobs wait (more is :class:`QueueFull`), at most ``keep_done`` finished ones
    are kept. A state file that cannot be read as a queue is never overwritten: it is moved aside
    (``queue.json.damaged-<time>``), said in :attr:`damaged`, and serve starts with the jobs it could read.
    """

    def __init__(self, state_dir: Path, keep_done: int = 200, max_queued: int = 100) -> None:
        self.path = state_dir / "queue.json"
        make_dir(state_dir)
        self.keep_done, self.max_queued = keep_done, max_queued
        self._lock = threading.Condition()
        self.damaged = ""  # where a damaged state file was put aside, and why
        self.jobs = self._load()
        for job in self.jobs:
            if job.state == "running":  # cut short when serve stopped: run it again
                job.state, job.error = "queued", "requeued: irkit serve stopped while it ran"
        self._save()

    def _load(self) -> list[Job]:
        if not self.path.exists() and not self.path.is_symlink():
            return []
        data = evidence.read_json(self.path)
        entries = data.get("jobs") if isinstance(data, dict) else None
        jobs: list[Job] = []
        names = {f.name for f in fields(Job)}
        for entry in entries if isinstance(entries, list) else []:
            try:  # keys a later version added are left out; a job missing what it needs is not a job
                jobs.append(Job(**{k: v for k, v in entry.items() if k in names}))
            except (TypeError, AttributeError):
                continue
        if not isinstance(entries, list) or len(jobs) != len(entries):
            aside = self.path.with_name(f"queue.json.damaged-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
            os.replace(self.path, aside)
            kept = f"{len(jobs)} of its {len(entries)} jobs kept" if isinstance(entries, list) else "no job kept"
            self.damaged = f"{self.path} could not be read as a queue ({kept}); it was moved to {aside}"
        return jobs

    def _save(self) -> None:
        finished = [j for j in self.jobs if j.state in ("done", "failed")]
        if len(finished) > self.keep_done:  # bounded: the oldest finished jobs go first
            drop = {id(j) for j in finished[:len(finished) - self.keep_done]}
            self.jobs = [j for j in self.jobs if id(j) not in drop]
        evidence.write_json(self.path, {"jobs": [asdict(j) for j in self.jobs]})

    def add(self, group: Group) -> tuple[Job, bool]:
        """Queue a run for ``group``; (the job, False) when a run of the group with the same status is queued or
        running already (Alertmanager repeats a notification until it is answered, and resends resolved ones).
        :class:`QueueFull` when ``max_queued`` jobs wait."""
        with self._lock:
            pending = next((j for j in self.jobs if j.group_key == group.key and j.status == group.status
                            and j.state in ("queued", "running")), None)
            if pending is not None:
                return pending, False
            if sum(j.state == "queued" for j in self.jobs) >= self.max_queued:
                raise QueueFull(f"{self.max_queued} jobs are waiting already")
            job = Job(uuid.uuid4().hex[:12], incident_id(group.key), group.key, group.status, group.phases,
                      group.parameters, {"name": group.name, "startsAt": group.starts_at, "status": group.status})
            self.jobs.append(job)
            self._save()
            self._lock.notify_all()
            return job, True

    def take(self, stop: threading.Event) -> Job | None:
        """The oldest queued job whose group has none running (a group's runs go in order); waits for one."""
        with self._lock:
            while not stop.is_set():
                busy = {j.group_key for j in self.jobs if j.state == "running"}
                job = next((j for j in self.jobs if j.state == "queued" and j.group_key not in busy), None)
                if job is not None:
                    job.state = "running"
                    self._save()
                    return job
                self._lock.wait(0.5)
            return None

    def finish(self, job: Job, state: str, run_dir: str = "", error: str = "") -> None:
        with self._lock:
            job.state, job.run_dir, job.error = state, run_dir, error
            self._save()
            self._lock.notify_all()

    def counts(self) -> dict[str, int]:
        with self._lock:
            found: dict[str, int] = {}
            for job in self.jobs:
                found[job.state] = found.get(job.state, 0) + 1
            return found


class Serve:
    """The receiver and its workers: ``Serve(...).start()``, then ``stop()``."""

    def __init__(self, *, token: str, config_path: str = "", outputs: str | Path = "outputs",
                 state_dir: str | Path = ".irkit-serve", listen: tuple[str, int] = ("127.0.0.1", 9095),
                 max_runs: int = 2, firing_phases: str = FIRING_PHASES, resolved_phases: str = RESOLVED_PHASES,
                 start_run: Callable[..., Any] | None = None, max_queued: int = 100) -> None:
        if not 0 <= max_runs <= 16:
            raise ParameterError("--max-runs must be 0 to 16 (0: only queue, run nothing)")
        if not 1 <= max_queued <= 10_000:
            raise ParameterError("--max-queued must be 1 to 10000")
        runner.parse_phases(firing_phases)
        runner.parse_phases(resolved_phases)
        self.token, self.config_path = token, config_path
        self.outputs: str | Path = str(outputs) if is_remote(outputs) else Path(outputs)  # s3://: not a path
        self.firing_phases, self.resolved_phases = firing_phases, resolved_phases
        self.queue = JobQueue(Path(state_dir), max_queued=max_queued)
        self._run = start_run or runner.run
        self._stop = threading.Event()
        self._workers = [threading.Thread(target=self._work, name=f"irkit-serve-{i}", daemon=True)
                         for i in range(max_runs)]
        self.server = http.server.ThreadingHTTPServer(listen, _handler(self))
        self.server.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Serve:
        threading.Thread(target=self.server.serve_forever, name="irkit-serve-http", daemon=True).start()
        for worker in self._workers:
            worker.start()
        return self

    def stop(self, wait: float = 5.0) -> None:
        """Stop taking requests and jobs; runs under way finish (or are requeued at the next start)."""
        self._stop.set()
        closing = getattr(self._run, "close", None)
        if callable(closing):  # a JobLauncher stops following its Jobs (they run on; the next start follows them)
            closing()
        self.server.shutdown()
        self.server.server_close()
        deadline = time.monotonic() + wait
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))

    def _work(self) -> None:
        while not self._stop.is_set():
            job = self.queue.take(self._stop)
            if job is None:
                return
            try:
                result = self._run(job.incident, runner.parse_phases(job.phases), config_path=self.config_path,
                                   params=job.parameters, outputs=self.outputs,
                                   context=context(job))
                self.queue.finish(job, "done", str(result.run_dir))
            except IrkitError as exc:
                self.queue.finish(job, "failed", error=str(exc)[:500])
            except Exception as exc:  # a worker must outlive any one run
                self.queue.finish(job, "failed", error=f"{type(exc).__name__}: {str(exc)[:400]}")


def context(job: Job) -> dict[str, Any]:
    """What a run started for ``job`` keeps in run.json (``--context`` for a Job): the alert, the group (its key
    redacted and cut to :data:`MAX_CONTEXT_KEY`: the incident id already stands for the whole of it), the job."""
    key = redact(job.group_key)
    return {"alert": job.alert, "serve_job": job.id,
            "alert_group": key if len(key) <= MAX_CONTEXT_KEY else key[:MAX_CONTEXT_KEY - 1] + "…"}


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
        stem = re.sub(r"[^a-z0-9-]+", "-", incident.lower()).strip("-")[:40]
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


def _handler(serve: Serve) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "irkit-serve"
        timeout = 10  # a client that sends its body slowly is cut off

        def _answer(self, code: int, body: Mapping[str, Any], retry_after: int = 0) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            if retry_after:
                self.send_header("Retry-After", str(retry_after))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path != "/healthz":
                self._answer(404, {"error": "POST alert groups to /alerts; GET /healthz"})
                return
            self._answer(200, {"ok": True, "jobs": serve.queue.counts(),
                               **({"damaged_state": serve.queue.damaged} if serve.queue.damaged else {})})

        def do_POST(self) -> None:
            if self.path != "/alerts":
                self._answer(404, {"error": "POST alert groups to /alerts"})
                return
            given = self.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {serve.token}".encode()):
                self._answer(401, {"error": "a bearer token is required (the receiver's http_config authorization)"})
                return
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self._answer(411, {"error": "Content-Length is required"})
                return
            if not 0 <= length <= MAX_BODY:
                self._answer(413, {"error": f"the body is over {MAX_BODY} bytes"})
                return
            try:
                group = parse_group(self.rfile.read(length), serve.firing_phases, serve.resolved_phases)
            except (BadGroup, ParameterError) as exc:
                self._answer(400, {"error": str(exc)})
                return
            try:
                job, new = serve.queue.add(group)
            except QueueFull as exc:
                self._answer(503, {"error": f"{exc}; try again later"}, retry_after=RETRY_AFTER)
                return
            self._answer(202, {"incident": job.incident, "job": job.id,
                               "status": "queued" if new else f"a run for this group is {job.state} already"})

        def log_message(self, *args: Any) -> None:
            pass  # requests are recorded as jobs; the access log would print tokens' absence, not evidence

    return Handler
