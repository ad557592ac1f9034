"""Which workload a name belongs to: a pod's name, a Prometheus ``service`` label, an ``application_name``. Pure.

A plan acts on the workload a finding names, so the match is exact or there is none: an application called
``b`` is not ``backend-deployment``, and ``backend-deployment-evil-7d9f8-x2x4z`` is not a pod of
``backend-deployment``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["belongs_to", "replicaset_owner", "workload_named"]

# What a controller names its pods: a Deployment's ReplicaSet adds its pod-template-hash (up to 10 characters)
# and five more; a StatefulSet adds the ordinal.
_POD_SUFFIX = re.compile(r"[a-z0-9]{1,10}-[a-z0-9]{1,5}|[0-9]{1,5}")
_HASH = re.compile(r"[a-z0-9]{1,10}")
# The suffixes teams put on a workload's name that its service label and application name leave out.
_SUFFIXES = ("-deployment", "-deploy", "-statefulset", "-sts", "-primary", "-master")


def belongs_to(pod: str, workload: str, owner: str = "") -> bool:
    """Whether ``pod`` is one ``workload``'s controller made: named ``<deployment>-<hash>-<5>`` or ``<sts>-<n>``,
    and, when its ``owner`` is known (``ReplicaSet/<deployment>-<hash>``, ``StatefulSet/<sts>``), owned by it."""
    if not pod.startswith(workload + "-") or _POD_SUFFIX.fullmatch(pod[len(workload) + 1:]) is None:
        return False
    if not owner:
        return True
    kind, _, name = owner.partition("/")
    if kind == "StatefulSet":
        return name == workload
    return kind == "ReplicaSet" and (name == workload or (
        name.startswith(workload + "-") and _HASH.fullmatch(name[len(workload) + 1:]) is not None))


def replicaset_owner(replicaset: str, deployments: Iterable[str]) -> str:
    """The Deployment a ReplicaSet named ``<deployment>-<hash>`` belongs to, among ``deployments``; else the
    ReplicaSet's own name."""
    return next((d for d in deployments if replicaset.startswith(d + "-")
                 and _HASH.fullmatch(replicaset[len(d) + 1:]) is not None), replicaset)


def workload_named(name: str, workloads: Iterable[str]) -> str:
    """The workload ``name`` (a service label, an application name) stands for: the one called exactly that, or
    that with one of the usual suffixes (``backend`` -> ``backend-deployment``); '' when none is."""
    found = [w for w in workloads if name and (w == name or any(w == name + suffix for suffix in _SUFFIXES))]
    return found[0] if found else ""
