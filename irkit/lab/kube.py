"""A Kubernetes API emulator over real HTTP, built on kmock, and a seeded cluster.

kmock's ``KubernetesEmulator`` stores objects and serves list/get/create/patch/
delete/watch. This module fills the gaps the official client meets when it reads
a cluster the way the playbook does:

- label and field selectors on lists (kmock ignores them);
- pod logs as ``text/plain``, current and ``previous=true``, with ``tailLines`` and ``limitBytes``;
- the ``scale`` subresource answering a ``Scale`` (kmock answers the Deployment);
- namespaces (kmock answers 500);
- uid, resourceVersion and creationTimestamp on stored objects;
- ``metrics.k8s.io`` pods and nodes, present or absent as a scenario wants;
- discovery that names each resource's kind, verbs and short names, and lists that
  carry their ``kind``, so ``kubectl`` reads the emulator like a cluster;
- writes as the API server does them: PATCH in its three formats (:mod:`irkit.lab.patches`),
  PUT with resourceVersion conflicts, DELETE, and server-side dry run (``dryRun=All``)
  that validates and answers without storing anything;
- a small controller: a Deployment's new template becomes a ReplicaSet (an old one
  when the template matches it, as ``rollout undo`` does), its pods are replaced,
  deleted pods come back, and the status follows. Pods made from the template that
  broke keep failing (:attr:`ClusterEmulator.failing`); pods from any other template run.

:class:`KubeLab` runs the emulator on a free 127.0.0.1 port in a thread of its
own, so synchronous code (the official client, papermill kernels in other
processes) talks to it over HTTP; :func:`build_cluster` turns a compact
description into Deployments, ReplicaSets with revision history, pods in given
states, events and usage metrics.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import hashlib
import json
import re
import ssl
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp.test_utils
import aiohttp.web
import attrs
from kmock import KubernetesEmulator, ResourceInfo, Server

from irkit.errors import DrillError
from irkit.lab.patches import PatchError, apply_patch

__all__ = ["Cluster", "ClusterEmulator", "JobProcess", "CLUSTER_KEYS", "ExecProcess", "KubeLab", "PodFault", "build_cluster", "match_fields", "match_labels", "signature"]


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

_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")
# What discovery says of each resource the drill serves: kind, singular, short names, namespaced, subresources.
RESOURCES: dict[str, tuple[str, str, tuple[str, ...], bool, tuple[str, ...]]] = {
    "v1/pods": ("Pod", "pod", ("po",), True, ("log", "status")),
    "v1/events": ("Event", "event", ("ev",), True, ()),
    "v1/nodes": ("Node", "node", ("no",), False, ()),
    "v1/namespaces": ("Namespace", "namespace", ("ns",), False, ()),
    "v1/configmaps": ("ConfigMap", "configmap", ("cm",), True, ()),
    "v1/secrets": ("Secret", "secret", (), True, ()),
    "apps/v1/deployments": ("Deployment", "deployment", ("deploy",), True, ("scale", "status")),
    "apps/v1/replicasets": ("ReplicaSet", "replicaset", ("rs",), True, ("scale", "status")),
    "apps/v1/statefulsets": ("StatefulSet", "statefulset", ("sts",), True, ("scale", "status")),
    "batch/v1/jobs": ("Job", "job", (), True, ("status",)),
    "batch/v1/cronjobs": ("CronJob", "cronjob", ("cj",), True, ("status",)),
    "v1/services": ("Service", "service", ("svc",), True, ("status",)),
    "v1/endpoints": ("Endpoints", "endpoints", ("ep",), True, ()),
    "v1/persistentvolumeclaims": ("PersistentVolumeClaim", "persistentvolumeclaim", ("pvc",), True, ("status",)),
    "v1/resourcequotas": ("ResourceQuota", "resourcequota", ("quota",), True, ("status",)),
    "autoscaling/v2/horizontalpodautoscalers": ("HorizontalPodAutoscaler", "horizontalpodautoscaler", ("hpa",), True,
                                                ("status",)),
    "authorization.k8s.io/v1/selfsubjectaccessreviews": ("SelfSubjectAccessReview", "", (), False, ()),
    "metrics.k8s.io/v1beta1/pods": ("PodMetrics", "", (), True, ()),
    "metrics.k8s.io/v1beta1/nodes": ("NodeMetrics", "", (), False, ()),
}
_RESTART_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
# What ``kubectl get all`` lists: the resources the API server puts in the "all" category.
_ALL = {"v1/pods", "v1/services", "apps/v1/deployments", "apps/v1/replicasets", "apps/v1/statefulsets", "batch/v1/jobs",
        "batch/v1/cronjobs", "autoscaling/v2/horizontalpodautoscalers"}


def _fields(data: bytes) -> dict[int, list[bytes | int]]:
    """The fields of one protobuf message: number -> values (varints as ints, length-delimited as bytes)."""
    fields: dict[int, list[bytes | int]] = {}
    at = 0

    def varint() -> int:
        nonlocal at
        value = shift = 0
        while True:
            byte = data[at]
            at += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value
    while at < len(data):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            fields.setdefault(number, []).append(varint())
        elif wire == 2:
            size = varint()
            fields.setdefault(number, []).append(data[at:at + size])
            at += size
        else:
            raise ValueError(f"protobuf wire type {wire} is not used by a SelfSubjectAccessReview")
    return fields


def _review_attributes(body: bytes) -> dict[str, str]:
    """spec.resourceAttributes of a SelfSubjectAccessReview in Kubernetes' protobuf envelope ("k8s\\0", then
    runtime.Unknown whose field 2 is the object): namespace, verb, group, version, resource, subresource, name."""
    if not body.startswith(b"k8s\x00"):
        raise ValueError("not the Kubernetes protobuf envelope")
    raw = _fields(body[4:]).get(2, [b""])[0]
    spec = _fields(raw if isinstance(raw, bytes) else b"").get(2, [b""])[0]
    attributes = _fields(spec if isinstance(spec, bytes) else b"").get(1, [b""])[0]
    names = ("namespace", "verb", "group", "version", "resource", "subresource", "name")
    return {names[n - 1]: v[0].decode() for n, v in _fields(attributes if isinstance(attributes, bytes) else b"").items()
            if 1 <= n <= len(names) and isinstance(v[0], bytes)}


def _key_name(resource: Any) -> str:
    group = getattr(resource, "group", "") or ""
    return f"{group + '/' if group else ''}{resource.version}/{resource.plural}"


def signature(template: Mapping[str, Any]) -> str:
    """What decides whether a pod template's pods work: each container's image and memory limit."""
    containers = (template.get("spec") or {}).get("containers") or []
    return json.dumps([[c.get("name"), c.get("image"), ((c.get("resources") or {}).get("limits") or {}).get("memory")]
                       for c in containers])


def _age(stamp: str | None) -> str:
    """kubectl's AGE: 45s, 12m, 3h, 6d."""
    if not stamp:
        return "<unknown>"
    seconds = (datetime.now(UTC) - datetime.fromisoformat(stamp.replace("Z", "+00:00"))).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size or (unit == "m" and seconds >= size):
            return f"{int(seconds // size)}{unit}"
    return f"{max(0, int(seconds))}s"


def _pod_status(pod: Mapping[str, Any]) -> str:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting")
        if waiting:
            return str(waiting.get("reason") or "Waiting")
    return str((pod.get("status") or {}).get("phase") or "Unknown")


def _columns(plural: str) -> tuple[list[str], Callable[[Mapping[str, Any]], list[Any]]]:
    """The columns ``kubectl get`` shows for a resource, and a row's cells."""
    def meta(o: Mapping[str, Any], key: str) -> Any:
        return (o.get("metadata") or {}).get(key)

    def status(o: Mapping[str, Any], key: str) -> int:
        return int((o.get("status") or {}).get(key) or 0)

    if plural == "pods":
        def pod(o: Mapping[str, Any]) -> list[Any]:
            statuses = (o.get("status") or {}).get("containerStatuses") or []
            ready = f"{sum(bool(s.get('ready')) for s in statuses)}/{len(statuses)}"
            return [meta(o, "name"), ready, _pod_status(o), sum(int(s.get("restartCount") or 0) for s in statuses),
                    _age(meta(o, "creationTimestamp"))]
        return ["Name", "Ready", "Status", "Restarts", "Age"], pod
    if plural == "deployments":
        return ["Name", "Ready", "Up-to-date", "Available", "Age"], lambda o: [
            meta(o, "name"), f"{status(o, 'readyReplicas')}/{(o.get('spec') or {}).get('replicas', 0)}",
            status(o, "updatedReplicas"), status(o, "availableReplicas"), _age(meta(o, "creationTimestamp"))]
    if plural == "statefulsets":
        return ["Name", "Ready", "Age"], lambda o: [
            meta(o, "name"), f"{status(o, 'readyReplicas')}/{(o.get('spec') or {}).get('replicas', 0)}",
            _age(meta(o, "creationTimestamp"))]
    if plural == "replicasets":
        return ["Name", "Desired", "Current", "Ready", "Age"], lambda o: [
            meta(o, "name"), (o.get("spec") or {}).get("replicas", 0), status(o, "replicas"),
            status(o, "readyReplicas"), _age(meta(o, "creationTimestamp"))]
    if plural == "events":
        return ["Last Seen", "Type", "Reason", "Object", "Message"], lambda o: [
            _age(o.get("lastTimestamp")), o.get("type"), o.get("reason"),
            f"{str((o.get('involvedObject') or {}).get('kind', '')).lower()}/"
            f"{(o.get('involvedObject') or {}).get('name', '')}", o.get("message")]
    def spec(o: Mapping[str, Any]) -> Mapping[str, Any]:
        return o.get("spec") or {}

    if plural == "horizontalpodautoscalers":
        def hpa(o: Mapping[str, Any]) -> list[Any]:
            ref = spec(o).get("scaleTargetRef") or {}
            now = next((m.get("resource", {}).get("current", {}).get("averageUtilization")
                        for m in (o.get("status") or {}).get("currentMetrics") or []), None)
            want = next((m.get("resource", {}).get("target", {}).get("averageUtilization")
                         for m in spec(o).get("metrics") or []), None)
            return [meta(o, "name"), f"{ref.get('kind')}/{ref.get('name')}",
                    f"cpu: {'<unknown>' if now is None else f'{now}%'}/{want}%", spec(o).get("minReplicas"),
                    spec(o).get("maxReplicas"), status(o, "currentReplicas"), _age(meta(o, "creationTimestamp"))]
        return ["Name", "Reference", "Targets", "MinPods", "MaxPods", "Replicas", "Age"], hpa
    if plural == "services":
        return ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"], lambda o: [
            meta(o, "name"), spec(o).get("type", "ClusterIP"), spec(o).get("clusterIP", ""), "<none>",
            ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec(o).get("ports") or []),
            _age(meta(o, "creationTimestamp"))]
    if plural == "cronjobs":
        return ["Name", "Schedule", "Suspend", "Active", "Last Schedule", "Age"], lambda o: [
            meta(o, "name"), spec(o).get("schedule"), str(bool(spec(o).get("suspend"))), 0,
            _age((o.get("status") or {}).get("lastScheduleTime")), _age(meta(o, "creationTimestamp"))]
    if plural == "persistentvolumeclaims":
        return ["Name", "Status", "Capacity", "Access Modes", "StorageClass", "Age"], lambda o: [
            meta(o, "name"), (o.get("status") or {}).get("phase"),
            ((o.get("status") or {}).get("capacity") or {}).get("storage"), "RWO", spec(o).get("storageClassName"),
            _age(meta(o, "creationTimestamp"))]
    if plural == "nodes":
        def node(o: Mapping[str, Any]) -> list[Any]:
            conditions = {c.get("type"): c.get("status") for c in (o.get("status") or {}).get("conditions") or []}
            ready = "Ready" if conditions.get("Ready") == "True" else "NotReady"
            return [meta(o, "name"), ready + (",SchedulingDisabled" if spec(o).get("unschedulable") else ""),
                    _age(meta(o, "creationTimestamp"))]
        return ["Name", "Status", "Age"], node
    return ["Name", "Age"], lambda o: [meta(o, "name"), _age(meta(o, "creationTimestamp"))]


def _pruned(value: Any) -> Any:
    """``value`` without null or empty fields: how Go's omitempty leaves a template (kubectl sends
    ``creationTimestamp: null``)."""
    if isinstance(value, Mapping):
        pruned = {k: _pruned(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


_QUANTITY = re.compile(r"^([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_SCALE = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30,
          "Ti": 2**40}


def _amount(text: Any) -> Any:
    """A resource quantity as a number ("1000m" and "1" are one CPU, as the API server stores them)."""
    match = _QUANTITY.match(str(text))
    return float(match.group(1)) * _SCALE[match.group(2)] if match else text


def _bare(template: Mapping[str, Any]) -> str:
    """A pod template without the pod-template-hash label, as JSON: how a ReplicaSet is matched to a template."""
    bare = _pruned(template)
    (bare.get("metadata") or {}).get("labels", {}).pop("pod-template-hash", None)
    for container in (bare.get("spec") or {}).get("containers") or []:
        for table in (container.get("resources") or {}).values():
            table.update({k: _amount(v) for k, v in table.items()})
    return json.dumps(_pruned(bare), sort_keys=True)


@attrs.define(kw_only=True)
class ClusterEmulator(KubernetesEmulator):
    """kmock's emulator plus what the official client and kubectl need to read and change a cluster."""

    # (namespace, pod, container, previous) -> log text
    pod_logs: dict[tuple[str, str, str, bool], str] = attrs.field(factory=dict)
    namespaces: set[str] = attrs.field(factory=set)
    # Resources the caller's role may not read: answered 403 as RBAC does (a Role without "events").
    forbidden: set[str] = attrs.field(factory=set)
    # (namespace, workload) -> (template signature, or None for any template; pod state): pods the controller
    # makes from that template start in that state (the bad revision crashes again); from any other, they run.
    failing: dict[tuple[str, str], tuple[str | None, PodFault]] = attrs.field(factory=dict)
    # Called (off the lock, in the emulator's thread) with (namespace, pod, workload) once a deleted pod is back.
    on_pod_replaced: list[Callable[[str, str, str], None]] = attrs.field(factory=list)
    metrics_api: bool = True
    # Bearer tokens the API server accepts; empty: any caller (a drill). Others are answered 401, as a
    # token that expired or was never issued is.
    tokens: set[str] = attrs.field(factory=set)
    # Runs a created Job's pod (a kubelet's part): (succeeded, what its container said); None: Jobs only stored.
    run_job: Callable[[dict[str, Any]], tuple[bool, str]] | None = None
    # Runs an exec'd command "in" a container (a kubelet's part): (namespace, pod, container, argv) -> (exit code,
    # stdout, stderr); None: exec answers that the emulator runs no container processes.
    run_exec: Callable[[str, str, str, list[str]], tuple[int, bytes, bytes]] | None = None
    _version: int = 1000
    _made: int = 0

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for key in RESOURCES:
            if key.startswith("metrics.k8s.io"):
                continue  # declared by load() when the scenario has a metrics API
            self.declare(key)

    def declare(self, key: str) -> None:
        kind, singular, short, namespaced, subresources = RESOURCES[key]
        verbs = ("get", "list") if key.startswith("metrics.k8s.io") else ("create",) if key.startswith(
            "authorization.k8s.io") else _VERBS
        self.resources[key] = ResourceInfo(kind=kind, singular=singular or kind.lower(), shortnames=set(short),
                                           namespaced=namespaced, verbs=set(verbs), subresources=set(subresources),
                                           categories={"all"} if key in _ALL else set())

    async def _handle(self, request: Any) -> aiohttp.web.StreamResponse:
        if self.tokens:
            auth = next((v for k, v in request.headers.items() if k.lower() == "authorization"), "")
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or token.strip() not in self.tokens:
                return self._status(401, "Unauthorized", "Unauthorized")
        plural = getattr(request.resource, "plural", None)
        if plural in self.forbidden:
            group = getattr(request.resource, "group", "") or ""
            return self._status(403, "Forbidden", f'{plural} is forbidden: User "system:serviceaccount:irkit:irkit" '
                                                  f'cannot list resource "{plural}" in API group "{group}" in the '
                                                  f'namespace "{request.namespace}"')
        if plural == "selfsubjectaccessreviews":
            return await self._access_review(request)
        if plural == "pods" and request.subresource == "log":
            return self._serve_log(request)
        if plural == "pods" and request.subresource == "exec":
            return await self._exec(request)
        if plural in ("deployments", "statefulsets", "replicasets") and request.subresource == "scale":
            return await self._serve_scale(request)
        method = request.method.value.upper()
        if request.resource is not None and method == "GET" and request.params.get("watch") in ("true", "1"):
            return await self._watch(request)
        accept = next((v for k, v in request.headers.items() if k.lower() == "accept"), "")
        if request.resource is not None and method == "GET" and "as=PartialObjectMetadataList" in accept:
            listing = await self._serve_list(request)  # metadata only, as the API server answers it
            return aiohttp.web.json_response({
                "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": listing["metadata"],
                "items": [{"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                           "metadata": item.get("metadata") or {}} for item in listing["items"]]})
        if request.resource is not None and method == "GET" and "as=Table" in accept and not request.subresource:
            return await self._table(request)
        if request.resource is not None and request.name and not request.subresource \
                and method in ("PATCH", "PUT", "DELETE"):
            return await self._write(request, method)
        if request.resource is not None and method == "POST" and request.params.get("dryRun") == "All":
            return aiohttp.web.json_response(request.data)  # a dry-run create stores nothing
        response = await super()._handle(request)
        if self.run_job is not None and method == "POST" and getattr(request.resource, "plural", "") == "jobs" \
                and response.status in (200, 201) and isinstance(request.data, dict):
            threading.Thread(target=self._run_job, args=(request.data,), name="irkit-emulated-job", daemon=True).start()
        return response

    def _run_job(self, job: dict[str, Any]) -> None:
        """Run a created Job's pod through :attr:`run_job`, then write its status as the Job controller does."""
        ok, message = self.run_job(job) if self.run_job is not None else (False, "")
        meta = job["metadata"]
        condition = {"type": "Complete" if ok else "Failed", "status": "True",
                     "reason": "Completed" if ok else "BackoffLimitExceeded", "message": message[-300:]}
        status = {"succeeded": 1} if ok else {"failed": 1}
        for key, obj in list(self.objects.items()):
            if key[0].plural == "jobs" and key[1] == meta.get("namespace") and key[2] == meta["name"]:
                self.objects[key] = {**obj.raw, "status": {**status, "conditions": [condition]}}

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        # kmock's path parser fails on /api/v1/namespaces[/NAME] itself (it reads
        # "namespaces/NAME" as the start of a namespaced path), so answer those first.
        parts = raw_request.path.strip("/").split("/")
        if parts[:3] == ["api", "v1", "namespaces"] and len(parts) <= 4 and raw_request.method == "GET":
            return self._serve_namespace(parts[3] if len(parts) == 4 else None)
        return await super().__call__(raw_request)

    async def _serve_version(self, request: Any) -> Any:
        result: dict[str, Any] = await super()._serve_version(request)  # type: ignore[assignment]
        result["groupVersion"] = result["groupVersion"].lstrip("/")  # the core group is "v1", not "/v1"
        for entry in result["resources"]:
            if "/" in entry["name"]:  # a subresource: no short names of its own (kubectl warns of ambiguity)
                entry.update(shortNames=[], singularName="", verbs=["get", "patch", "update"], categories=[])
        return result

    async def _table(self, request: Any) -> aiohttp.web.StreamResponse:
        """What kubectl asks ``get`` for: a Table with the columns the API server prints (kubectl prints them)."""
        try:
            listing = await self._serve_list(request)
        except Exception:  # an unknown resource: let kmock answer it as it does
            return await super()._handle(request)
        items = [i for i in listing["items"] if not request.name or i["metadata"].get("name") == request.name]
        if request.name and not items:
            return self._status(404, "NotFound", f'{request.resource.plural} "{request.name}" not found')
        names, cells = _columns(request.resource.plural)
        return aiohttp.web.json_response({
            "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": str(self._version)},
            "columnDefinitions": [{"name": n, "type": "string", "format": "name" if n == "Name" else "",
                                   "description": "", "priority": 0} for n in names],
            "rows": [{"cells": cells(item), "object": item} for item in items]})

    async def _watch(self, request: Any) -> aiohttp.web.StreamResponse:
        """A watch as JSON lines: the objects there are now, then the stream ends (clients watch again).

        kmock streams as application/octet-stream, which client-go refuses; the drill's writes
        are seen by the next watch, within a second.
        """
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request._raw_request)
        listing = await self._serve_list(request)
        for item in listing["items"]:
            if request.name and item["metadata"].get("name") != request.name:
                continue
            await response.write(json.dumps({"type": "ADDED", "object": item}).encode() + b"\n")
        await asyncio.sleep(min(1.0, float(request.params.get("timeoutSeconds") or 1)))
        await response.write_eof()
        return response

    async def _serve_list(self, request: Any) -> Any:
        result: dict[str, Any] = await super()._serve_list(request)  # type: ignore[assignment]
        labels = request.params.get("labelSelector", "")
        fields_ = request.params.get("fieldSelector", "")
        group = getattr(request.resource, "group", "") or ""
        api_version = f"{group}/{request.resource.version}" if group else request.resource.version
        items = [item for item in result["items"]
                 if item.get("apiVersion", api_version) == api_version  # pods, not metrics.k8s.io's pods
                 and match_labels(labels, item.get("metadata", {}).get("labels") or {})
                 and match_fields(fields_, item)]
        limit = int(request.params.get("limit", 0) or 0)
        kind = RESOURCES.get(_key_name(request.resource), (request.resource.plural.capitalize(),))[0]
        return {**result, "apiVersion": api_version, "kind": f"{kind}List",
                "metadata": {"resourceVersion": str(self._version)}, "items": items[:limit] if limit else items}

    # ------------------------------------------------------------------ writes

    def _live(self, plural: str, namespace: str) -> list[tuple[Any, dict[str, Any]]]:
        """(key, object) of every stored object of ``plural`` in ``namespace``."""
        return [(key, obj.raw) for key, obj in self.objects.items()
                if key[0].plural == plural and key[1] == namespace and not obj.deleted]

    def _get(self, plural: str, namespace: str, name: str) -> tuple[Any, dict[str, Any]] | None:
        return next(((k, o) for k, o in self._live(plural, namespace) if k[2] == name), None)

    def _put(self, key: Any, obj: dict[str, Any]) -> None:
        self._version += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._version)
        self.objects[key] = obj

    async def _exec(self, request: Any) -> aiohttp.web.StreamResponse:
        """``kubectl exec`` over the WebSocket remote-command protocol (``v5.channel.k8s.io``, ``v4``): each
        binary message starts with its channel (1 stdout, 2 stderr, 3 the status as JSON). The command runs through
        :attr:`run_exec`; stdin is not read (the plan's lines carry their input in arguments)."""
        raw = request._raw_request
        found = self._get("pods", request.namespace, request.name)
        if found is None:
            return self._status(404, "NotFound", f'pods "{request.name}" not found')
        containers = [c["name"] for c in (found[1].get("spec") or {}).get("containers") or []]
        container = raw.query.get("container") or (containers[0] if containers else "")
        if container not in containers:
            return self._status(400, "BadRequest", f"container {container} is not valid for pod {request.name}")
        argv = raw.query.getall("command", [])
        socket = aiohttp.web.WebSocketResponse(protocols=("v5.channel.k8s.io", "v4.channel.k8s.io"))
        if not socket.can_prepare(raw).ok:
            return self._status(400, "BadRequest", "exec needs a WebSocket upgrade (v5.channel.k8s.io); this API "
                                                   "server does not speak SPDY")
        await socket.prepare(raw)
        if self.run_exec is None:
            code, out, err = 126, b"", b"the drill's emulator runs no container processes\n"
        else:
            code, out, err = await asyncio.to_thread(self.run_exec, request.namespace, request.name, container, argv)
        for channel, data in ((1, out), (2, err)):
            if data:
                await socket.send_bytes(bytes([channel]) + data)
        status = ({"metadata": {}, "status": "Success"} if code == 0 else {
            "metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
            "message": f"command terminated with non-zero exit code: error executing command {argv}: exit {code}",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}})
        await socket.send_bytes(b"\x03" + json.dumps(status).encode())
        await socket.close()
        return socket

    async def _access_review(self, request: Any) -> aiohttp.web.StreamResponse:
        """``kubectl auth can-i``: answered from what this API server lets the caller do (every verb, except on
        the resources RBAC forbids it: :attr:`forbidden`)."""
        body = await request._raw_request.read()
        try:
            if "protobuf" in request._raw_request.content_type:  # kubectl sends this one as protobuf
                review = {"spec": {"resourceAttributes": _review_attributes(body)}}
            else:
                review = json.loads(body or b"{}")
        except (ValueError, IndexError) as exc:
            return self._status(400, "BadRequest", f"the body cannot be read: {exc}")
        review = review if isinstance(review, dict) else {}
        attributes = (review.get("spec") or {}).get("resourceAttributes") or {}
        resource = str(attributes.get("resource") or "")
        allowed = resource not in self.forbidden
        reason = "" if allowed else f'RBAC: the drill\'s role does not grant "{resource}"'
        return aiohttp.web.json_response({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": review.get("spec") or {},
            "status": {"allowed": allowed, **({"reason": reason} if reason else {})}}, status=201)

    def _drop(self, key: Any) -> None:
        """Delete a stored object; a pod's usage (metrics.k8s.io) goes with it, as metrics-server forgets it."""
        del self.objects[key]
        if key[0].plural == "pods" and not getattr(key[0], "group", ""):
            for usage in [k for k in self.objects if k[0].plural == "pods" and getattr(k[0], "group", "") ==
                          "metrics.k8s.io" and k[1:] == key[1:]]:
                del self.objects[usage]

    async def _write(self, request: Any, method: str) -> aiohttp.web.StreamResponse:
        key = (request.resource, request.namespace, request.name)
        dry = request.params.get("dryRun") == "All"
        kind = RESOURCES.get(_key_name(request.resource), ("Object",))[0]
        replaced: list[tuple[str, str, str]] = []
        async with self._lock:
            if key not in self.objects or self.objects[key].deleted:
                return self._status(404, "NotFound", f'{request.resource.plural} "{request.name}" not found')
            current = copy.deepcopy(self.objects[key].raw)
            if method == "DELETE":
                if not dry:
                    self._drop(key)
                    if kind == "Pod":
                        replaced = self._replace_pod(request.namespace, current)
                result = current
            else:
                try:
                    if method == "PATCH":
                        headers = {k.lower(): v for k, v in request.headers.items()}
                        new = apply_patch(current, request.data, headers.get("content-type", ""))
                    else:
                        if not isinstance(request.data, dict):
                            raise PatchError("the body is not an object")
                        new = copy.deepcopy(request.data)
                        sent = (new.get("metadata") or {}).get("resourceVersion")
                        if sent and sent != current["metadata"].get("resourceVersion"):
                            return self._status(409, "Conflict", f'Operation cannot be fulfilled on {kind.lower()}s '
                                                                 f'"{request.name}": the object has been modified; '
                                                                 "please apply your changes to the latest version "
                                                                 "and try again")
                    self._validate(kind, request.name, new)
                except PatchError as exc:
                    return self._status(422, "Invalid", f'{kind} "{request.name}" is invalid: {exc}')
                meta = new.setdefault("metadata", {})
                for kept in ("uid", "creationTimestamp", "namespace", "name"):
                    if kept in current["metadata"]:
                        meta[kept] = current["metadata"][kept]
                if new.get("spec") != current.get("spec"):
                    meta["generation"] = int(current["metadata"].get("generation", 1)) + 1
                    # Who wrote it, as the API server records it (kubectl-rollout, kubectl-set, a controller...).
                    manager = request.params.get("fieldManager") or "unknown"
                    meta["managedFields"] = [*(f for f in current["metadata"].get("managedFields") or []
                                               if f.get("manager") != manager),
                                             {"manager": manager, "operation": "Update",
                                              "time": _ts(datetime.now(UTC)),
                                              "fieldsV1": _fields_v1(_changed(current.get("spec"), new.get("spec")),
                                                                     "spec")}][-8:]
                if dry:
                    return aiohttp.web.json_response(new)
                self._put(key, new)
                if kind == "Deployment":
                    self._reconcile(request.namespace, request.name)
                result = self.objects[key].raw
        for args in replaced:
            for hook in self.on_pod_replaced:
                hook(*args)
        return aiohttp.web.json_response(result)

    @staticmethod
    def _validate(kind: str, name: str, obj: Mapping[str, Any]) -> None:
        """What the API server refuses (enough for the drill): a renamed object, bad replicas, nameless containers."""
        if (obj.get("metadata") or {}).get("name", name) != name:
            raise PatchError("metadata.name: the name of an object cannot change")
        spec = obj.get("spec") or {}
        if kind in ("Deployment", "StatefulSet", "ReplicaSet"):
            replicas = spec.get("replicas", 1)
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise PatchError(f"spec.replicas: Invalid value: {replicas!r}: must be a non-negative integer")
            containers = ((spec.get("template") or {}).get("spec") or {}).get("containers")
            if not containers:
                raise PatchError("spec.template.spec.containers: Required value")
            for index, container in enumerate(containers):
                for needed in ("name", "image"):
                    if not isinstance(container, Mapping) or not container.get(needed):
                        raise PatchError(f"spec.template.spec.containers[{index}].{needed}: Required value")

    # ------------------------------------------------------------------ the controller

    def _pod_state(self, namespace: str, workload: str, template: Mapping[str, Any]) -> PodFault:
        sig, fault = self.failing.get((namespace, workload), (None, PodFault()))
        return fault if sig is None or sig == signature(template) else PodFault()

    def _reconcile(self, namespace: str, name: str) -> None:
        """The Deployment controller, at once: the ReplicaSet for its template, the pods, the status."""
        dkey, dep = self._get("deployments", namespace, name) or (None, None)
        if dep is None:
            return
        dep = copy.deepcopy(dep)
        template, replicas = dep["spec"]["template"], int(dep["spec"].get("replicas", 1))
        owned = [(k, rs) for k, rs in self._live("replicasets", namespace)
                 if any(o.get("name") == name for o in rs["metadata"].get("ownerReferences") or [])]
        revisions = [int(rs["metadata"].get("annotations", {}).get("deployment.kubernetes.io/revision", 0))
                     for _, rs in owned]
        top = max(revisions, default=0)
        current = next(((k, rs) for k, rs in owned if _bare(rs["spec"]["template"]) == _bare(template)), None)
        now = datetime.now(UTC)
        if current is None:
            rs_hash = _hash(name, _bare(template))
            rs_name = f"{name}-{rs_hash}"
            labels = {**((template.get("metadata") or {}).get("labels") or {}), "pod-template-hash": rs_hash}
            rs: dict[str, Any] = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                  "metadata": _meta(rs_name, namespace, now, labels=labels,
                                    annotations={"deployment.kubernetes.io/revision": str(top + 1)},
                                    ownerReferences=[_owner("Deployment", name, dep["metadata"]["uid"])]),
                  "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                           "template": {**copy.deepcopy(template),
                                        "metadata": {**(template.get("metadata") or {}), "labels": labels}}},
                  "status": {"replicas": 0, "readyReplicas": 0}}
            current = (("apps/v1/replicasets", namespace, rs_name), rs)
            owned.append(current)
            self._put(current[0], rs)
            self._event(namespace, "Deployment", name, f"Scaled up replica set {rs_name} to {replicas}")
        elif int(current[1]["metadata"]["annotations"].get("deployment.kubernetes.io/revision", 0)) != top:
            current[1]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = str(top + 1)  # rolled back
        revision = current[1]["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        rs_name = current[1]["metadata"]["name"]
        pods = [(k, p) for k, p in self._live("pods", namespace)
                if any(o.get("kind") == "ReplicaSet" and o.get("name") in {rs["metadata"]["name"] for _, rs in owned}
                       for o in p["metadata"].get("ownerReferences") or [])]
        mine = [(k, p) for k, p in pods if p["metadata"]["ownerReferences"][0]["name"] == rs_name]
        for k, p in pods:
            if (k, p) not in mine:
                self._drop(k)
        for k, _ in mine[replicas:]:
            self._drop(k)
        mine = mine[:replicas]
        state = self._pod_state(namespace, name, template)
        rs_hash = current[1]["spec"]["selector"]["matchLabels"].get("pod-template-hash", "")
        while len(mine) < replicas:
            self._made += 1
            pod_name = f"{rs_name}-{_hash(rs_name, str(self._made), str(now), length=5)}"
            mine.append(self._make_pod(namespace, pod_name, current[1]["spec"]["template"], state,
                                       ("ReplicaSet", rs_name, current[1]["metadata"]["uid"]), rs_hash))
        ready = sum(bool(p["status"]["conditions"][0]["status"] == "True") for _, p in mine)
        for k, rs in owned:
            rs = copy.deepcopy(rs)
            rs["spec"]["replicas"] = replicas if rs["metadata"]["name"] == rs_name else 0
            rs["status"] = {"replicas": rs["spec"]["replicas"],
                            "readyReplicas": ready if rs["metadata"]["name"] == rs_name else 0}
            self._put(k, rs)
        dep["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = revision
        dep["status"] = {"replicas": replicas, "readyReplicas": ready, "updatedReplicas": replicas,
                         "availableReplicas": ready, "observedGeneration": dep["metadata"].get("generation", 1)}
        self._put(dkey, dep)

    def _replace_pod(self, namespace: str, pod: Mapping[str, Any]) -> list[tuple[str, str, str]]:
        """A deleted pod's controller makes it again: a new pod for a ReplicaSet, the same name for a StatefulSet."""
        owner = next(iter(pod["metadata"].get("ownerReferences") or []), None)
        if owner is None:
            return []
        if owner.get("kind") == "StatefulSet":
            found = self._get("statefulsets", namespace, owner["name"])
            if found is None:
                return []
            template = found[1]["spec"]["template"]
            state = self._pod_state(namespace, owner["name"], template)
            self._make_pod(namespace, pod["metadata"]["name"], template, state,
                           ("StatefulSet", owner["name"], owner.get("uid", "")), "")
            sts = copy.deepcopy(found[1])
            pods = [p for _, p in self._live("pods", namespace)
                    if any(o.get("name") == owner["name"] for o in p["metadata"].get("ownerReferences") or [])]
            sts["status"] = {**(sts.get("status") or {}), "replicas": len(pods), "readyReplicas": sum(
                p["status"]["conditions"][0]["status"] == "True" for p in pods)}
            self._put(found[0], sts)
            return [(namespace, pod["metadata"]["name"], owner["name"])]
        found_rs = self._get("replicasets", namespace, owner.get("name", ""))
        deployment = next((o["name"] for o in (found_rs[1]["metadata"].get("ownerReferences") or [])), None) \
            if found_rs else None
        if deployment is None:
            return []
        self._reconcile(namespace, deployment)
        return [(namespace, pod["metadata"]["name"], deployment)]

    def _make_pod(self, namespace: str, name: str, template: Mapping[str, Any], fault: PodFault,
                  owner: tuple[str, str, str], rs_hash: str) -> tuple[Any, dict[str, Any]]:
        """A new pod from ``template``: its app container (the first) as ``fault`` says, the others running, its
        init containers completed; it prints what a pod of that fault printed (or that it serves)."""
        now = datetime.now(UTC)
        spec = copy.deepcopy(template.get("spec") or {})
        containers = spec.get("containers") or []
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        if rs_hash:
            labels["pod-template-hash"] = rs_hash
        statuses = [_container_status(c["name"], c.get("image", ""), fault if i == 0 else PodFault(), 0, now, now)
                    for i, c in enumerate(containers)]
        ready = all(s["ready"] for s in statuses)
        status: dict[str, Any] = {
            "phase": "Pending" if fault.state in ("pending", "imagepull", "unschedulable") else "Running",
            "startTime": _ts(now), "podIP": "10.2.0.1",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}], "containerStatuses": statuses}
        if spec.get("initContainers"):
            status["initContainerStatuses"] = [_init_status(c, PodFault("completed"), 0, now, now)
                                               for c in spec["initContainers"]]
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {**_meta(name, namespace, now, labels=labels,
                                    ownerReferences=[_owner(owner[0], owner[1], owner[2])]),
                            "uid": str(uuid.uuid4())},  # a new pod, even under an old name
               "spec": {"nodeName": "node-a", **spec}, "status": status}
        key = ("v1/pods", namespace, name)
        self._put(key, pod)
        for i, c in enumerate(containers):
            broken = i == 0 and fault.state != "running"
            self.pod_logs[(namespace, name, c["name"], False)] = (
                fault.logs if broken and fault.logs is not None else f"{_ts(now)} INFO {c['name']} serving requests\n")
            if broken and fault.previous_logs is not None:
                self.pod_logs[(namespace, name, c["name"], True)] = fault.previous_logs
            else:
                self.pod_logs.pop((namespace, name, c["name"], True), None)
        if self.metrics_api and fault.state == "running":
            self._put(("metrics.k8s.io/v1beta1/pods", namespace, name), {
                "apiVersion": "metrics.k8s.io/v1beta1", "kind": "PodMetrics",
                "metadata": _meta(name, namespace, now, labels=labels), "timestamp": _ts(now), "window": "30s",
                "containers": [{"name": c["name"], "usage": {"cpu": "120m", "memory": "200Mi"}} for c in containers]})
        return key, pod

    def _event(self, namespace: str, kind: str, name: str, message: str) -> None:
        resource, event = _event(namespace, kind, name, "Normal", "ScalingReplicaSet", message, datetime.now(UTC))
        self._put((resource, namespace, event["metadata"]["name"]), event)

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
        limit = request.params.get("limitBytes")  # as the kubelet: stop after that many bytes of the output
        body = text.encode()[:int(limit)] if limit else text.encode()
        return aiohttp.web.Response(body=body, content_type="text/plain", charset="utf-8")

    async def _serve_scale(self, request: Any) -> aiohttp.web.StreamResponse:
        key = (request.resource, request.namespace, request.name)
        async with self._lock:
            if key not in self.objects or self.objects[key].deleted:
                return self._status(404, "NotFound", f'{request.resource.plural} "{request.name}" not found')
            raw = copy.deepcopy(self.objects[key].raw)
            if request.method.value.upper() in ("PATCH", "PUT"):
                replicas = ((request.data or {}).get("spec") or {}).get("replicas")
                if replicas is not None:
                    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                        return self._status(422, "Invalid", f"spec.replicas: Invalid value: {replicas!r}: must be "
                                                            "a non-negative integer")
                    raw["spec"]["replicas"] = replicas
                    if request.params.get("dryRun") != "All":
                        raw["metadata"]["generation"] = int(raw["metadata"].get("generation", 1)) + 1
                        self._put(key, raw)
                        if request.resource.plural == "deployments":
                            self._reconcile(request.namespace, request.name)
                        raw = self.objects[key].raw
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
    # Serve HTTPS with this context (a certificate for 127.0.0.1), as an API server does in a cluster.
    tls: ssl.SSLContext | None = None

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
        server_cls = _tls_server(self.tls) if self.tls is not None else aiohttp.test_utils.RawTestServer
        async with self.emulator as handler, Server(handler, server_cls=server_cls) as server:
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
                self.emulator.failing.update(cluster.failing)
                self.emulator.metrics_api = cluster.metrics_api
                if cluster.metrics_api:
                    self.emulator.declare("metrics.k8s.io/v1beta1/pods")
                    self.emulator.declare("metrics.k8s.io/v1beta1/nodes")
        asyncio.run_coroutine_threadsafe(store(), self._loop).result(10)

    def objects(self, plural: str, *, group: str | None = None, name: str | None = None,
                prefix: str | None = None) -> list[dict[str, Any]]:
        """The stored objects of a resource (``pods``, ``deployments``, ``statefulsets``...; of the API ``group``
        when given, "" for the core one) that are not deleted, as the API serves them: all, the one called
        ``name``, or those whose name starts with ``prefix``."""
        for _ in range(3):  # the emulator's thread may change the table while it is copied: copy again
            try:
                found = list(self.emulator.objects.items())
                break
            except RuntimeError:
                continue
        else:
            return []
        return [o.raw for k, o in found if k[0].plural == plural and group in (None, k[0].group) and not o.deleted
                and (name is None or k[2] == name) and (prefix is None or k[2].startswith(prefix))]

    @property
    def requests(self) -> list[Any]:
        """Every request served so far, as kmock recorded it (method, resource, namespace, name, headers)."""
        return list(self.emulator)

    def write_service_account(self, directory: str | Path, token: str, ca_pem: bytes,
                              namespace: str = "irkit") -> dict[str, str]:
        """What a pod's service account mount holds (token, ca.crt, namespace) in ``directory``; returns the
        environment the kubelet gives the pod (KUBERNETES_SERVICE_HOST/PORT) for this emulator."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "token").write_text(token)
        (directory / "ca.crt").write_bytes(ca_pem)
        (directory / "namespace").write_text(namespace)
        host, _, port = self.url.split("://", 1)[1].rpartition(":")
        return {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port}

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


@dataclass
class JobProcess:
    """A kubelet for the emulator's Jobs (:attr:`ClusterEmulator.run_job`): runs the Job's one container as a local
    process of ``command`` (the image's entrypoint: the irkit script) with the container's args and its plain env
    values, ``env`` on top (what the pod's volumes would give it: the service account mount, the config file), within
    the Job's ``activeDeadlineSeconds``. Succeeded is exit 0, as for a pod."""

    command: list[str]
    env: Mapping[str, str] = field(default_factory=dict)

    def __call__(self, job: dict[str, Any]) -> tuple[bool, str]:
        import os
        import subprocess
        [container] = job["spec"]["template"]["spec"]["containers"]
        env = {**os.environ, **{e["name"]: str(e["value"]) for e in container.get("env") or [] if "value" in e},
               **self.env}
        deadline = float(job["spec"].get("activeDeadlineSeconds") or 600)
        try:
            proc = subprocess.run([*self.command, *(container.get("args") or [])], env=env, capture_output=True,
                                  text=True, timeout=deadline)
        except subprocess.TimeoutExpired:
            return False, f"DeadlineExceeded: the pod ran longer than {deadline:.0f} s"
        return proc.returncode == 0, f"exit {proc.returncode}: {(proc.stderr or '').strip()[-250:]}"


@dataclass
class ExecProcess:
    """A kubelet for ``kubectl exec`` in a drill (:attr:`ClusterEmulator.run_exec`): the commands the plan prints
    run as local processes with ``env`` (the drill's PostgreSQL as PGHOST/PGPORT/PGPASSFILE), so ``psql`` reaches
    the drill's database and ``curl`` its API. Only ``allowed`` programs run (the drill's containers have nothing
    else); each within ``timeout`` seconds, its output bounded."""

    env: Mapping[str, str] = field(default_factory=dict)
    allowed: tuple[str, ...] = ("psql", "curl")
    timeout: float = 30.0
    limit: int = 1 << 20

    def __call__(self, namespace: str, pod: str, container: str, argv: list[str]) -> tuple[int, bytes, bytes]:
        import os
        import shutil
        import subprocess
        if not argv or argv[0] not in self.allowed or shutil.which(argv[0]) is None:
            name = argv[0] if argv else ""
            return 127, b"", f'exec: "{name}": executable file not found in $PATH (the drill runs only: ' \
                             f'{", ".join(self.allowed)})\n'.encode()
        try:
            proc = subprocess.run(argv, env={**os.environ, **self.env}, capture_output=True, timeout=self.timeout,
                                  stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired:
            return 124, b"", f"{argv[0]} ran longer than {self.timeout:.0f} s in {pod}/{container}\n".encode()
        return proc.returncode, proc.stdout[: self.limit], proc.stderr[: self.limit]


def _tls_server(context: ssl.SSLContext) -> type[aiohttp.test_utils.RawTestServer]:
    """kmock's server class, listening with TLS (aiohttp's test server takes the context at start)."""
    class TLSServer(aiohttp.test_utils.RawTestServer):
        async def start_server(self, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any) -> None:
            await super().start_server(loop, ssl=context, **kwargs)
    return TLSServer


# --------------------------------------------------------------------------- the seeded cluster

@dataclass
class Cluster:
    """Objects to store, keyed by kmock resource, with pod logs and namespaces."""

    objects: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    logs: dict[tuple[str, str, str, bool], str] = field(default_factory=dict)
    namespaces: set[str] = field(default_factory=set)
    failing: dict[tuple[str, str], tuple[str | None, PodFault]] = field(default_factory=dict)  # see ClusterEmulator
    metrics_api: bool = True


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hash(*parts: str, length: int = 10) -> str:
    digest = hashlib.sha256("/".join(parts).encode()).hexdigest()
    # Kubernetes' pod-template-hash alphabet avoids vowels; any stable string will do here.
    return "".join(c for c in digest if c not in "aeiou")[:length]


def _owner(kind: str, name: str, uid: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid, "controller": True}


def _meta(name: str, namespace: str | None, created: datetime, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{namespace}/{name}")),
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


_AGO = re.compile(r"\{ago:([0-9.]+[smhd])(?:\|([^{}]{1,80}))?\}")


def _moment(moment: datetime, form: str | None) -> str:
    """``moment`` as a log writes it: RFC 3339 by default; ``epoch`` or ``epoch_ms`` (JSON loggers); else a
    strftime format where ``%3f`` is milliseconds (PostgreSQL's ``%m``: ``2026-12-07 13:02:11.412 UTC``)."""
    if not form:
        return _ts(moment)
    if form == "epoch":
        return f"{moment.timestamp():.3f}"
    if form == "epoch_ms":
        return str(int(moment.timestamp() * 1000))
    return moment.astimezone(UTC).strftime(form.replace("%3f", f"{moment.microsecond // 1000:03d}"))


def _render_log(text: str, now: datetime) -> str:
    """Log text with ``{ago:2m}`` placeholders turned into times relative to ``now``; ``{ago:2m|FORMAT}`` in the
    format the software writes (see :func:`_moment`)."""
    return _AGO.sub(lambda m: _moment(now - _duration(m.group(1)), m.group(2)), text)


POD_STATES = ("running", "crashloop", "oomkilled", "imagepull", "pending", "unschedulable", "unready", "evicted")
# The last termination each state shows by default: (reason, exit code). A scenario may say otherwise (an
# OOMKilled container in CrashLoopBackOff: reason OOMKilled, exit code 137; a command that is not there:
# StartError, 128; a process that ends: Completed, 0).
_TERMINATED = {"crashloop": ("Error", 2), "oomkilled": ("OOMKilled", 137), "evicted": ("ContainerStatusUnknown", 137)}
_WAITING = {"crashloop": "CrashLoopBackOff", "imagepull": "ImagePullBackOff", "pending": "ContainerCreating",
            "unschedulable": "Pending"}


@dataclass(frozen=True)
class PodFault:
    """How a container is (or fails): its state and, where a scenario says so, the last termination's reason,
    exit code and message and the waiting reason and message, as the kubelet reports them."""

    state: str = "running"
    reason: str | None = None
    exit_code: int | None = None
    message: str | None = None
    waiting_reason: str | None = None
    waiting_message: str | None = None
    logs: str | None = field(default=None, compare=False)  # what a pod failing so prints (replacements too)
    previous_logs: str | None = field(default=None, compare=False)

    @classmethod
    def of(cls, spec: Mapping[str, Any]) -> PodFault:
        state = str(spec.get("state", "running"))
        if state not in POD_STATES:
            raise DrillError(f"unknown pod state {state!r}; use {', '.join(POD_STATES)}")
        code = spec.get("exit_code")
        if code is not None and (not isinstance(code, int) or isinstance(code, bool) or not 0 <= code <= 255):
            raise DrillError(f"exit_code must be a whole number from 0 to 255, not {code!r}")
        text = {k: spec.get(k) for k in ("reason", "message", "waiting_reason", "waiting_message")}
        if any(v is not None and not isinstance(v, str) for v in text.values()):
            raise DrillError("reason, message, waiting_reason and waiting_message must be strings")
        return cls(state, text["reason"], code, text["message"], text["waiting_reason"], text["waiting_message"])

    @property
    def ready(self) -> bool:
        return self.state in ("running", "oomkilled")


def _container_status(name: str, image: str, fault: PodFault | str, restarts: int, now: datetime,
                      started: datetime) -> dict[str, Any]:
    fault = fault if isinstance(fault, PodFault) else PodFault.of({"state": fault})
    state = fault.state
    status: dict[str, Any] = {"name": name, "image": image, "imageID": "", "restartCount": restarts,
                              "ready": fault.ready, "started": state in ("running", "oomkilled", "unready")}
    if state in ("running", "unready"):  # unready: running, but its readiness probe never passes
        status["state"] = {"running": {"startedAt": _ts(started)}}
    elif state == "oomkilled":  # running again, ready, until the next kill
        status["state"] = {"running": {"startedAt": _ts(now - timedelta(seconds=50))}}
    elif state == "evicted":
        status["state"] = {"terminated": {"reason": fault.reason or "ContainerStatusUnknown",
                                          "exitCode": 137 if fault.exit_code is None else fault.exit_code,
                                          "message": fault.message or "The container could not be located when the "
                                          "pod was terminated", "startedAt": _ts(started),
                                          "finishedAt": _ts(now - timedelta(hours=1))}}
    else:
        waiting: dict[str, Any] = {"reason": fault.waiting_reason or _WAITING[state]}
        message = fault.waiting_message or {
            "crashloop": f"back-off 5m0s restarting failed container={name}",
            "imagepull": f'Back-off pulling image "{image}"'}.get(state)
        if message:
            waiting["message"] = message
        status["state"] = {"waiting": waiting}
    if state in ("crashloop", "oomkilled"):
        reason, code = _TERMINATED[state]
        ended = now - timedelta(seconds=30 if state == "crashloop" else 55)
        terminated: dict[str, Any] = {"reason": fault.reason or reason,
                                      "exitCode": code if fault.exit_code is None else fault.exit_code,
                                      "startedAt": _ts(ended - timedelta(seconds=10 if state == "crashloop" else 185)),
                                      "finishedAt": _ts(ended)}
        if fault.message:
            terminated["message"] = fault.message
        status["lastState"] = {"terminated": terminated}
    return status


def _changed(before: Any, after: Any) -> Any:
    """The part of ``after`` that differs from ``before``: nested dicts by key, anything else whole."""
    if isinstance(before, dict) and isinstance(after, dict):
        return {k: _changed(before.get(k), v) for k, v in after.items() if before.get(k) != v}
    return after


def _fields_v1(changed: Any, top: str) -> dict[str, Any]:
    """managedFields' fieldsV1 for a change under ``top``, as the API server writes it (``f:<key>`` per level;
    list items are not told apart here)."""
    def walk(value: Any) -> dict[str, Any]:
        return {f"f:{k}": walk(v) for k, v in value.items()} if isinstance(value, dict) else {}
    return {f"f:{top}": walk(changed)}


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


_CONTAINER_KEYS = frozenset({"state", "reason", "exit_code", "message", "waiting_reason", "waiting_message", "logs"})
# Every key a [cluster] table may hold, per table (a misspelt key is an error, not a silent default; the format
# table in docs/drills.md lists each).
CLUSTER_KEYS: dict[str, frozenset[str]] = {
    "cluster": frozenset({"workloads", "events", "nodes", "metrics_api", "configmaps", "secrets", "hpas", "services",
                          "cronjobs", "volumes", "quotas"}),
    "cluster.nodes": frozenset({"name", "ready", "conditions", "taints", "labels", "allocatable", "unschedulable"}),
    "cluster.configmaps": frozenset({"name", "app", "keys", "changed", "manager"}),
    "cluster.secrets": frozenset({"name", "app", "keys", "changed", "manager"}),
    "cluster.hpas": frozenset({"name", "target", "min", "max", "current", "desired", "cpu_target", "cpu_now"}),
    "cluster.services": frozenset({"name", "app", "port", "target_port"}),
    "cluster.cronjobs": frozenset({"name", "schedule", "suspend", "image", "command", "last_schedule", "age",
                                   "reapplies", "every"}),
    "cluster.volumes": frozenset({"name", "capacity", "storage_class", "phase", "app"}),
    "cluster.quotas": frozenset({"name", "hard", "used"}),
    "cluster.workloads": frozenset({"name", "kind", "container", "app", "replicas", "limits", "revisions", "pods",
                                    "config_changed", "sidecars", "init_containers", "fault", "ports",
                                    "written_by"}),
    "cluster.workloads.revisions": frozenset({"image", "age", "change_cause"}),
    "cluster.workloads.pods": frozenset({"count", "age", "restarts", "previous_logs", "last_restart_ago", "cpu",
                                         "memory", "revision", "events", "eviction_message"} | _CONTAINER_KEYS),
    "cluster.workloads.sidecars": frozenset({"name", "image"} | _CONTAINER_KEYS),
    "cluster.workloads.init_containers": frozenset({"name", "image"} | _CONTAINER_KEYS),
    "cluster.workloads.pods.events": frozenset({"type", "reason", "message", "ago", "count"}),
    "cluster.events": frozenset({"kind", "name", "type", "reason", "message", "ago", "count"}),
}


def _check_keys(table: Any, where: str, label: str) -> None:
    """Refuse a key :data:`CLUSTER_KEYS` does not list for ``where``, in this table and the ones it holds."""
    if not isinstance(table, Mapping):
        raise DrillError(f"{label} must be a table")
    unknown = sorted(set(table) - CLUSTER_KEYS[where])
    if unknown:
        raise DrillError(f"{label}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(CLUSTER_KEYS[where]))}")
    for key, value in table.items():
        inner = f"{where}.{key}"
        if inner in CLUSTER_KEYS and isinstance(value, list):
            for i, item in enumerate(value):
                if inner == "cluster.nodes" and isinstance(item, str):
                    continue  # a node by name alone
                _check_keys(item, inner, f"{label} {key} #{i + 1}")


def build_cluster(spec: Mapping[str, Any], namespace: str, now: datetime | None = None) -> Cluster:
    """Deployments, StatefulSets, ReplicaSets, pods, events and metrics from a compact spec.

    ``spec`` is the ``[kubernetes]`` table of a scenario file: ``workloads`` (each with
    ``name, kind, container, replicas, revisions, pods``), ``events``, ``nodes`` and
    ``metrics_api``. See the scenario format in docs/drills.md.
    """
    _check_keys(spec, "cluster", "cluster")
    now = now or datetime.now(UTC)
    metrics_api = bool(spec.get("metrics_api", True))
    cluster = Cluster(namespaces={namespace, "kube-system", "default"}, metrics_api=metrics_api)
    node_specs = [n if isinstance(n, Mapping) else {"name": str(n)} for n in spec.get("nodes", ["node-a", "node-b"])]
    nodes = [str(n["name"]) for n in node_specs]
    node_usage: dict[str, tuple[float, float]] = {n: (0.0, 0.0) for n in nodes}
    for index, workload in enumerate(spec.get("workloads", [])):
        _build_workload(cluster, workload, namespace, now, nodes, index, node_usage, metrics_api)
    for node_spec in node_specs:
        node = str(node_spec["name"])
        cluster.objects.append(("v1/nodes", _node(node_spec, now)))
        if metrics_api:
            cpu, mem = node_usage[node]
            cluster.objects.append(("metrics.k8s.io/v1beta1/nodes", {
                "apiVersion": "metrics.k8s.io/v1beta1", "kind": "NodeMetrics",
                "metadata": _meta(node, None, now), "timestamp": _ts(now), "window": "30s",
                "usage": {"cpu": f"{int(cpu + 300)}m", "memory": f"{int(mem + 1024)}Mi"},
            }))
    cluster.objects += _objects(spec, namespace, now)
    pods = [o for r, o in cluster.objects if r == "v1/pods"]
    for item in spec.get("services", []):
        cluster.objects += _service(item, namespace, now, pods)
    for extra in spec.get("events", []):
        cluster.objects.append(_event(namespace, extra.get("kind", "Pod"), extra["name"], extra.get("type", "Normal"),
                                      extra["reason"], extra["message"], now - _duration(extra.get("ago", "1m")),
                                      int(extra.get("count", 1))))
    return cluster


_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable")


def _node(spec: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """A Node: ``ready`` (default true), pressure ``conditions`` ({DiskPressure = true}), ``taints`` ({key, value,
    effect}), ``labels``, ``allocatable`` ({cpu, memory, "nvidia.com/gpu"}), ``unschedulable`` (cordoned)."""
    conditions = {"Ready": bool(spec.get("ready", True)), **{k: False for k in _CONDITIONS[1:]},
                  **{str(k): bool(v) for k, v in (spec.get("conditions") or {}).items()}}
    unknown = sorted(set(conditions) - set(_CONDITIONS))
    if unknown:
        raise DrillError(f"node {spec['name']}: unknown condition(s) {', '.join(unknown)}; use {', '.join(_CONDITIONS)}")
    reasons = {"Ready": ("KubeletReady", "KubeletNotReady"), "MemoryPressure": ("KubeletHasSufficientMemory",
               "KubeletHasInsufficientMemory"), "DiskPressure": ("KubeletHasNoDiskPressure", "KubeletHasDiskPressure"),
               "PIDPressure": ("KubeletHasSufficientPID", "KubeletHasInsufficientPID"),
               "NetworkUnavailable": ("RouteCreated", "NoRouteCreated")}
    allocatable = {"cpu": "3800m", "memory": "15Gi", "pods": "110", **(spec.get("allocatable") or {})}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": _meta(str(spec["name"]), None, now - timedelta(days=30),
                          labels={"kubernetes.io/hostname": str(spec["name"]), **(spec.get("labels") or {})}),
        "spec": {**({"taints": [dict(t) for t in spec["taints"]]} if spec.get("taints") else {}),
                 **({"unschedulable": True} if spec.get("unschedulable") else {})},
        "status": {"capacity": {**allocatable, "cpu": "4", "memory": "16Gi"}, "allocatable": allocatable,
                   "conditions": [{"type": kind, "status": "True" if on else "False",
                                   "reason": reasons[kind][int(on != (kind == "Ready"))],
                                   "lastTransitionTime": _ts(now - timedelta(minutes=10 if on != (kind == "Ready")
                                                                             else 30 * 24 * 60))}
                                  for kind, on in conditions.items()]},
    }


def _objects(spec: Mapping[str, Any], namespace: str, now: datetime) -> list[tuple[str, dict[str, Any]]]:
    """The objects a scenario adds beside its workloads: ConfigMaps and Secrets changed on their own, HPAs,
    Services with their Endpoints, CronJobs, PersistentVolumeClaims and ResourceQuotas."""
    out: list[tuple[str, dict[str, Any]]] = []
    for resource, kind, key in (("v1/configmaps", "ConfigMap", "configmaps"), ("v1/secrets", "Secret", "secrets")):
        for item in spec.get(key, []):
            keys = [str(k) for k in item.get("keys", ["config"])]
            labels = {"app": str(item["app"])} if item.get("app") else {}
            body = ({"data": {k: "" for k in keys}} if kind == "ConfigMap" else
                    {"type": "Opaque", "data": {k: "ZHJpbGwtb25seQ==" for k in keys}})
            out.append((resource, {"apiVersion": "v1", "kind": kind, **body, "metadata": _meta(
                str(item["name"]), namespace, now - timedelta(days=30), labels=labels, managedFields=[
                    {"manager": str(item.get("manager", "kubectl-client-side-apply")), "operation": "Update",
                     "time": _ts(now - _duration(item.get("changed", "30d")))}])}))
    for item in spec.get("hpas", []):
        current, desired = int(item.get("current", item.get("min", 1))), int(item.get("desired", item.get("current", 1)))
        out.append(("autoscaling/v2/horizontalpodautoscalers", {
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": _meta(str(item["name"]), namespace, now - timedelta(days=20)),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": str(item["target"])},
                     "minReplicas": int(item.get("min", 1)), "maxReplicas": int(item["max"]),
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                         "type": "Utilization", "averageUtilization": int(item.get("cpu_target", 70))}}}]},
            "status": {"currentReplicas": current, "desiredReplicas": desired,
                       "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {
                           "averageUtilization": int(item.get("cpu_now", 50))}}}],
                       "conditions": [{"type": "ScalingLimited", "status": "True" if desired >= int(item["max"]) else
                                       "False", "reason": "TooManyReplicas" if desired >= int(item["max"]) else
                                       "DesiredWithinRange"}]},
        }))
    for item in spec.get("cronjobs", []):
        out.append(("batch/v1/cronjobs", {
            "apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": _meta(str(item["name"]), namespace, now - _duration(item.get("age", "60d"))),
            "spec": {"schedule": str(item.get("schedule", "0 3 * * *")), "suspend": bool(item.get("suspend", False)),
                     "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [
                         {"name": str(item["name"]), "image": str(item.get("image", "bitnami/kubectl:1.30")),
                          "command": [str(c) for c in item.get("command", [])]}]}}}}},
            "status": {"lastScheduleTime": _ts(now - _duration(item.get("last_schedule", "1h")))},
        }))
    for item in spec.get("volumes", []):
        out.append(("v1/persistentvolumeclaims", {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": _meta(str(item["name"]), namespace, now - timedelta(days=60),
                              labels={"app": str(item["app"])} if item.get("app") else {}),
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": str(item.get("storage_class", "standard")),
                     "resources": {"requests": {"storage": str(item.get("capacity", "10Gi"))}}},
            "status": {"phase": str(item.get("phase", "Bound")), "capacity": {"storage": str(item.get("capacity",
                                                                                                      "10Gi"))}},
        }))
    for item in spec.get("quotas", []):
        hard = {str(k): str(v) for k, v in (item.get("hard") or {}).items()}
        out.append(("v1/resourcequotas", {
            "apiVersion": "v1", "kind": "ResourceQuota", "metadata": _meta(str(item["name"]), namespace,
                                                                           now - timedelta(days=90)),
            "spec": {"hard": hard}, "status": {"hard": hard, "used": {str(k): str(v) for k, v in
                                                                      (item.get("used") or {}).items()}},
        }))
    return out


def _service(item: Mapping[str, Any], namespace: str, now: datetime,
             pods: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """A Service selecting ``app`` on ``port`` -> ``target_port`` (a number or a port name), and its Endpoints:
    the ready pods it selects as addresses, the others as not ready. A target port no container declares
    leaves the Endpoints without ports, as the endpoints controller does for a name that matches nothing."""
    name, app = str(item["name"]), str(item.get("app", item["name"]))
    port, target = int(item.get("port", 80)), item.get("target_port", item.get("port", 80))
    selected = [p for p in pods if (p["metadata"].get("labels") or {}).get("app") == app
                and p["status"].get("phase") != "Failed"]
    declared = {(c.get("name"), d.get("containerPort"), d.get("name")) for p in selected
                for c in p["spec"].get("containers") or [] for d in c.get("ports") or []}
    resolves = isinstance(target, int) or any(n == target for _, _, n in declared)
    def address(pod: Mapping[str, Any]) -> dict[str, Any]:
        return {"ip": pod["status"].get("podIP", ""), "nodeName": pod["spec"].get("nodeName", ""),
                "targetRef": {"kind": "Pod", "name": pod["metadata"]["name"], "namespace": namespace}}
    ready = [address(p) for p in selected if p["status"]["conditions"][0]["status"] == "True"]
    waiting = [address(p) for p in selected if p["status"]["conditions"][0]["status"] != "True"]
    subset: dict[str, Any] = {}
    if ready:
        subset["addresses"] = ready
    if waiting:
        subset["notReadyAddresses"] = waiting
    if resolves and subset:
        number = target if isinstance(target, int) else next(p for _, p, n in declared if n == target)
        subset["ports"] = [{"port": number, "protocol": "TCP"}]
    created = now - timedelta(days=60)
    return [("v1/services", {
        "apiVersion": "v1", "kind": "Service", "metadata": _meta(name, namespace, created, labels={"app": app}),
        "spec": {"type": "ClusterIP", "clusterIP": f"10.96.{len(name)}.{port % 250}", "selector": {"app": app},
                 "ports": [{"port": port, "targetPort": target, "protocol": "TCP"}]}}),
        ("v1/endpoints", {"apiVersion": "v1", "kind": "Endpoints", "metadata": _meta(name, namespace, created),
                          "subsets": [subset] if subset and resolves else []})]


def _extra_containers(workload: Mapping[str, Any], key: str) -> list[tuple[dict[str, Any], PodFault, str | None]]:
    """A workload's ``sidecars`` or ``init_containers``: (container spec, how it is, its log)."""
    found = []
    for item in workload.get(key, []):
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise DrillError(f"{key}: each is a table with a name (and image, state, logs)")
        spec = {"name": item["name"], "image": str(item.get("image", f"registry.local/{item['name']}:1.0.0"))}
        state = item.get("state", "completed" if key == "init_containers" else "running")
        fault = PodFault.of({**item, "state": "running" if state == "completed" else state})
        found.append((spec, fault if state != "completed" else PodFault("completed"), item.get("logs")))
    return found


def _init_status(spec: Mapping[str, Any], fault: PodFault, restarts: int, now: datetime,
                 started: datetime) -> dict[str, Any]:
    if fault.state == "completed":  # ran to its end before the app started, as an init container does
        return {"name": spec["name"], "image": spec["image"], "imageID": "", "restartCount": 0, "ready": True,
                "state": {"terminated": {"reason": "Completed", "exitCode": 0, "startedAt": _ts(started),
                                         "finishedAt": _ts(started + timedelta(seconds=3))}}}
    return {**_container_status(spec["name"], spec["image"], fault, restarts, now, started), "ready": False}


def _build_workload(cluster: Cluster, workload: Mapping[str, Any], namespace: str, now: datetime,
                    nodes: list[str], index: int, node_usage: dict[str, tuple[float, float]],
                    metrics_api: bool) -> None:
    name = workload["name"]
    kind = workload.get("kind", "Deployment")
    if kind not in ("Deployment", "StatefulSet", "Pod"):
        raise DrillError(f"workload {name}: kind must be Deployment, StatefulSet or Pod (a bare pod), not {kind!r}")
    container = workload.get("container", name.split("-")[0])
    app = workload.get("app", name.removesuffix("-deployment"))
    revisions = list(workload.get("revisions", [{"image": f"registry.local/{app}:1.0.0", "age": "7d"}]))
    replicas = int(workload.get("replicas", 1))
    labels = {"app": app}
    limits = workload.get("limits", {"cpu": "1000m", "memory": "1Gi"})
    sidecars, inits = _extra_containers(workload, "sidecars"), _extra_containers(workload, "init_containers")
    # The app container's ports: 8080, or {name = "http", port = 8080}.
    ports = [{"containerPort": int(p), "protocol": "TCP"} if not isinstance(p, Mapping) else
             {"name": str(p["name"]), "containerPort": int(p["port"]), "protocol": "TCP"}
             for p in workload.get("ports", [])]

    def pod_spec(image: str, pod_hash: str = "") -> dict[str, Any]:
        app_container: dict[str, Any] = {"name": container, "image": image, "resources": {"limits": limits}}
        if ports:
            app_container["ports"] = ports
        spec: dict[str, Any] = {"containers": [app_container, *(copy.deepcopy(c) for c, _, _ in sidecars)]}
        if inits:
            spec["initContainers"] = [copy.deepcopy(c) for c, _, _ in inits]
        return {"metadata": {"labels": {**labels, **({"pod-template-hash": pod_hash} if pod_hash else {})}},
                "spec": spec}

    template = pod_spec(revisions[-1]["image"])
    created = now - _duration(revisions[0].get("age", "7d"))
    pods_spec = list(workload.get("pods", [{"count": replicas, "state": "running"}]))
    groups = []  # (group, its fault, the revision its pods belong to: 1-based)
    for group in pods_spec:
        revision = group.get("revision", len(revisions))
        if not isinstance(revision, int) or isinstance(revision, bool) or not 1 <= revision <= len(revisions):
            raise DrillError(f"workload {name}: a pod group's revision must be 1 to {len(revisions)}")
        groups.append((group, PodFault.of(group), revision))
    newest = [(g, f) for g, f, r in groups if r == len(revisions) and f.state != "evicted"]
    ready_by_revision = {r: sum(int(g.get("count", 1)) for g, f, rr in groups if rr == r and f.ready)
                         for r in range(1, len(revisions) + 1)}
    count_by_revision = {r: sum(int(g.get("count", 1)) for g, f, rr in groups if rr == r and f.state != "evicted")
                         for r in range(1, len(revisions) + 1)}
    ready = sum(ready_by_revision.values())
    broken = [f for _, f in newest if f.state != "running"]
    fault_of = workload.get("fault")
    if fault_of not in (None, "template", "pod", "capacity"):
        raise DrillError(f"workload {name}: fault must be template, pod or capacity, not {fault_of!r}")
    if broken:  # what new pods do once a controller makes them (ClusterEmulator.failing)
        inferred = ("capacity" if broken[0].state in ("pending", "unschedulable") else
                    "template" if broken[0].state in ("oomkilled", "imagepull") or len(revisions) > 1 else "pod")
        fault_of = fault_of or inferred
        group = next(g for g, f in newest if f is broken[0])
        printed = dataclasses.replace(
            broken[0], logs=_render_log(group["logs"], now) if isinstance(group.get("logs"), str) else None,
            previous_logs=_render_log(group["previous_logs"], now) if isinstance(group.get("previous_logs"), str)
            else None)
        if fault_of == "capacity":
            cluster.failing[(namespace, name)] = (None, printed)  # the cluster needs room, whatever the template
        elif fault_of == "template":
            cluster.failing[(namespace, name)] = (signature(template), printed)  # the template broke them
        # "pod": a fault of these pods alone: their replacements run
    if kind != "Pod":
        resource = "apps/v1/deployments" if kind == "Deployment" else "apps/v1/statefulsets"
        # Who wrote the current pod template, and when: the newest revision's writer (written_by, else kubectl).
        wrote = now - _duration(revisions[-1].get("age", "7d"))
        writer = str(workload.get("written_by") or "kubectl-client-side-apply")
        cluster.objects.append((resource, {
            "apiVersion": "apps/v1", "kind": kind,
            "metadata": _meta(name, namespace, created, labels=labels, generation=len(revisions),
                              annotations={"deployment.kubernetes.io/revision": str(len(revisions))},
                              managedFields=[{"manager": writer, "operation": "Update", "time": _ts(wrote),
                                              "fieldsV1": {"f:spec": {"f:template": {}}}}]),
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": template,
                     **({"serviceName": name} if kind == "StatefulSet" else {})},
            "status": {"replicas": sum(count_by_revision.values()), "readyReplicas": ready,
                       "updatedReplicas": count_by_revision[len(revisions)], "availableReplicas": ready,
                       "observedGeneration": len(revisions)},
        }))

    if kind == "Deployment":  # its configuration, last written when configured (config_changed, else its first deploy)
        written = now - _duration(workload.get("config_changed", revisions[0].get("age", "7d")))
        for resource, obj_kind, suffix, body in (("v1/configmaps", "ConfigMap", "config", {"data": {"LOG_LEVEL": "info"}}),
                                                 ("v1/secrets", "Secret", "secrets",
                                                  {"type": "Opaque", "data": {"API_KEY": "ZHJpbGwtb25seQ=="}})):
            cluster.objects.append((resource, {
                "apiVersion": "v1", "kind": obj_kind,
                "metadata": _meta(f"{app}-{suffix}", namespace, now - _duration(revisions[0].get("age", "7d")),
                                  labels=labels, managedFields=[{"manager": "kubectl-client-side-apply",
                                                                 "operation": "Update", "time": _ts(written)}]),
                **body}))
    owners: dict[int, tuple[str, str, str]] = {r: (name, kind, "") for r in range(1, len(revisions) + 1)}
    if kind == "Deployment":
        for number, revision in enumerate(revisions, start=1):
            rs_hash = _hash(name, revision["image"])
            rs_name = f"{name}-{rs_hash}"
            current = number == len(revisions)
            # The newest holds the replicas no group gives an older one; an older one what its groups say.
            rs_replicas = count_by_revision[number] if not current else max(count_by_revision[number], replicas - sum(
                c for r, c in count_by_revision.items() if r != number))
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
                "spec": {"replicas": rs_replicas,
                         "selector": {"matchLabels": {**labels, "pod-template-hash": rs_hash}},
                         # The Deployment's template at that revision, as the controller stores it.
                         "template": pod_spec(revision["image"], rs_hash)},
                "status": {"replicas": count_by_revision[number], "readyReplicas": ready_by_revision[number]},
            }))
            cluster.objects.append(_event(namespace, "Deployment", name, "Normal", "ScalingReplicaSet",
                                          f"Scaled up replica set {rs_name} to {rs_replicas or replicas}", rs_created))
            owners[number] = (rs_name, "ReplicaSet", rs_hash)

    ordinal = 0
    for pod_group, fault, revision_number in groups:
        owner_name, owner_kind, pod_hash = owners[revision_number]
        image = revisions[revision_number - 1]["image"]
        state = fault.state
        for _ in range(int(pod_group.get("count", 1))):
            if kind == "StatefulSet":
                pod_name = f"{name}-{ordinal}"
            elif kind == "Pod":
                pod_name = name if int(pod_group.get("count", 1)) == 1 and len(groups) == 1 else f"{name}-{ordinal}"
            else:
                pod_name = f"{owner_name}-{_hash(owner_name, str(ordinal), length=5)}"
            node = nodes[(index + ordinal) % len(nodes)]
            ordinal += 1
            restarts = int(pod_group.get("restarts", 0 if state in ("running", "evicted") else 5))
            started = now - _duration(pod_group.get("age", revisions[revision_number - 1].get("age", "7d")))
            status = _container_status(container, image, fault, restarts, now, started)
            if pod_group.get("last_restart_ago") and state == "running":  # a crash long ago, healthy since
                ended = now - _duration(pod_group["last_restart_ago"])
                status["lastState"] = {"terminated": {"reason": fault.reason or "Error",
                                                      "exitCode": 1 if fault.exit_code is None else fault.exit_code,
                                                      "startedAt": _ts(ended - timedelta(hours=1)),
                                                      "finishedAt": _ts(ended)}}
            init_statuses = [_init_status(c, f, restarts, now, started) for c, f, _ in inits]
            init_blocked = any(s["state"].get("terminated", {}).get("reason") != "Completed" for s in init_statuses)
            if init_blocked:  # the app container waits for its init containers
                status = {**status, "ready": False, "started": False,
                          "state": {"waiting": {"reason": "PodInitializing"}}}
                status.pop("lastState", None)
            statuses = [status, *(_container_status(c["name"], c["image"], f, 0 if f.ready else restarts, now,
                                                    started) for c, f, _ in sidecars)]
            all_ready = all(s["ready"] for s in statuses)
            phase = ("Failed" if state == "evicted" else
                     "Pending" if state in ("pending", "imagepull", "unschedulable") or init_blocked else "Running")
            pod_labels = {**labels, **({"pod-template-hash": pod_hash} if pod_hash else {})}
            pod_status: dict[str, Any] = {
                "phase": phase, "hostIP": "10.0.0.1", "podIP": f"10.1.{index}.{ordinal}", "startTime": _ts(started),
                "conditions": [{"type": "Ready", "status": "True" if all_ready else "False"}],
                "containerStatuses": statuses}
            if init_statuses:
                pod_status["initContainerStatuses"] = init_statuses
            if state == "evicted":
                pod_status.update(reason="Evicted", message=pod_group.get("eviction_message",
                                  "The node was low on resource: memory. Threshold quantity: 100Mi, available: 52Mi."))
            cluster.objects.append(("v1/pods", {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": _meta(pod_name, namespace, started, labels=pod_labels, **({"ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": owner_kind, "name": owner_name,
                     "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{namespace}/{owner_name}")), "controller": True}]}
                    if kind != "Pod" else {})),
                "spec": {**({"nodeName": node} if state != "unschedulable" else {}),  # never placed on a node
                         **pod_spec(image)["spec"]},
                "status": pod_status,
            }))
            cluster.logs[(namespace, pod_name, container, False)] = _render_log(pod_group.get(
                "logs", f"{_ts(now)} INFO {container} serving requests\n"), now)
            if state in ("crashloop", "oomkilled") or pod_group.get("previous_logs"):
                cluster.logs[(namespace, pod_name, container, True)] = _render_log(pod_group.get(
                    "previous_logs", f"{_ts(now)} INFO {container} starting\n"), now)
            for extra, _, text in (*sidecars, *inits):
                cluster.logs[(namespace, pod_name, extra["name"], False)] = _render_log(
                    text if text is not None else f"{_ts(now)} INFO {extra['name']} started\n", now)
            if "events" in pod_group:  # the scenario's own events for each pod, instead of the automatic ones
                events = [_event(namespace, "Pod", pod_name, e.get("type", "Warning"), e["reason"], e["message"],
                                 now - _duration(e.get("ago", "1m")), int(e.get("count", 1)))
                          for e in pod_group["events"]]
            else:
                events = list(_pod_events(namespace, pod_name, container, state, restarts, now, image))
            cluster.objects += events
            if metrics_api and phase == "Running":
                cpu = float(str(pod_group.get("cpu", "150m")).removesuffix("m"))
                mem = float(str(pod_group.get("memory", "256Mi")).removesuffix("Mi"))
                used_cpu, used_mem = node_usage[node]
                node_usage[node] = (used_cpu + cpu, used_mem + mem)
                cluster.objects.append(("metrics.k8s.io/v1beta1/pods", {
                    "apiVersion": "metrics.k8s.io/v1beta1", "kind": "PodMetrics",
                    "metadata": _meta(pod_name, namespace, now, labels=pod_labels),
                    "timestamp": _ts(now), "window": "30s",
                    "containers": [{"name": container, "usage": {"cpu": f"{int(cpu)}m", "memory": f"{int(mem)}Mi"}},
                                   *({"name": c["name"], "usage": {"cpu": "10m", "memory": "40Mi"}}
                                     for c, _, _ in sidecars)],
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
    elif state == "evicted":
        yield _event(namespace, "Pod", pod, "Warning", "Evicted",
                     "The node was low on resource: memory. Threshold quantity: 100Mi, available: 52Mi.",
                     now - timedelta(hours=1))
    elif state == "unready":
        yield _event(namespace, "Pod", pod, "Warning", "Unhealthy",
                     "Readiness probe failed: HTTP probe failed with statuscode: 503", now - timedelta(seconds=5),
                     count=restarts or 20)
