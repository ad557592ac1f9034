"""The Kubernetes backend: scale, rollout undo and restart, set env, raise a memory limit, delete a pod, suspend a
CronJob, through the official client. Each action (a :class:`KubeAction`, one row of :data:`ACTIONS`) reads the object first
(``before``), changes it the way kubectl does (a rollback copies the old ReplicaSet's template into the
Deployment with a JSON patch), is sent with server-side dry run (``dryRun=All``) when prepared, and is checked
for its effect on the Deployment's status. Adding a Kubernetes action is one class here and its row.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from irkit.actions.model import Step
from irkit.errors import ActionError, StaleTargetError
from irkit.rules.plan import shell
from irkit.sources.k8s import Kube

if TYPE_CHECKING:
    from irkit.actions.systems import Systems

__all__ = ["ACTIONS", "BACKEND", "DeletePod", "KubeAction", "KubeBackend", "RaiseMemoryLimit", "RolloutRestart",
           "RolloutUndo", "Scale", "SetEnv", "SuspendCronJob"]

Prepared = tuple[dict[str, Any], dict[str, Any], dict[str, Any], str, str]  # before, after, params, undo, undo cmd
_RESTARTED = "kubectl.kubernetes.io/restartedAt"
_REVISION = "deployment.kubernetes.io/revision"


def _plain(kube: Kube, obj: Any) -> dict[str, Any]:
    result: dict[str, Any] = kube.api_client.sanitize_for_serialization(obj)
    return result


def _deployment(kube: Kube, ns: str, name: str) -> dict[str, Any]:
    return _plain(kube, kube.call(f"get deployment {name}", kube.apps.read_namespaced_deployment, name, ns))


def _containers(dep: dict[str, Any]) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = dep["spec"]["template"]["spec"]["containers"]
    return containers


def _revisions(kube: Kube, ns: str, dep: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """The Deployment's ReplicaSets by revision, as ``kubectl rollout history`` finds them."""
    selector = ",".join(f"{k}={v}" for k, v in dep["spec"]["selector"].get("matchLabels", {}).items())
    listing = kube.call(f"list replicasets of {dep['metadata']['name']}", kube.apps.list_namespaced_replica_set, ns,
                        label_selector=selector)
    out = []
    for rs in (_plain(kube, item) for item in listing.items):
        owners = rs["metadata"].get("ownerReferences") or []
        if any(o.get("uid") == dep["metadata"]["uid"] for o in owners):
            out.append((int(rs["metadata"].get("annotations", {}).get(_REVISION, 0)), rs))
    return sorted(out, key=lambda pair: pair[0])


def _images(template: dict[str, Any]) -> list[str]:
    return [c.get("image", "") for c in template["spec"]["containers"]]


def _env_patch(step: Step, values: dict[str, str | None]) -> dict[str, Any]:
    var = step.params["var"]
    containers = [{"name": c, "env": [{"name": var, "value": v} if v is not None else {"name": var, "$patch": "delete"}]}
                  for c, v in values.items()]
    return {"spec": {"template": {"spec": {"containers": containers}}}}


def _memory_patch(container: str, memory: str) -> dict[str, Any]:
    return {"spec": {"template": {"spec": {"containers": [
        {"name": container, "resources": {"limits": {"memory": memory}}}]}}}}


def _patch(kube: Kube, step: Step, body: Any, dry: bool) -> dict[str, Any]:
    ns, name = step.params["namespace"], step.params["deployment"]
    return _plain(kube, kube.call(f"patch deployment {name}", kube.apps.patch_namespaced_deployment, name, ns, body,
                                  **({"dry_run": "All"} if dry else {})))


def _rollback(kube: Kube, step: Step, replicaset: str, dry: bool) -> dict[str, Any]:
    """What ``kubectl rollout undo`` sends: the ReplicaSet's template (without its pod-template-hash label)
    becomes the Deployment's, in one JSON patch."""
    ns = step.params["namespace"]
    dep = _deployment(kube, ns, step.params["deployment"])
    found = next((rs for _, rs in _revisions(kube, ns, dep) if rs["metadata"]["name"] == replicaset), None)
    if found is None:
        raise StaleTargetError(f"replicaset {replicaset} of deployment {step.params['deployment']} is gone: plan "
                               "the rollback again")
    template = copy.deepcopy(found["spec"]["template"])
    (template.get("metadata") or {}).get("labels", {}).pop("pod-template-hash", None)
    annotations = {k: v for k, v in (dep["metadata"].get("annotations") or {}).items()}
    cause = (found["metadata"].get("annotations") or {}).get("kubernetes.io/change-cause")
    if cause:
        annotations["kubernetes.io/change-cause"] = cause
    return _patch(kube, step, [{"op": "replace", "path": "/spec/template", "value": template},
                               {"op": "replace", "path": "/metadata/annotations", "value": annotations}], dry)


def _rolled_out(dep: dict[str, Any]) -> tuple[bool, str]:
    """Whether the Deployment's controller has caught up and every replica is available."""
    spec, status = dep["spec"], dep.get("status") or {}
    want = int(spec.get("replicas", 1))
    caught_up = int(status.get("observedGeneration") or 0) >= int(dep["metadata"].get("generation") or 0)
    available, updated = int(status.get("availableReplicas") or 0), int(status.get("updatedReplicas") or 0)
    ok = caught_up and updated >= want and available >= want
    return ok, f"{available}/{want} available, {updated} updated" + ("" if caught_up else ", rollout not observed yet")



class KubeAction:
    """One Kubernetes action: how it is prepared, applied (``dry``: dryRun=All), checked, undone."""

    def prepare(self, kube: Kube, params: dict[str, Any]) -> Prepared:
        raise NotImplementedError

    def apply(self, kube: Kube, step: Step, dry: bool) -> dict[str, Any]:
        raise NotImplementedError

    def verify(self, kube: Kube, step: Step) -> tuple[bool, str]:
        """Whether the change has its effect now: by default, the Deployment's rollout is complete."""
        return _rolled_out(_deployment(kube, step.params["namespace"], step.params["deployment"]))

    def undo(self, kube: Kube, step: Step) -> dict[str, Any]:
        raise ActionError(f"{step.action} has no undo: {step.undo or 'nothing to restore'}")

    def verify_undo(self, kube: Kube, step: Step) -> tuple[bool, str]:
        return self.verify(kube, step)


class DeletePod(KubeAction):
    def prepare(self, kube: Kube, params: dict[str, Any]) -> Prepared:
        ns = params["namespace"]
        pod = _plain(kube, kube.call(f"get pod {params['pod']}", kube.core.read_namespaced_pod, params["pod"], ns))
        owners = pod["metadata"].get("ownerReferences") or []
        ready = all(s.get("ready") for s in pod.get("status", {}).get("containerStatuses") or [])
        before = {"pod": params["pod"], "uid": pod["metadata"]["uid"], "phase": pod["status"].get("phase"),
                  "ready": ready, "owner": f"{owners[0]['kind']}/{owners[0]['name']}" if owners else None}
        if not owners:
            raise ActionError(f"pod {params['pod']} has no controller: deleting it would not bring it back")
        return (before, {"pod": params["pod"], "uid": "a new pod from its controller"}, {"uid": before["uid"]},
                "none needed: its controller makes the pod again", "")

    def apply(self, kube: Kube, step: Step, dry: bool) -> dict[str, Any]:
        p = step.params
        return _plain(kube, kube.call(f"delete pod {p['pod']}", kube.core.delete_namespaced_pod, p["pod"],
                                      p["namespace"], **({"dry_run": "All"} if dry else {})))

    def verify(self, kube: Kube, step: Step) -> tuple[bool, str]:
        p = step.params
        listing = kube.call("list pods", kube.core.list_namespaced_pod, p["namespace"],
                            field_selector=f"metadata.name={p['pod']}")
        same = [pod for pod in listing.items if pod.metadata.uid == p["uid"]]
        return (not same, "the pod was replaced" if not same else "the old pod is still there")


class Scale(KubeAction):
    def prepare(self, kube: Kube, params: dict[str, Any]) -> Prepared:
        ns, name = params["namespace"], params["deployment"]
        old, new = int(_deployment(kube, ns, name)["spec"].get("replicas", 1)), int(params["replicas"])
        return ({"replicas": old}, {"replicas": new}, {"from_replicas": old}, f"scale back to {old} replicas",
                shell("kubectl", "scale", f"deployment/{name}", f"--replicas={old}", "-n", ns))

    def apply(self, kube: Kube, step: Step, dry: bool) -> dict[str, Any]:
        p = step.params
        return _plain(kube, kube.call(f"scale deployment {p['deployment']}",
                                      kube.apps.patch_namespaced_deployment_scale, p["deployment"], p["namespace"],
                                      {"spec": {"replicas": int(p["replicas"])}},
                                      **({"dry_run": "All"} if dry else {})))

    def verify(self, kube: Kube, step: Step) -> tuple[bool, str]:
        return self._replicas(kube, step, int(step.params["replicas"]))

    def undo(self, kube: Kube, step: Step) -> dict[str, Any]:
        return self.apply(kube, replace(step, params={**step.params, "replicas": step.params["from_replicas"]}),
                          dry=False)

    def verify_undo(self, kube: Kube, step: Step) -> tuple[bool, str]:
        return self._replicas(kube, step, int(step.params["from_replicas"]))

    @staticmethod
    def _replicas(kube: Kube, step: Step, wanted: int) -> tuple[bool, str]:
        dep = _deployment(kube, step.params["namespace"], step.params["deployment"])
        if int(dep["spec"].get("replicas", 0)) != wanted:
            return False, f"spec.replicas is {dep['spec'].get('replicas')}"
        return _rolled_out(dep)


class RolloutUndo(KubeAction):
    def prepare(self, kube: Kube, params: dict[str, Any]) -> Prepared:
        ns, name = params["namespace"], params["deployment"]
        dep = _deployment(kube, ns, name)
        history = _revisions(kube, ns, dep)
        current = int(dep["metadata"].get("annotations", {}).get(_REVISION, 0))
        wanted = params.get("to_revision")
        older = [pair for pair in history if (pair[0] == int(wanted) if wanted else pair[0] < current)]
        if not older:
            raise ActionError(f"deployment {name} has no {'revision ' + str(wanted) if wanted else 'earlier revision'}"
                              " to roll back to (kubectl rollout history shows its revisions)")
        revision, rs = older[-1]
        now = next((r for n, r in history if n == current), None)
        images = _images(dep["spec"]["template"])
        before = {"revision": current, "images": images, "replicaset": now["metadata"]["name"] if now else None}
        after = {"revision": revision, "images": _images(rs["spec"]["template"]), "replicaset": rs["metadata"]["name"]}
        return (before, after, {"to_replicaset": rs["metadata"]["name"], "from_revision": current},
                f"roll back to revision {current} ({', '.join(images)})",
                shell("kubectl", "rollout", "undo", f"deployment/{name}", f"--to-revision={current}", "-n", ns))

    def apply(self, kube: Kube, step: Step, dry: bool) -> dict[str, Any]:
        return _rollback(kube, step, step.params["to_replicaset"], dry)

    def verify(self, kube: Kube, step: Step) -> tuple[bool, str]:
        return self._runs(kube, step, list(step.after.get("images") or []), "the rolled-back images")

    def undo(self, kube: Kube, step: Step) -> dict[str, Any]:
        replicaset = step.before.get("replicaset")
        if not replicaset:
            raise ActionError("the revision before the rollback is not known: roll forward by hand")
        return _rollback(kube, step, str(replicaset), dry=False)

    def verify_undo(self, kube: Kube, step: Step) -> tuple[bool, str]:
        return self._runs(kube, step, list(step.before.get("images") or []), "the images it ran before the rollback")

    @staticmethod
    def _runs(kube: Kube, step: Step, images: list[str], what: str) -> tuple[bool, str]:
        dep = _deployment(kube, step.params["namespace"], step.params["deployment"])
        if _images(dep["spec"]["template"]) != images:
            return False, f"the deployment runs {', '.join(_images(dep['spec']['template']))}, not {what}"
        return _rolled_out(dep)


class SetEnv(KubeAction):
    def prepare(self, kube: Kube, params: dict[str, Any]) -> Prepared:
        ns, name = params["namespace"], params["deployment"]
        dep = _deployment(kube, ns, name)
        var, _, value = str(params["env"]).partition("=")
        was: dict[str, Any] = {c["name"]: next((e.get("value") for e in c.get("env") or [] if e["name"] == var), None)
                               for c in _containers(dep)}
        env_before: dict[str, Any] = {c: {var: v} for c, v in was.items()}
        env_after: dict[str, Any] = {c: {var: value} for c in was}
        olds = set(was.values())
        restore = (f"{var}-" if olds == {None} else f"{var}={next(iter(olds))}") if len(olds) == 1 else ""
        return (env_before, env_after, {"var": var, "value": value, "old": was},
                f"set {var} back to {'unset' if olds == {None} else was}",
                shell("kubectl", "set", "env", f"deployment/{name}", restore, "-n", ns) if restore else "")

    def apply(self, kube: Kube, step: Step, dry: bool) -> dict[str, Any]:
        return _patch(kube, step, _env_patch(step, {c: step.params["value"] for c in step.params["old"]}), dry)

    def verify(self, kube: Kube, step: Step) -> tuple[bool, str]:
        return self._values(kube, step, {c: step.params["value"] for c in step.params["old"]})

    def undo(self, kube: Kube, step: Step) -> dict[str, Any]:
        return _patch(kube, step, _env_patch(step, dict(step.params["old"])), dry=False)

    def verify_undo(self, kube: Kube, step: Step) -> tuple[bool, str]:
        return self._values(kube, step, dict(step.params["old"]))

    @staticmethod
    def _values(kube: Kube, step: Step, wanted: dict[str, Any]) -> tuple[bool, str]:
        dep = _deployment(kube, step.params["namespace"], step.params["deployment"])
        var = step.params["var"]
        for c in _containers(dep):
            now = next((e.get("value") for e in c.get("env") or [] if e["name"] == var), None)
            if c["name"] in wanted and now != wanted[c["name"]]:
                return False, f"{var} is {now!r} in {c['name']}"
        return _rolled_out(dep)


class RaiseMemoryLimit(KubeAction):
    def prepare(self, kube: Kube, params: dict[str, Any]) -> Prepared:
        ns, name = params["namespace"], params["deployment"]
        if not params.get("memory"):
            raise ActionError(f"the memory limit of deployment {name} is not known: raise it by hand")
        dep = _deployment(kube, ns, name)
        target = params.get("container") or _containers(dep)[0]["name"]
        container = next((c for c in _containers(dep) if c["name"] == target), None)
        if container is None:
            raise ActionError(f"deployment {name} has no container {target}")
        limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
        return ({target: {"memory": limit}}, {target: {"memory": params["memory"]}},
                {"container": target, "old_memory": limit}, f"set the memory limit back to {limit}",
                shell("kubectl", "set", "resources", f"deployment/{name}", "-n", ns, "-c", target,
                      f"--limits=memory={limit}") if limit else "")

    def apply(self, kube: Kube, step: Step, dry: bool) -> dict[str, Any]:
        return _patch(kube, step, _memory_patch(step.params["container"], step.params["memory"]), dry)

    def undo(self, kube: Kube, step: Step) -> dict[str, Any]:
        if not step.params.get("old_memory"):
            raise ActionError("the container had no memory limit before: remove the limit by hand if wanted")
        return _patch(kube, step, _memory_patch(step.params["container"], step.params["old_memory"]), dry=False)


class RolloutRestart(KubeAction):
    def prepare(self, kube: Kube, params: dict[str, Any]) -> Prepared:
        dep = _deployment(kube, params["namespace"], params["deployment"])
        stamp = (dep["spec"]["template"].get("metadata") or {}).get("annotations", {}).get(_RESTARTED)
        return ({_RESTARTED: stamp}, {_RESTARTED: "now"}, {}, "none needed: a restart changes no setting", "")

    def apply(self, kube: Kube, step: Step, dry: bool) -> dict[str, Any]:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return _patch(kube, step, {"spec": {"template": {"metadata": {"annotations": {_RESTARTED: stamp}}}}}, dry)


class SuspendCronJob(KubeAction):
    """A scheduled actor stopped: ``spec.suspend`` true, so it starts no new Job (one already running goes on;
    the plan's next step, the rollback, comes after). Undone by setting ``suspend`` back as it was."""

    def prepare(self, kube: Kube, params: dict[str, Any]) -> Prepared:
        ns, name = params["namespace"], params["cronjob"]
        was = bool(self._cronjob(kube, ns, name)["spec"].get("suspend"))
        body = json.dumps({"spec": {"suspend": was}}, separators=(",", ":"))
        return ({"suspend": was}, {"suspend": True}, {"was_suspended": was},
                "resume it" if not was else "none needed: it was suspended already",
                shell("kubectl", "patch", f"cronjob/{name}", "-n", ns, "--type=merge", "-p", body) if not was else "")

    def apply(self, kube: Kube, step: Step, dry: bool) -> dict[str, Any]:
        return self._suspend(kube, step, True, dry)

    def verify(self, kube: Kube, step: Step) -> tuple[bool, str]:
        return self._is(kube, step, True)

    def undo(self, kube: Kube, step: Step) -> dict[str, Any]:
        return self._suspend(kube, step, bool(step.params.get("was_suspended")), dry=False)

    def verify_undo(self, kube: Kube, step: Step) -> tuple[bool, str]:
        return self._is(kube, step, bool(step.params.get("was_suspended")))

    @staticmethod
    def _cronjob(kube: Kube, ns: str, name: str) -> dict[str, Any]:
        return _plain(kube, kube.call(f"get cronjob {name}", kube.batch.read_namespaced_cron_job, name, ns))

    @staticmethod
    def _suspend(kube: Kube, step: Step, value: bool, dry: bool) -> dict[str, Any]:
        p = step.params
        return _plain(kube, kube.call(f"patch cronjob {p['cronjob']}", kube.batch.patch_namespaced_cron_job,
                                      p["cronjob"], p["namespace"], {"spec": {"suspend": value}},
                                      **({"dry_run": "All"} if dry else {})))

    def _is(self, kube: Kube, step: Step, wanted: bool) -> tuple[bool, str]:
        now = bool(self._cronjob(kube, step.params["namespace"], step.params["cronjob"])["spec"].get("suspend"))
        return now == wanted, f"spec.suspend is {str(now).lower()}"


# Every Kubernetes action of the playbook's table (irkit.playbook.ACTIONS, system "kubernetes").
ACTIONS: dict[str, KubeAction] = {"delete-pod": DeletePod(), "scale": Scale(), "rollout-undo": RolloutUndo(),
                                  "set-env": SetEnv(), "raise-memory-limit": RaiseMemoryLimit(),
                                  "rollout-restart": RolloutRestart(), "suspend-cronjob": SuspendCronJob()}


class KubeBackend:
    """The :class:`~irkit.actions.model.Backend` of ``kubernetes``: each step by its :data:`ACTIONS` row."""

    def prepare(self, systems: Systems, step: Step, dry_run: bool) -> Step:
        before, after, extra, undo, undo_command = ACTIONS[step.action].prepare(systems.kube, dict(step.params))
        step = replace(step, params={**step.params, **extra}, before=before, after=after, undo=undo,
                       undo_command=undo_command)
        if dry_run:  # the API server validates the change without storing it
            ACTIONS[step.action].apply(systems.kube, step, dry=True)
            step = replace(step, dry_run="accepted by the API server (dryRun=All): nothing was changed")
        return step

    def state(self, systems: Systems, step: Step) -> dict[str, Any]:
        return ACTIONS[step.action].prepare(systems.kube, dict(step.params))[0]

    def apply(self, systems: Systems, step: Step) -> str:
        ACTIONS[step.action].apply(systems.kube, step, dry=False)
        return "accepted by the API server"

    def verify(self, systems: Systems, step: Step, answer: str) -> tuple[bool, str]:
        return ACTIONS[step.action].verify(systems.kube, step)

    def undo(self, systems: Systems, step: Step) -> str:
        ACTIONS[step.action].undo(systems.kube, step)
        return "accepted by the API server"

    def verify_undo(self, systems: Systems, step: Step, answer: str) -> tuple[bool, str]:
        return ACTIONS[step.action].verify_undo(systems.kube, step)


BACKEND = KubeBackend()
