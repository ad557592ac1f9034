"""Kubernetes RBAC, evaluated over the requests the emulator recorded (least privilege, tested both ways).

The API server authorizes a request by its attributes (verb, API group, resource and subresource, namespace,
name) against the rules of the Roles bound to the caller. :func:`attributes` derives those attributes from a
request as kmock recorded it, the way the API server does (GET of a name is ``get``, of a collection ``list``,
``watch=true`` is ``watch``; POST ``create``, PUT ``update``, PATCH ``patch``, DELETE ``delete`` or
``deletecollection``); :func:`grants` reads the Roles and bindings a subject has from manifests (as
``kubectl apply -k`` would send them); :func:`allowing` finds the grant that allows a request, if any.
Aggregated ClusterRoles, ``nonResourceURLs`` and impersonation are not modelled: irkit's manifests use none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Attributes", "Grant", "allowing", "attributes", "grants", "kustomize"]


@dataclass(frozen=True)
class Attributes:
    """What the API server authorizes: ``resource`` carries the subresource (``pods/log``)."""

    verb: str
    api_group: str
    resource: str
    namespace: str  # "" for a cluster-scoped resource
    name: str
    token: str  # the bearer token the request carried: who asked

    def __str__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else " (cluster)"
        return f"{self.verb} {self.api_group or 'core'}/{self.resource}{'/' + self.name if self.name else ''}{where}"


def attributes(request: Any) -> Attributes | None:
    """A kmock request's authorization attributes; None for a request that names no resource (discovery)."""
    resource = request.resource
    if resource is None or not getattr(resource, "plural", None):
        return None
    method = request.method.value.upper()
    params = request.params or {}
    if method in ("GET", "HEAD"):
        verb = "watch" if params.get("watch") in ("true", "1") else "get" if request.name else "list"
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method) or (
            "delete" if request.name else "deletecollection")
    headers = {str(k).lower(): str(v) for k, v in (request.headers or {}).items()}
    scheme, _, token = headers.get("authorization", "").partition(" ")
    plural = str(resource.plural) + (f"/{request.subresource}" if request.subresource else "")
    return Attributes(verb, str(getattr(resource, "group", "") or ""), plural, str(request.namespace or ""),
                      str(request.name or ""), token.strip() if scheme.lower() == "bearer" else "")


@dataclass(frozen=True)
class Grant:
    """One rule of one role, as bound to the subject: where it applies, and what it allows."""

    role: str  # "Role irkit-read" or "ClusterRole irkit-read-node-metrics"
    namespace: str  # the binding's namespace; "" for a ClusterRoleBinding (everywhere)
    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    resource_names: tuple[str, ...] = ()

    def allows(self, a: Attributes) -> bool:
        def has(values: tuple[str, ...], value: str) -> bool:
            return "*" in values or value in values
        return ((not self.namespace or self.namespace == a.namespace)
                and has(self.api_groups, a.api_group) and has(self.resources, a.resource) and has(self.verbs, a.verb)
                and (not self.resource_names or a.name in self.resource_names))

    def pairs(self) -> set[tuple[str, str, str]]:
        """(API group, resource, verb) of everything the rule names: each must be used by some request."""
        return {(g, r, v) for g in self.api_groups for r in self.resources for v in self.verbs}


def kustomize(directory: str | Path) -> list[dict[str, Any]]:
    """The objects of a kustomization's ``resources`` files, read as ``kubectl apply -k`` would send them
    (plain files only: irkit's kustomizations use no patches that would change a Role)."""
    directory = Path(directory)
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text()) or {}
    docs: list[dict[str, Any]] = []
    for entry in spec.get("resources") or []:
        path = directory / entry
        if path.is_dir():
            docs.extend(kustomize(path))
        else:
            docs.extend(d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict))
    return docs


def grants(docs: Iterable[Mapping[str, Any]], service_account: str, namespace: str) -> list[Grant]:
    """Every rule bound to the service account ``namespace/service_account`` by the bindings in ``docs``."""
    docs = list(docs)
    roles = {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d for d in docs
             if d.get("kind") in ("Role", "ClusterRole")}
    found = []
    for binding in docs:
        if binding.get("kind") not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(s.get("kind") == "ServiceAccount" and s.get("name") == service_account
                   and s.get("namespace") == namespace for s in binding.get("subjects") or []):
            continue
        where = binding["metadata"].get("namespace", "") if binding["kind"] == "RoleBinding" else ""
        ref = binding["roleRef"]
        role = roles.get((ref["kind"], where if ref["kind"] == "Role" else "", ref["name"]))
        if role is None:
            raise ValueError(f"{binding['kind']} {binding['metadata']['name']} refers to {ref['kind']} {ref['name']}, "
                             "which the manifests do not define")
        for rule in role.get("rules") or []:
            found.append(Grant(f"{ref['kind']} {ref['name']}", where, tuple(rule.get("apiGroups") or ()),
                               tuple(rule.get("resources") or ()), tuple(rule.get("verbs") or ()),
                               tuple(rule.get("resourceNames") or ())))
    return found


def allowing(grants_: Iterable[Grant], a: Attributes) -> Grant | None:
    """The first grant that allows the request; None: the API server would answer 403."""
    return next((g for g in grants_ if g.allows(a)), None)
