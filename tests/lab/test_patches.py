"""The emulator's patch formats, as the API server applies them."""

from __future__ import annotations

import pytest

from irkit.lab.patches import PatchError, apply_patch

DEPLOYMENT = {"spec": {"replicas": 3, "template": {"spec": {"containers": [
    {"name": "backend", "image": "b:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
    {"name": "sidecar", "image": "s:1"}]}}}}


def containers(obj: dict) -> list[dict]:
    return obj["spec"]["template"]["spec"]["containers"]


def test_a_strategic_merge_merges_containers_and_env_by_name():
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "backend"}, {"name": "sidecar"}],
        "containers": [{"name": "backend", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]}]}}}}
    result = apply_patch(DEPLOYMENT, patch, "application/strategic-merge-patch+json")
    backend, sidecar = containers(result)
    assert backend["image"] == "b:1" and sidecar == {"name": "sidecar", "image": "s:1"}
    assert backend["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}]
    assert containers(DEPLOYMENT)[0]["env"][1]["value"] == "2"  # the stored object is not touched


def test_a_strategic_delete_directive_removes_one_element():
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "backend", "env": [{"name": "A", "$patch": "delete"}]}]}}}}
    [a_gone] = [c["env"] for c in containers(apply_patch(DEPLOYMENT, patch, "application/strategic-merge-patch+json"))
                if c["name"] == "backend"]
    assert a_gone == [{"name": "B", "value": "2"}]


def test_a_json_merge_patch_replaces_lists_and_null_deletes():
    result = apply_patch(DEPLOYMENT, {"spec": {"replicas": None, "template": {"spec": {"containers": [
        {"name": "only", "image": "o:1"}]}}}}, "application/merge-patch+json")
    assert "replicas" not in result["spec"] and containers(result) == [{"name": "only", "image": "o:1"}]


def test_a_json_patch_replaces_the_template_as_kubectl_rollout_undo_does():
    template = {"spec": {"containers": [{"name": "backend", "image": "b:0"}]}}
    result = apply_patch(DEPLOYMENT, [{"op": "replace", "path": "/spec/template", "value": template}],
                         "application/json-patch+json")
    assert result["spec"]["template"] == template and result["spec"]["replicas"] == 3


@pytest.mark.parametrize(("patch", "kind"), [
    ([{"op": "replace", "path": "/spec/nothing/here", "value": 1}], "application/json-patch+json"),
    ({"spec": {}}, "application/json-patch+json"),
    ({"spec": {"template": {"spec": {"containers": [{"image": "nameless"}]}}}}, "application/strategic-merge-patch+json"),
    ({}, "application/yaml"),
])
def test_a_patch_that_cannot_apply_is_refused(patch: object, kind: str):
    with pytest.raises(PatchError):
        apply_patch(DEPLOYMENT, patch, kind)
