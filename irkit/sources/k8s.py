"""Kubernetes reads: playbook 2.1 (pods, events, top), 2.2 (logs) and the rollout history.

Named after the kubectl command a responder would type: ``pods`` (``kubectl get
pods``), ``events`` (``--sort-by=.lastTimestamp``), ``top_pods``/``top_nodes``,
``logs`` (``kubectl logs deployment/...``), ``rollout_history``. Every request
has a timeout and no retries; API errors become irkit errors that say which
permission or name to check.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import urllib3
from kubernetes import client as kclient
from kubernetes import config as kconfig
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.utils import parse_quantity

from irkit.config import Config, redact, redact_frame
from irkit.errors import KubernetesError, KubernetesTimeout, KubernetesUnavailable
from irkit.sources import http

__all__ = [
    "config_changes",
    "cronjobs",
    "Kube",
    "MetricsResult",
    "connect",
    "deployments",
    "events",
    "logs",
    "pods",
    "rollout_histories",
    "rollout_history",
    "services",
    "top_nodes",
    "top_pods",
    "unhealthy", "unhealthy_pods",
]

POD_COLUMNS = ["pod", "phase", "ready", "all_ready", "restarts", "waiting_reason", "last_termination_reason",
               "last_exit_code", "last_terminated_at", "node", "age_seconds", "created", "owner", "app",
               "memory_limit", "waiting_message", "last_termination_message"]
_MESSAGE = 500  # characters kept of a container's waiting or termination message (the kubelet's, the runtime's)


class Kube:
    """API clients bound to one cluster and namespace, with timeouts and irkit errors."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.namespace = config.namespace
        configuration = kclient.Configuration()
        started = time.monotonic()
        in_cluster = config.kubeconfig == "in-cluster" or (
            not config.kubeconfig and "KUBERNETES_SERVICE_HOST" in os.environ
            and not os.path.exists(os.path.expanduser(os.environ.get("KUBECONFIG", "~/.kube/config"))))
        try:
            if in_cluster:
                # The kubelet rotates a projected token in place: the loader reads the file again before it expires.
                kconfig.incluster_config.InClusterConfigLoader(
                    token_filename=config.kube_token_file, cert_filename=config.kube_ca_file,
                ).load_and_set(configuration)
            else:
                kconfig.load_kube_config(config_file=config.kubeconfig or None,
                                         context=config.kube_context or None,
                                         client_configuration=configuration)
        except (ConfigException, OSError) as exc:
            hint = ("in-cluster: check KUBERNETES_SERVICE_HOST/PORT and the service account's token and CA files "
                    "(IRKIT_KUBE_TOKEN_FILE, IRKIT_KUBE_CA_FILE)" if in_cluster else
                    "set IRKIT_KUBECONFIG / IRKIT_KUBE_CONTEXT, or run in-cluster with a service account")
            raise KubernetesUnavailable("Kubernetes", "load the service account" if in_cluster else "load kubeconfig",
                                        time.monotonic() - started, f"{exc}; {hint}") from exc
        configuration.retries = 0  # one bounded attempt: retries multiply the wait during an outage
        self.source = f"Kubernetes API at {configuration.host}"
        self.api_client = kclient.ApiClient(configuration)
        http.watch_pool(self.api_client.rest_client.pool_manager)  # each call keeps to a total deadline too
        self.timeout = (config.connect_timeout, config.request_timeout)
        self.deadline = config.connect_timeout + 2 * config.request_timeout

    # The client imports an API group's models on first use (over a second for all of them):
    # a phase that only reads Deployments does not pay for the core group.
    @functools.cached_property
    def core(self) -> Any:
        return kclient.CoreV1Api(self.api_client)

    @functools.cached_property
    def apps(self) -> Any:
        return kclient.AppsV1Api(self.api_client)

    @functools.cached_property
    def batch(self) -> Any:  # irkit serve's Jobs
        return kclient.BatchV1Api(self.api_client)

    @functools.cached_property
    def custom(self) -> Any:
        return kclient.CustomObjectsApi(self.api_client)

    def __repr__(self) -> str:
        return f"<Kube {self.source} namespace={self.namespace}>"

    def close(self) -> None:
        self.api_client.close()

    def call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call one client method with the timeout, translating its failures.

        The result is typed ``Any``: the client's models mark every field optional,
        while the API always fills the ones read here.
        """
        started = time.monotonic()
        try:
            with http.deadline(self.deadline) as whole:
                try:
                    return fn(*args, _request_timeout=self.timeout, **kwargs)
                except (urllib3.exceptions.HTTPError, OSError) as exc:
                    if whole.fired:  # the socket was shut down at the deadline: a timeout, said as one
                        raise urllib3.exceptions.ReadTimeoutError(None, "", "total deadline") from exc  # type: ignore[arg-type]
                    raise
        except ApiException as exc:
            raise KubernetesError(self.source, what, time.monotonic() - started, _api_hint(exc, what)) from exc
        except ValueError as exc:  # pydantic's ValidationError and JSON errors: not a Kubernetes answer
            raise KubernetesError(self.source, what, time.monotonic() - started,
                                  f"the answer is not a valid Kubernetes object ({str(exc).splitlines()[0]}); "
                                  "check that the kubeconfig points at the API server") from exc
        except (urllib3.exceptions.HTTPError, TimeoutError) as exc:
            kind = http.urllib3_failure(exc)
            error, hint = _TRANSPORT_ERRORS.get(kind, _TRANSPORT_ERRORS["other"])
            reason = http.FAILURES[kind].format(timeout=self.config.request_timeout)
            raise error(self.source, what, time.monotonic() - started, f"{reason}; {hint}") from exc


    def items(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        """A list call's items as plain JSON (camelCase keys), bounded and translated like :meth:`call`.

        The client's models cost about a millisecond per pod to build: 5,000 pods are seconds that
        ``json.loads`` spends in a few dozen milliseconds.
        """
        # The body is read inside call(): a connection dropped mid-answer is translated like any other failure.
        body = self.call(what, lambda *a, **k: fn(*a, _preload_content=False, **k).data, *args, **kwargs)
        started = time.monotonic()
        try:
            items = json.loads(body).get("items") or []
        except (ValueError, AttributeError) as exc:
            raise KubernetesError(self.source, what, time.monotonic() - started,
                                  "the answer is not a Kubernetes list; check that the kubeconfig points at the API "
                                  "server") from exc
        return [item for item in items if isinstance(item, dict)]


# How the API server failed to answer (irkit.sources.http.FAILURES) as irkit errors, with what to check next.
_TRANSPORT_ERRORS: dict[str, tuple[type[KubernetesError], str]] = {
    "timeout": (KubernetesTimeout, "the API server may be overloaded: retry, or raise IRKIT_REQUEST_TIMEOUT"),
    "refused": (KubernetesUnavailable, "cannot reach the API server; check the kube context, VPN and "
                                       "IRKIT_KUBECONFIG"),
    "unresolved": (KubernetesUnavailable, "check the kubeconfig's server address, the VPN and DNS"),
    "tls": (KubernetesUnavailable, "check the kubeconfig's certificate-authority and the server address"),
    "dropped": (KubernetesUnavailable, "the API server or a proxy in front of it may be restarting: retry"),
    "other": (KubernetesUnavailable, "cannot reach the API server; check the kube context, VPN and "
                                     "IRKIT_KUBECONFIG"),
}


def _api_hint(exc: ApiException, what: str) -> str:
    status = exc.status
    if status == 401:
        return (f"HTTP 401 {exc.reason}: the API server did not accept the credentials; check the kubeconfig's "
                "user or the service account token (IRKIT_KUBECONFIG, IRKIT_KUBE_CONTEXT)")
    if status == 403:
        return (f"HTTP 403 {exc.reason}: the credentials may not {what}; grant the role that permission "
                "(deploy/rbac-read.yaml lists what irkit reads; deploy/mitigations/ what its actions change)")
    if status == 404:
        return f"not found ({what}); check IRKIT_NAMESPACE and the deployment names in irkit.toml"
    body = (exc.body or "")[:300] if isinstance(exc.body, str) else ""
    return f"HTTP {status} {exc.reason} {body}".strip()


def connect(config: Config) -> Kube:
    return Kube(config)


def _age(moment: datetime | None, now: datetime) -> float | None:
    return (now - moment).total_seconds() if moment is not None else None


def _time(value: Any) -> datetime | None:
    """An API timestamp (RFC 3339, "Z" for UTC) as an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) and value else None


def _pod_row(pod: dict[str, Any], now: datetime) -> dict[str, Any]:
    """One row of :func:`pods` from a pod as the API sends it."""
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    waits = [(s.get("state") or {})["waiting"] for s in statuses if (s.get("state") or {}).get("waiting")]
    waiting = waits[0].get("reason") if waits else None
    terminated = [(s.get("lastState") or {})["terminated"] for s in statuses
                  if (s.get("lastState") or {}).get("terminated")]
    last = max(terminated, key=lambda t: _time(t.get("finishedAt")) or datetime.min.replace(tzinfo=UTC), default=None)
    owners = meta.get("ownerReferences") or []
    # The memory limit of the container that was last terminated (an OOMKill), else of the first container.
    killed = next((s.get("name") for s in statuses
                   if ((s.get("lastState") or {}).get("terminated") or {}).get("reason") == "OOMKilled"), None)
    containers = spec.get("containers") or []
    chosen = next((c for c in containers if c.get("name") == killed), containers[0] if containers else None)
    limits = ((chosen.get("resources") or {}).get("limits") or {}) if chosen is not None else {}
    created = _time(meta.get("creationTimestamp"))
    return {
        "pod": meta.get("name"),
        "phase": status.get("phase"),
        "ready": f"{sum(bool(s.get('ready')) for s in statuses)}/{len(containers or statuses)}",
        "all_ready": bool(statuses) and all(s.get("ready") for s in statuses),
        "restarts": sum(s.get("restartCount") or 0 for s in statuses),
        "waiting_reason": waiting,
        "last_termination_reason": last.get("reason") if last else None,
        "last_exit_code": last.get("exitCode") if last else None,
        "last_terminated_at": _time(last.get("finishedAt")) if last else None,
        "node": spec.get("nodeName"),
        "age_seconds": _age(created, now),
        "created": created,
        "owner": f"{owners[0].get('kind')}/{owners[0].get('name')}" if owners else None,
        "app": (meta.get("labels") or {}).get("app"),
        "memory_limit": limits.get("memory"),
        # What the kubelet and the container runtime said: why it waits (an image it may not pull, a Secret it
        # lacks) and why it last ended (a command that cannot run). Text from the cluster: bounded, redacted.
        "waiting_message": str(waits[0].get("message")) if waits and waits[0].get("message") else None,
        "last_termination_message": str(last.get("message")) if last and last.get("message") else None,
    }


def _redacted_then_cut(frame: pd.DataFrame, config: Config, columns: list[str], limit: int = _MESSAGE) -> pd.DataFrame:
    """Text the cluster wrote, secrets removed from the whole of it first (a token across the cut would leave its
    head behind), then bounded."""
    redact_frame(frame, config, columns)
    for column in columns:
        if column in frame.columns and len(frame):
            frame[column] = frame[column].map(lambda v: v[:limit] if isinstance(v, str) else v)
    return frame


def pods(kube: Kube, selector: str | None = None) -> pd.DataFrame:
    """``kubectl get pods``: one row per pod with the reasons kubectl shows.

    Columns: ``pod, phase, ready ("1/2"), all_ready, restarts, waiting_reason
    (CrashLoopBackOff, ImagePullBackOff, ...), last_termination_reason (OOMKilled,
    Error), last_exit_code, last_terminated_at, node, age_seconds, created, owner, app,
    memory_limit, waiting_message, last_termination_message``.
    """
    items = kube.items(f"list pods in {kube.namespace}", kube.core.list_namespaced_pod, kube.namespace,
                       label_selector=selector or "")
    now = datetime.now(UTC)
    frame = pd.DataFrame([_pod_row(p, now) for p in items], columns=POD_COLUMNS)
    _redacted_then_cut(frame, kube.config, ["waiting_message", "last_termination_message"])
    return frame.sort_values("pod").reset_index(drop=True)


def unhealthy_pods(kube: Kube, selector: str | None = None) -> pd.DataFrame:
    """``kubectl get pods | grep -v Running``, plus running pods that are not ready or were just killed."""
    return unhealthy(pods(kube, selector))


def unhealthy(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of a :func:`pods` listing that :func:`unhealthy_pods` shows."""
    bad = (
        (frame["phase"] != "Running") & (frame["phase"] != "Succeeded")
        | ~frame["all_ready"].astype(bool)
        | frame["waiting_reason"].notna()
        | frame["last_termination_reason"].isin(["OOMKilled", "Error"])
    )
    # The most telling first (a table shows its first rows): the most restarts, then by name.
    return frame[bad].sort_values(["restarts", "pod"], ascending=[False, True]).reset_index(drop=True)


def events(kube: Kube, *, warnings_only: bool = False, newest_first: bool = True, limit: int = 200) -> pd.DataFrame:
    """``kubectl get events --sort-by=.lastTimestamp``.

    Sorted by lastTimestamp, falling back to eventTime then firstTimestamp. Columns:
    ``last_seen, type, reason, object, message, count, first_seen``; ``type`` is
    ``Warning`` for the ones to look at first.
    """
    items = kube.items(f"list events in {kube.namespace}", kube.core.list_namespaced_event, kube.namespace,
                       **({"field_selector": "type=Warning"} if warnings_only else {}))
    rows = []
    for ev in items:
        first = _time(ev.get("firstTimestamp"))
        last = (_time(ev.get("lastTimestamp")) or _time(ev.get("eventTime")) or first
                or _time((ev.get("metadata") or {}).get("creationTimestamp")))
        obj = ev.get("involvedObject")
        rows.append({"last_seen": last, "type": ev.get("type"), "reason": ev.get("reason"),
                     "object": f"{obj.get('kind')}/{obj.get('name')}" if obj else None, "message": ev.get("message"),
                     "count": ev.get("count") or 1, "first_seen": first or last})
    frame = pd.DataFrame(rows, columns=["last_seen", "type", "reason", "object", "message", "count", "first_seen"])
    # An event's message quotes what the pod said: secrets removed, then bounded like a log line.
    _redacted_then_cut(frame, kube.config, ["reason", "message"], MAX_LOG_LINE)
    frame["last_seen"] = pd.to_datetime(frame["last_seen"], utc=True)
    frame = frame.sort_values("last_seen", ascending=not newest_first, kind="stable")
    return frame.head(limit).reset_index(drop=True)


@dataclass(frozen=True)
class MetricsResult:
    """Usage from metrics.k8s.io, or why it is not there (``available=False``)."""

    available: bool
    frame: pd.DataFrame
    note: str = ""

    def __repr__(self) -> str:
        return repr(self.frame) if self.available else f"metrics unavailable: {self.note}"


def _metrics(kube: Kube, plural: str) -> MetricsResult | list[dict[str, Any]]:
    namespaced = plural == "pods"
    what = f"top {plural}"
    try:
        if namespaced:
            result = kube.call(what, kube.custom.list_namespaced_custom_object, "metrics.k8s.io", "v1beta1",
                               kube.namespace, plural)
        else:
            result = kube.call(what, kube.custom.list_cluster_custom_object, "metrics.k8s.io", "v1beta1", plural)
    except KubernetesError as exc:
        cause = exc.__cause__
        if isinstance(cause, ApiException) and cause.status in (404, 503):
            return MetricsResult(False, pd.DataFrame(),
                                 "the metrics API (metrics.k8s.io) is not served by this cluster: metrics-server "
                                 "is missing or down, so `kubectl top` fails too; use Prometheus container metrics")
        raise
    return list(result.get("items", []))


def top_pods(kube: Kube) -> MetricsResult:
    """``kubectl top pods``: columns ``pod, container, cpu_millicores, memory_mib``, heaviest CPU first."""
    items = _metrics(kube, "pods")
    if isinstance(items, MetricsResult):
        return items
    rows = [{"pod": item["metadata"]["name"], "container": c["name"],
             "cpu_millicores": float(parse_quantity(c["usage"]["cpu"]) * 1000),
             "memory_mib": float(parse_quantity(c["usage"]["memory"]) / (1024 * 1024))}
            for item in items for c in item.get("containers", [])]
    frame = pd.DataFrame(rows, columns=["pod", "container", "cpu_millicores", "memory_mib"])
    return MetricsResult(True, frame.sort_values("cpu_millicores", ascending=False).reset_index(drop=True))


def top_nodes(kube: Kube) -> MetricsResult:
    """``kubectl top nodes``: columns ``node, cpu_millicores, memory_mib``."""
    items = _metrics(kube, "nodes")
    if isinstance(items, MetricsResult):
        return items
    rows = [{"node": item["metadata"]["name"],
             "cpu_millicores": float(parse_quantity(item["usage"]["cpu"]) * 1000),
             "memory_mib": float(parse_quantity(item["usage"]["memory"]) / (1024 * 1024))} for item in items]
    frame = pd.DataFrame(rows, columns=["node", "cpu_millicores", "memory_mib"])
    return MetricsResult(True, frame.sort_values("node").reset_index(drop=True))


def _selector(kube: Kube, workload: str, kind: str = "Deployment") -> str:
    read = kube.apps.read_namespaced_stateful_set if kind == "StatefulSet" else kube.apps.read_namespaced_deployment
    obj = kube.call(f"get {kind.lower()} {workload}", read, workload, kube.namespace)
    labels = obj.spec.selector.match_labels or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


MAX_LOG_PODS = 10  # pods whose logs are read per workload: kubectl reads one; identical lines fold anyway
MAX_LOG_BYTES = 256 << 10  # read per container (kubectl logs --limit-bytes): a pod decides how long its lines are
MAX_LOG_LINE = 2000  # characters kept of one line; the rest is cut and says how much


def _bounded_log(text: Any, config: Config) -> str:
    """A container's log as irkit keeps it: secrets removed, then each line at most :data:`MAX_LOG_LINE`
    characters. When the API cut the log at :data:`MAX_LOG_BYTES`, its last line (cut mid-way, perhaps
    mid-secret) is left out."""
    raw = str(text)
    if len(raw.encode()) >= MAX_LOG_BYTES and "\n" in raw:
        raw = raw[:raw.rindex("\n") + 1]
    lines = []
    for line in redact(raw, config).splitlines():
        if len(line) > MAX_LOG_LINE:
            line = f"{line[:MAX_LOG_LINE]} [{len(line) - MAX_LOG_LINE} characters cut]"
        lines.append(line)
    return "\n".join(lines) + ("\n" if lines else "")


def logs(kube: Kube, deployment: str, *, tail: int = 100, previous: bool = False,
         container: str | None = None, kind: str = "Deployment", only: Iterable[str] | None = None) -> pd.DataFrame:
    """``kubectl logs deployment/NAME --tail=N [--previous]`` for the pods behind the deployment: those that
    restarted most or are not ready first, at most :data:`MAX_LOG_PODS` of them (``only``: just these pods).

    Columns: ``pod, container, previous, text``. A pod without a previous container
    (``previous=True`` on a pod that never restarted) gets a note as its text instead
    of failing the whole call.
    """
    selector = _selector(kube, deployment, kind)
    listing = kube.items(f"list pods of {deployment}", kube.core.list_namespaced_pod, kube.namespace,
                         label_selector=selector)
    wanted = set(only) if only is not None else None
    now = datetime.now(UTC)
    rows_of = {str(p["pod"]): p for p in (_pod_row(item, now) for item in listing)}
    containers = {str((item.get("metadata") or {}).get("name")): [str(c.get("name")) for c in
                                                                  (item.get("spec") or {}).get("containers") or []]
                  for item in listing}
    # The least healthy first: not ready, then the most restarts.
    chosen = sorted((p for p in rows_of.values() if wanted is None or p["pod"] in wanted),
                    key=lambda p: (bool(p["all_ready"]), -int(p["restarts"]), str(p["pod"])))
    rows = []
    for pod in sorted(str(p["pod"]) for p in chosen[:MAX_LOG_PODS]):
        names = [container] if container else containers[pod]
        for name in names:
            try:
                text = kube.call(f"logs of {pod}/{name}", kube.core.read_namespaced_pod_log,
                                 pod, kube.namespace, container=name, tail_lines=tail,
                                 previous=previous, limit_bytes=MAX_LOG_BYTES)
            except KubernetesError as exc:
                cause = exc.__cause__
                if not (isinstance(cause, ApiException) and cause.status in (400, 404)):
                    raise
                text = f"(no {'previous ' if previous else ''}logs: {cause.reason})"
            rows.append({"pod": pod, "container": name, "previous": previous, "text": _bounded_log(text, kube.config)})
    return pd.DataFrame(rows, columns=["pod", "container", "previous", "text"])


def deployments(kube: Kube) -> pd.DataFrame:
    """``kubectl get deployments,statefulsets``: columns ``kind, name, desired, ready, updated, image``, and who last
    wrote the pod template and when (``template_writer``, ``template_written_at``: the newest managedFields entry
    that owns a field under ``spec.template``; a field manager's name is whatever the writer chose)."""
    rows = []
    for kind, fn in (("Deployment", kube.apps.list_namespaced_deployment),
                     ("StatefulSet", kube.apps.list_namespaced_stateful_set)):
        for obj in kube.items(f"list {kind.lower()}s", fn, kube.namespace):
            spec, status = obj.get("spec") or {}, obj.get("status") or {}
            containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
            meta = obj.get("metadata") or {}
            writes = sorted((str(f["time"]), str(f.get("manager") or "")) for f in meta.get("managedFields") or []
                            if f.get("time") and "f:template" in ((f.get("fieldsV1") or {}).get("f:spec") or {}))
            rows.append({"kind": kind, "name": meta.get("name"),
                         "desired": spec.get("replicas") or 0, "ready": status.get("readyReplicas") or 0,
                         "updated": status.get("updatedReplicas") or 0,
                         "image": ", ".join(str(c.get("image")) for c in containers),
                         "template_writer": writes[-1][1] if writes else None,
                         "template_written_at": _time(writes[-1][0]) if writes else None})
    frame = pd.DataFrame(rows, columns=["kind", "name", "desired", "ready", "updated", "image", "template_writer",
                                        "template_written_at"])
    return _redacted_then_cut(frame, kube.config, ["template_writer"], 128)


def services(kube: Kube) -> pd.DataFrame:
    """``kubectl get svc,endpoints``: each Service, what it selects, its port and targetPort, and how many addresses
    its Endpoints list ready (with a port: a targetPort that matches no container's port leaves none). Columns
    ``name, selector, port, target_port, ready, not_ready``."""
    endpoints = {str((e.get("metadata") or {}).get("name")): e for e in kube.items(
        "list endpoints", kube.core.list_namespaced_endpoints, kube.namespace)}
    rows = []
    for svc in kube.items("list services", kube.core.list_namespaced_service, kube.namespace):
        meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
        name = str(meta.get("name"))
        ports = spec.get("ports") or [{}]
        subsets = (endpoints.get(name) or {}).get("subsets") or []
        served = [s for s in subsets if s.get("ports")]
        rows.append({"name": name, "selector": ",".join(f"{k}={v}" for k, v in (spec.get("selector") or {}).items())[:300],
                     "port": ports[0].get("port"), "target_port": str(ports[0].get("targetPort", ""))[:63],
                     "ready": sum(len(s.get("addresses") or []) for s in served),
                     "not_ready": sum(len(s.get("notReadyAddresses") or []) for s in subsets)})
    return pd.DataFrame(rows, columns=["name", "selector", "port", "target_port", "ready", "not_ready"])


def cronjobs(kube: Kube) -> pd.DataFrame:
    """``kubectl get cronjobs``: what runs on a schedule, and what it runs. Columns ``name, schedule, suspend,
    last_schedule, command`` (the job's containers' command and arguments, bounded and redacted: a CronJob that
    re-applies a change names what it changes there)."""
    rows = []
    for obj in kube.items("list cronjobs", kube.batch.list_namespaced_cron_job, kube.namespace):
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        pod = ((((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("spec") or {})
        words = [str(w) for c in pod.get("containers") or [] for w in (*(c.get("command") or ()), *(c.get("args") or ()))]
        rows.append({"name": (obj.get("metadata") or {}).get("name"), "schedule": spec.get("schedule"),
                     "suspend": bool(spec.get("suspend")), "last_schedule": _time(status.get("lastScheduleTime")),
                     "command": " ".join(words)[:64 * 1024] or None})
    frame = pd.DataFrame(rows, columns=["name", "schedule", "suspend", "last_schedule", "command"])
    return _redacted_then_cut(frame, kube.config, ["command"])


# Ask for metadata only: a Secret's values never reach irkit (nor its evidence), only its name and write times.
_METADATA_ONLY = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json"


def config_changes(kube: Kube) -> pd.DataFrame:
    """``kubectl get configmaps,secrets``: when each was last written (the newest managedFields entry, else its
    creation), and by which manager; newest first. Columns: ``kind, name, changed_at, manager``.

    Secrets are listed as metadata only (PartialObjectMetadataList), so no secret value is transferred.
    """
    rows = []
    kinds = [("ConfigMap", kube.core.list_namespaced_config_map)]
    if kube.config.secret_changes:  # off where the role may not list Secrets (deploy/): it asks nothing then
        kinds.append(("Secret", kube.core.list_namespaced_secret))
    for kind, fn in kinds:
        items = kube.items(f"list {kind.lower()}s (metadata only)", fn, kube.namespace,
                           _headers={"Accept": _METADATA_ONLY})
        for item in items:
            meta = item.get("metadata") or {}
            writes = sorted((f["time"], f.get("manager") or "") for f in meta.get("managedFields") or []
                            if f.get("time"))
            changed, manager = writes[-1] if writes else (meta.get("creationTimestamp"), "")
            rows.append({"kind": kind, "name": meta.get("name"),
                         "changed_at": pd.Timestamp(changed) if changed else pd.NaT, "manager": manager})
    frame = redact_frame(pd.DataFrame(rows, columns=["kind", "name", "changed_at", "manager"]), kube.config,
                         ["manager"])  # a field manager's name is whatever the writer chose
    return frame.sort_values("changed_at", ascending=False, na_position="last").reset_index(drop=True)


def rollout_history(kube: Kube, deployment: str) -> pd.DataFrame:
    """``kubectl rollout history``: the deployment's ReplicaSets by revision.

    Columns: ``revision, replicaset, images, created, replicas, ready, change_cause,
    current``; oldest revision first. ``created`` is the deploy marker for charts.
    """
    selector = _selector(kube, deployment)
    listing = kube.call(f"list replicasets of {deployment}", kube.apps.list_namespaced_replica_set, kube.namespace,
                        label_selector=selector)
    rows = []
    for rs in listing.items:
        owners = rs.metadata.owner_references or []
        if not any(o.kind == "Deployment" and o.name == deployment for o in owners):
            continue
        annotations = rs.metadata.annotations or {}
        rows.append({
            "revision": int(annotations.get("deployment.kubernetes.io/revision", 0)),
            "replicaset": rs.metadata.name,
            "images": ", ".join(c.image for c in rs.spec.template.spec.containers),
            "created": rs.metadata.creation_timestamp,
            "replicas": rs.status.replicas or 0,
            "ready": rs.status.ready_replicas or 0,
            "change_cause": redact(str(annotations["kubernetes.io/change-cause"])[:MAX_LOG_LINE], kube.config)
            if annotations.get("kubernetes.io/change-cause") else None,
        })
    frame = pd.DataFrame(rows, columns=["revision", "replicaset", "images", "created", "replicas", "ready",
                                        "change_cause"])
    frame = frame.sort_values("revision").reset_index(drop=True)
    frame["current"] = frame["revision"] == frame["revision"].max() if not frame.empty else []
    return frame


def rollout_histories(kube: Kube, deployments: Iterable[str]) -> pd.DataFrame:
    """:func:`rollout_history` of several deployments, with a ``deployment`` column: every deploy marker."""
    frames = [rollout_history(kube, name).assign(deployment=name) for name in deployments]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["deployment"])
