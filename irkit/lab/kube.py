"""A Kubernetes API emulator over real HTTP, built on kmock, and a seeded cluster.

kmock's ``KubernetesEmulator`` stores objects and serves list/get/create/patch/
delete/watch. This module fills the gaps the official client meets when it reads
a cluster the way the playbook does:

- label and field selectors on lists (kmock ignores them);
- pod logs as ``text/plain``, current and ``previous=true``;
- the ``scale`` subresource answering a ``Scale`` (kmock answers the Deployment);
- namespaces (kmock answers 500);
- uid, resourceVersion and creationTimestamp on stored objects;
- ``metrics.k8s.io`` pods and nodes, present or absent as a scenario wants.

:class:`KubeLab` runs the emulator on a free 127.0.0.1 port in a thread of its
own, so synchronous code (the official client, papermill kernels in other
processes) talks to it over HTTP; :func:`build_cluster` turns a compact
description into Deployments, ReplicaSets with revision history, pods in given
states, events and usage metrics.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp.web
import attrs
from kmock import KubernetesEmulator, Server

from irkit.errors import DrillError

__all__ = ["Cluster", "ClusterEmulator", "KubeLab", "build_cluster", "match_fields", "match_labels"]


# --------------------------------------------------------------------------- selectors

def match_labels(selector: str, labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` satisfy a label selector (``a=b,c!=d,e in (x,y),f notin (z),g,!h``)."""
    for term in _split_terms(selector):
        term = term.strip()
        if not term:
            continue
        if " notin " in term or " in " in term:
            negate = " notin " in term
            key, _, values = term.partition(" notin " if negate else " in ")
            allowed = {v.strip() for v in values.strip().strip("()").split(",")}
            present = key.strip() in labels and labels[key.strip()] in allowed
            if present == negate:
                return False
        elif "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


def _split_terms(selector: str) -> list[str]:
    """Split on commas that are not inside ``in (...)`` sets."""
    terms, depth, current = [], 0, ""
    for char in selector:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return terms


def match_fields(selector: str, obj: Mapping[str, Any]) -> bool:
    """Whether ``obj`` satisfies a field selector (``status.phase=Running,metadata.name!=x``)."""
    for term in selector.split(","):
        if not term.strip():
            continue
        negate = "!=" in term
        path, value = term.split("!=" if negate else "=", 1)
        current: Any = obj
        for part in path.strip().lstrip("=").split("."):
            current = current.get(part) if isinstance(current, Mapping) else None
        equal = ("" if current is None else str(current)) == value.strip().lstrip("=")
        if equal == negate:
            return False
    return True


# --------------------------------------------------------------------------- the emulator

@attrs.define(kw_only=True)
class ClusterEmulator(KubernetesEmulator):
    """kmock's emulator plus what the official client needs to read a cluster like kubectl."""

    # (namespace, pod, container, previous) -> log text
    pod_logs: dict[tuple[str, str, str, bool], str] = attrs.field(factory=dict)
    namespaces: set[str] = attrs.field(factory=set)
    # Resources the caller's role may not read: answered 403 as RBAC does (a Role without "events").
    forbidden: set[str] = attrs.field(factory=set)

    async def _handle(self, request: Any) -> aiohttp.web.StreamResponse:
        plural = getattr(request.resource, "plural", None)
        if plural in self.forbidden:
            group = getattr(request.resource, "group", "") or ""
            return self._status(403, "Forbidden", f'{plural} is forbidden: User "system:serviceaccount:irkit:irkit" '
                                                  f'cannot list resource "{plural}" in API group "{group}" in the '
                                                  f'namespace "{request.namespace}"')
        if plural == "pods" and request.subresource == "log":
            return self._serve_log(request)
        if plural in ("deployments", "statefulsets") and request.subresource == "scale":
            return await self._serve_scale(request)
        return await super()._handle(request)

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        # kmock's path parser fails on /api/v1/namespaces[/NAME] itself (it reads
        # "namespaces/NAME" as the start of a namespaced path), so answer those first.
        parts = raw_request.path.strip("/").split("/")
        if parts[:3] == ["api", "v1", "namespaces"] and len(parts) <= 4 and raw_request.method == "GET":
            return self._serve_namespace(parts[3] if len(parts) == 4 else None)
        return await super().__call__(raw_request)

    async def _serve_list(self, request: Any) -> Any:
        result: dict[str, Any] = await super()._serve_list(request)  # type: ignore[assignment]
        labels = request.params.get("labelSelector", "")
        fields_ = request.params.get("fieldSelector", "")
        items = [item for item in result["items"]
                 if match_labels(labels, item.get("metadata", {}).get("labels") or {})
                 and match_fields(fields_, item)]
        limit = int(request.params.get("limit", 0) or 0)
        return {**result, "items": items[:limit] if limit else items}

    def _status(self, code: int, reason: str, message: str) -> aiohttp.web.Response:
        return aiohttp.web.json_response({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
                                          "code": code, "reason": reason, "message": message}, status=code)

    def _serve_log(self, request: Any) -> aiohttp.web.StreamResponse:
        previous = request.params.get("previous", "false") == "true"
        containers = [c for (ns, name, c, _) in self.pod_logs if ns == request.namespace and name == request.name]
        container = request.params.get("container") or (containers[0] if containers else "")
        key = (request.namespace, request.name, container, previous)
        if key not in self.pod_logs:
            if previous:
                return self._status(400, "BadRequest",
                                    f'previous terminated container "{container}" in pod "{request.name}" not found')
            return self._status(404, "NotFound", f'pods "{request.name}" not found')
        text = self.pod_logs[key]
        tail = request.params.get("tailLines")
        if tail:
            text = "".join(text.splitlines(keepends=True)[-int(tail):])
        return aiohttp.web.Response(text=text, content_type="text/plain")

    async def _serve_scale(self, request: Any) -> aiohttp.web.StreamResponse:
        key = (request.resource, request.namespace, request.name)
        async with self._lock:
            if key not in self.objects:
                return self._status(404, "NotFound", f'{request.resource.plural} "{request.name}" not found')
            obj = self.objects[key]
            if request.method.value.upper() in ("PATCH", "PUT"):
                replicas = (request.data or {}).get("spec", {}).get("replicas")
                if replicas is not None:
                    obj.patch({"spec": {"replicas": int(replicas)}})
            raw = obj.raw
        return aiohttp.web.json_response({
            "apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {"name": request.name, "namespace": request.namespace,
                         "resourceVersion": raw["metadata"].get("resourceVersion", "1")},
            "spec": {"replicas": raw.get("spec", {}).get("replicas", 0)},
            "status": {"replicas": raw.get("status", {}).get("replicas", 0),
                       "selector": ",".join(f"{k}={v}" for k, v in
                                            raw.get("spec", {}).get("selector", {}).get("matchLabels", {}).items())},
        })

    def _serve_namespace(self, name: str | None) -> aiohttp.web.StreamResponse:
        def item(name: str) -> dict[str, Any]:
            return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name},
                    "status": {"phase": "Active"}}
        if name:
            if name not in self.namespaces:
                return self._status(404, "NotFound", f'namespaces "{name}" not found')
            return aiohttp.web.json_response(item(name))
        return aiohttp.web.json_response({"apiVersion": "v1", "kind": "NamespaceList", "metadata": {},
                                          "items": [item(n) for n in sorted(self.namespaces)]})


# --------------------------------------------------------------------------- running it

@dataclass
class KubeLab:
    """The emulator on a free 127.0.0.1 port, served from a thread of its own."""

    url: str = ""
    emulator: ClusterEmulator = field(default_factory=ClusterEmulator)

    def start(self) -> KubeLab:
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="irkit-kube-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(15):
            raise DrillError("the Kubernetes API emulator did not start within 15 s")
        if self._error is not None:
            raise DrillError(f"the Kubernetes API emulator failed to start: {self._error}") from self._error
        return self

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # report start failures to start()
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        async with self.emulator as handler, Server(handler) as server:
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stopping.wait()

    def stop(self) -> None:
        if getattr(self, "_thread", None) is None or not self._thread.is_alive():
            return
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)

    def load(self, cluster: Cluster) -> None:
        """Store a cluster's objects and logs (safe while serving)."""
        async def store() -> None:
            async with self.emulator._lock:
                for resource, obj in cluster.objects:
                    meta = obj["metadata"]
                    self.emulator.objects[resource, meta.get("namespace"), meta["name"]] = obj
                self.emulator.pod_logs.update(cluster.logs)
                self.emulator.namespaces.update(cluster.namespaces)
        asyncio.run_coroutine_threadsafe(store(), self._loop).result(10)

    def write_kubeconfig(self, path: str | Path, namespace: str, context: str = "irkit-drill") -> Path:
        """A kubeconfig whose ``context`` points the official client at this emulator."""
        import json
        path = Path(path)
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": {"token": "drill-token"}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context, "namespace": namespace}}],
        }, indent=2))
        return path

    def __enter__(self) -> KubeLab:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


# --------------------------------------------------------------------------- the seeded cluster

@dataclass
class Cluster:
    """Objects to store, keyed by kmock resource, with pod logs and namespaces."""

    objects: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    logs: dict[tuple[str, str, str, bool], str] = field(default_factory=dict)
    namespaces: set[str] = field(default_factory=set)


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hash(*parts: str, length: int = 10) -> str:
    digest = hashlib.sha256("/".join(parts).encode()).hexdigest()
    # Kubernetes' pod-template-hash alphabet avoids vowels; any stable string will do here.
    return "".join(c for c in digest if c not in "aeiou")[:length]


def _meta(name: str, namespace: str | None, created: datetime, **extra: Any) -> dict[str, Any]:
    meta = {"name": name, "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{namespace}/{name}")),
            "resourceVersion": "1", "creationTimestamp": _ts(created), **extra}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def _duration(text: str | float | int) -> timedelta:
    """'20m', '3d', '90s', '2h' or seconds."""
    if isinstance(text, int | float):
        return timedelta(seconds=float(text))
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return timedelta(seconds=float(text[:-1]) * units[text[-1]])


def _render_log(text: str, now: datetime) -> str:
    """Log text with ``{ago:2m}`` placeholders turned into timestamps relative to ``now``."""
    return re.sub(r"\{ago:([0-9.]+[smhd])\}", lambda m: _ts(now - _duration(m.group(1))), text)


POD_STATES = ("running", "crashloop", "oomkilled", "imagepull", "pending", "unschedulable", "unready")


def _container_status(name: str, image: str, state: str, restarts: int, now: datetime,
                      started: datetime) -> dict[str, Any]:
    status: dict[str, Any] = {"name": name, "image": image, "imageID": "", "restartCount": restarts,
                              "ready": state == "running", "started": state == "running"}
    if state == "running":
        status["state"] = {"running": {"startedAt": _ts(started)}}
    elif state == "crashloop":
        status["state"] = {"waiting": {"reason": "CrashLoopBackOff",
                                       "message": f"back-off 5m0s restarting failed container={name}"}}
        status["lastState"] = {"terminated": {"reason": "Error", "exitCode": 2,
                                              "startedAt": _ts(now - timedelta(seconds=40)),
                                              "finishedAt": _ts(now - timedelta(seconds=30))}}
    elif state == "oomkilled":
        status["state"] = {"running": {"startedAt": _ts(now - timedelta(seconds=50))}}
        status["ready"] = True
        status["lastState"] = {"terminated": {"reason": "OOMKilled", "exitCode": 137,
                                              "startedAt": _ts(now - timedelta(minutes=4)),
                                              "finishedAt": _ts(now - timedelta(seconds=55))}}
    elif state == "imagepull":
        status["state"] = {"waiting": {"reason": "ImagePullBackOff",
                                       "message": f'Back-off pulling image "{image}"'}}
    elif state == "pending":
        status["state"] = {"waiting": {"reason": "ContainerCreating"}}
    elif state == "unschedulable":
        status["state"] = {"waiting": {"reason": "Pending"}}
    elif state == "unready":  # running, but its readiness probe never passes
        status["state"] = {"running": {"startedAt": _ts(started)}}
        status["ready"] = False
    else:
        raise DrillError(f"unknown pod state {state!r}; use {', '.join(POD_STATES)}")
    return status


def _event(namespace: str, kind: str, name: str, type_: str, reason: str, message: str, last: datetime,
           count: int = 1, first: datetime | None = None) -> tuple[str, dict[str, Any]]:
    event_name = f"{name}.{_hash(reason, message, _ts(last), length=16)}"
    return ("v1/events", {
        "apiVersion": "v1", "kind": "Event",
        "metadata": _meta(event_name, namespace, first or last),
        "involvedObject": {"kind": kind, "name": name, "namespace": namespace},
        "reason": reason, "message": message, "type": type_, "count": count,
        "firstTimestamp": _ts(first or last), "lastTimestamp": _ts(last),
        "source": {"component": "kubelet" if kind == "Pod" else "deployment-controller"},
    })


def build_cluster(spec: Mapping[str, Any], namespace: str, now: datetime | None = None) -> Cluster:
    """Deployments, StatefulSets, ReplicaSets, pods, events and metrics from a compact spec.

    ``spec`` is the ``[kubernetes]`` table of a scenario file: ``workloads`` (each with
    ``name, kind, container, replicas, revisions, pods``), ``events``, ``nodes`` and
    ``metrics_api``. See the README's scenario format.
    """
    now = now or datetime.now(UTC)
    cluster = Cluster(namespaces={namespace, "kube-system", "default"})
    metrics_api = bool(spec.get("metrics_api", True))
    nodes = list(spec.get("nodes", ["node-a", "node-b"]))
    node_usage: dict[str, tuple[float, float]] = {n: (0.0, 0.0) for n in nodes}
    for index, workload in enumerate(spec.get("workloads", [])):
        _build_workload(cluster, workload, namespace, now, nodes, index, node_usage, metrics_api)
    for node in nodes:
        cluster.objects.append(("v1/nodes", {
            "apiVersion": "v1", "kind": "Node", "metadata": _meta(node, None, now - timedelta(days=30)),
            "status": {"capacity": {"cpu": "4", "memory": "16Gi"}, "allocatable": {"cpu": "3800m", "memory": "15Gi"},
                       "conditions": [{"type": "Ready", "status": "True"}]},
        }))
        if metrics_api:
            cpu, mem = node_usage[node]
            cluster.objects.append(("metrics.k8s.io/v1beta1/nodes", {
                "apiVersion": "metrics.k8s.io/v1beta1", "kind": "NodeMetrics",
                "metadata": _meta(node, None, now), "timestamp": _ts(now), "window": "30s",
                "usage": {"cpu": f"{int(cpu + 300)}m", "memory": f"{int(mem + 1024)}Mi"},
            }))
    for extra in spec.get("events", []):
        cluster.objects.append(_event(namespace, extra.get("kind", "Pod"), extra["name"], extra.get("type", "Normal"),
                                      extra["reason"], extra["message"], now - _duration(extra.get("ago", "1m")),
                                      int(extra.get("count", 1))))
    return cluster


def _build_workload(cluster: Cluster, workload: Mapping[str, Any], namespace: str, now: datetime,
                    nodes: list[str], index: int, node_usage: dict[str, tuple[float, float]],
                    metrics_api: bool) -> None:
    name = workload["name"]
    kind = workload.get("kind", "Deployment")
    container = workload.get("container", name.split("-")[0])
    app = workload.get("app", name.removesuffix("-deployment"))
    revisions = list(workload.get("revisions", [{"image": f"registry.local/{app}:1.0.0", "age": "7d"}]))
    replicas = int(workload.get("replicas", 1))
    labels = {"app": app}
    limits = workload.get("limits", {"cpu": "1000m", "memory": "1Gi"})
    template = {"metadata": {"labels": labels}, "spec": {"containers": [
        {"name": container, "image": revisions[-1]["image"], "resources": {"limits": limits}}]}}
    created = now - _duration(revisions[0].get("age", "7d"))
    pods_spec = list(workload.get("pods", [{"count": replicas, "state": "running"}]))
    ready = sum(int(p.get("count", 1)) for p in pods_spec if p.get("state", "running") in ("running", "oomkilled"))
    resource = "apps/v1/deployments" if kind == "Deployment" else "apps/v1/statefulsets"
    cluster.objects.append((resource, {
        "apiVersion": "apps/v1", "kind": kind,
        "metadata": _meta(name, namespace, created, labels=labels, generation=len(revisions),
                          annotations={"deployment.kubernetes.io/revision": str(len(revisions))}),
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": template,
                 **({"serviceName": name} if kind == "StatefulSet" else {})},
        "status": {"replicas": replicas, "readyReplicas": ready, "updatedReplicas": replicas,
                   "availableReplicas": ready, "observedGeneration": len(revisions)},
    }))

    owner_name, owner_kind, pod_hash = name, kind, ""
    if kind == "Deployment":
        for number, revision in enumerate(revisions, start=1):
            rs_hash = _hash(name, revision["image"])
            rs_name = f"{name}-{rs_hash}"
            current = number == len(revisions)
            rs_created = now - _duration(revision.get("age", "7d"))
            annotations = {"deployment.kubernetes.io/revision": str(number)}
            if revision.get("change_cause"):
                annotations["kubernetes.io/change-cause"] = revision["change_cause"]
            cluster.objects.append(("apps/v1/replicasets", {
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": _meta(rs_name, namespace, rs_created, labels={**labels, "pod-template-hash": rs_hash},
                                  annotations=annotations,
                                  ownerReferences=[{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                                    "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{namespace}/{name}")),
                                                    "controller": True}]),
                "spec": {"replicas": replicas if current else 0,
                         "selector": {"matchLabels": {**labels, "pod-template-hash": rs_hash}},
                         "template": {**template, "spec": {"containers": [
                             {"name": container, "image": revision["image"]}]}}},
                "status": {"replicas": replicas if current else 0, "readyReplicas": ready if current else 0},
            }))
            cluster.objects.append(_event(namespace, "Deployment", name, "Normal", "ScalingReplicaSet",
                                          f"Scaled up replica set {rs_name} to {replicas}", rs_created))
            if current:
                owner_name, owner_kind, pod_hash = rs_name, "ReplicaSet", rs_hash

    ordinal = 0
    for pod_group in pods_spec:
        state = pod_group.get("state", "running")
        for _ in range(int(pod_group.get("count", 1))):
            pod_name = (f"{name}-{ordinal}" if kind == "StatefulSet"
                        else f"{owner_name}-{_hash(owner_name, str(ordinal), length=5)}")
            node = nodes[(index + ordinal) % len(nodes)]
            ordinal += 1
            restarts = int(pod_group.get("restarts", 0 if state == "running" else 5))
            started = now - _duration(pod_group.get("age", revisions[-1].get("age", "7d")))
            status = _container_status(container, revisions[-1]["image"], state, restarts, now, started)
            if pod_group.get("last_restart_ago") and state == "running":  # a crash long ago, healthy since
                ended = now - _duration(pod_group["last_restart_ago"])
                status["lastState"] = {"terminated": {"reason": "Error", "exitCode": 1,
                                                      "startedAt": _ts(ended - timedelta(hours=1)),
                                                      "finishedAt": _ts(ended)}}
            phase = "Pending" if state in ("pending", "imagepull", "unschedulable") else "Running"
            pod_labels = {**labels, **({"pod-template-hash": pod_hash} if pod_hash else {})}
            cluster.objects.append(("v1/pods", {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": _meta(pod_name, namespace, started, labels=pod_labels,
                                  ownerReferences=[{"apiVersion": "apps/v1", "kind": owner_kind, "name": owner_name,
                                                    "uid": str(uuid.uuid5(uuid.NAMESPACE_URL,
                                                                          f"{namespace}/{owner_name}")),
                                                    "controller": True}]),
                "spec": {**({"nodeName": node} if state != "unschedulable" else {}),  # never placed on a node
                         "containers": [{"name": container, "image": revisions[-1]["image"],
                                         "resources": {"limits": limits}}]},
                "status": {"phase": phase, "hostIP": "10.0.0.1", "podIP": f"10.1.{index}.{ordinal}",
                           "startTime": _ts(started),
                           "conditions": [{"type": "Ready", "status": "True" if status["ready"] else "False"}],
                           "containerStatuses": [status]},
            }))
            cluster.logs[(namespace, pod_name, container, False)] = _render_log(pod_group.get(
                "logs", f"{_ts(now)} INFO {container} serving requests\n"), now)
            if state in ("crashloop", "oomkilled") or pod_group.get("previous_logs"):
                cluster.logs[(namespace, pod_name, container, True)] = _render_log(pod_group.get(
                    "previous_logs", f"{_ts(now)} INFO {container} starting\n"), now)
            for event in _pod_events(namespace, pod_name, container, state, restarts, now, revisions[-1]["image"]):
                cluster.objects.append(event)
            if metrics_api and phase == "Running":
                cpu = float(str(pod_group.get("cpu", "150m")).removesuffix("m"))
                mem = float(str(pod_group.get("memory", "256Mi")).removesuffix("Mi"))
                used_cpu, used_mem = node_usage[node]
                node_usage[node] = (used_cpu + cpu, used_mem + mem)
                cluster.objects.append(("metrics.k8s.io/v1beta1/pods", {
                    "apiVersion": "metrics.k8s.io/v1beta1", "kind": "PodMetrics",
                    "metadata": _meta(pod_name, namespace, now, labels=pod_labels),
                    "timestamp": _ts(now), "window": "30s",
                    "containers": [{"name": container, "usage": {"cpu": f"{int(cpu)}m", "memory": f"{int(mem)}Mi"}}],
                }))


def _pod_events(namespace: str, pod: str, container: str, state: str, restarts: int, now: datetime,
                image: str) -> Iterable[tuple[str, dict[str, Any]]]:
    if state == "crashloop":
        yield _event(namespace, "Pod", pod, "Warning", "BackOff",
                     f"Back-off restarting failed container {container} in pod {pod}",
                     now - timedelta(seconds=20), count=restarts * 3, first=now - timedelta(minutes=15))
    elif state == "oomkilled":
        yield _event(namespace, "Pod", pod, "Warning", "OOMKilling",
                     f"Memory cgroup out of memory: Killed process (container {container})",
                     now - timedelta(seconds=55), count=restarts, first=now - timedelta(minutes=20))
    elif state == "imagepull":
        yield _event(namespace, "Pod", pod, "Warning", "Failed", f'Failed to pull image "{image}"',
                     now - timedelta(seconds=30), count=restarts or 3)
    elif state == "pending":
        yield _event(namespace, "Pod", pod, "Normal", "Scheduled", f"Successfully assigned {namespace}/{pod}",
                     now - timedelta(seconds=10))
    elif state == "unschedulable":
        yield _event(namespace, "Pod", pod, "Warning", "FailedScheduling",
                     "0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: 2 No "
                     "preemption victims found for incoming pod.", now - timedelta(seconds=15), count=restarts or 4)
    elif state == "unready":
        yield _event(namespace, "Pod", pod, "Warning", "Unhealthy",
                     "Readiness probe failed: HTTP probe failed with statuscode: 503", now - timedelta(seconds=5),
                     count=restarts or 20)
