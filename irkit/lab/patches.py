"""The three patch formats a Kubernetes API server accepts, applied to plain JSON objects.

- JSON merge patch (RFC 7386, ``application/merge-patch+json``): dicts merge, ``null``
  deletes a key, a list replaces the list.
- Strategic merge patch (``application/strategic-merge-patch+json``, kubectl's default):
  like a merge patch, except that lists of named things merge by their key (containers
  and env by ``name``, ports by ``containerPort``...) and ``$patch``/``$setElementOrder``
  directives are understood. Only the list keys the playbook's objects use are known.
- JSON patch (RFC 6902, ``application/json-patch+json``): operations; kubectl's
  ``rollout undo`` sends one. Applied with the ``jsonpatch`` library.

Used by the drill's Kubernetes emulator; a patch it cannot apply raises :class:`PatchError`,
which the emulator answers 422 as the API server does.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import jsonpatch

__all__ = ["MERGE_KEYS", "PatchError", "apply_patch", "json_merge", "strategic_merge"]

# Lists merged element by element in a strategic merge patch, by field name -> the element's key.
MERGE_KEYS = {"containers": "name", "initContainers": "name", "env": "name", "volumes": "name",
              "volumeMounts": "mountPath", "ports": "containerPort", "imagePullSecrets": "name",
              "envFrom": None, "tolerations": None}


class PatchError(ValueError):
    """A patch that cannot be applied to the object."""


def json_merge(target: Any, patch: Any) -> Any:
    """RFC 7386: ``patch`` merged into ``target`` (neither is modified)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = json_merge(result.get(key), value)
    return result


def strategic_merge(target: Any, patch: Any) -> Any:
    """A strategic merge patch applied to ``target`` (neither is modified)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = copy.deepcopy(dict(target)) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if key.startswith("$"):  # $setElementOrder/..., $retainKeys: ordering and pruning hints
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and MERGE_KEYS.get(key):
            result[key] = _merge_list(result.get(key) or [], value, str(MERGE_KEYS[key]))
        elif isinstance(value, Mapping):
            result[key] = strategic_merge(result.get(key), value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _merge_list(current: list[Any], patch: list[Any], key: str) -> list[Any]:
    merged = [copy.deepcopy(item) for item in current]
    for item in patch:
        if not isinstance(item, Mapping) or key not in item:
            raise PatchError(f"an element of a list merged by {key!r} has no {key!r}")
        index = next((i for i, old in enumerate(merged) if isinstance(old, Mapping) and old.get(key) == item[key]),
                     None)
        if item.get("$patch") == "delete":
            if index is not None:
                del merged[index]
        elif index is None:
            merged.append({k: copy.deepcopy(v) for k, v in item.items() if k != "$patch"})
        else:
            merged[index] = strategic_merge(merged[index], item)
    return merged


def apply_patch(target: Mapping[str, Any], patch: Any, content_type: str) -> dict[str, Any]:
    """``patch`` applied to ``target`` the way its ``Content-Type`` says."""
    kind = content_type.split(";")[0].strip()
    if kind == "application/json-patch+json":
        if not isinstance(patch, list):
            raise PatchError("a JSON patch is a list of operations")
        try:
            result = jsonpatch.apply_patch(copy.deepcopy(dict(target)), patch)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise PatchError(str(exc)) from exc
    elif kind == "application/merge-patch+json":
        result = json_merge(target, patch)
    elif kind == "application/strategic-merge-patch+json":
        result = strategic_merge(target, patch)
    else:
        raise PatchError(f"unsupported patch type {kind!r}")
    if not isinstance(result, dict):
        raise PatchError("the patched object is not an object")
    return result
