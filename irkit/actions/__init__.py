"""Mitigation actions (playbook 3.1): the only code in irkit that changes anything.

    prepare(plan, systems, incident)   each mitigation becomes a Step: the state now (before), the state
                                       it leaves (after), the guardrails, a server-side dry run, the undo
    execute(step, systems, ...)        a dry run unless mitigations are enabled for the run and the step
                                       is confirmed; then re-check, apply, and watch for the effect
    revert(step, systems, ...)         the step's undo, confirmed and checked the same way

Guardrails come from ``[mitigation]`` in irkit.toml (docs/actions.md): the actions allowed
at all, the namespaces and workloads they may touch, replica bounds, how many database sessions one
run may signal, superusers' sessions. A step a guardrail refuses is kept, shown and recorded with
the guardrail's name and the key that changes it; it is never applied.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from irkit import playbook
from irkit.actions import kube, pg, service
from irkit.actions.model import Backend, Confirmation, Outcome, Step, step_id
from irkit.actions.systems import Systems
from irkit.config import Config, redact
from irkit.errors import ActionError, ConfirmationError, GuardrailError, IrkitError, SourceError
from irkit.rules.names import belongs_to

if TYPE_CHECKING:
    from irkit.rules.plan import Mitigation

__all__ = ["BACKENDS", "ConfirmationError", "Confirmation", "Outcome", "Step", "Systems", "applying", "execute",
           "guardrails", "held", "prepare", "revert", "step_id"]

# How each system's actions are carried out (irkit.playbook.SYSTEMS): one backend each.
BACKENDS: dict[str, Backend] = {"kubernetes": kube.BACKEND, "postgresql": pg.BACKEND, "http": service.HTTP,
                                "redis": service.REDIS}


# --------------------------------------------------------------------------- guardrails

def _workloads(cfg: Config) -> tuple[str, ...]:
    return cfg.allowed_workloads or (*cfg.deployments, cfg.postgres_statefulset, cfg.redis_statefulset)


def guardrails(cfg: Config, m: Mitigation) -> list[str]:
    """The guardrails the mitigation passes, by name; raises GuardrailError naming the one it does not."""
    p = m.params
    passed = []
    if m.action not in cfg.allowed_actions:
        raise GuardrailError(f"{m.action} is not in allowed_actions ([mitigation] in irkit.toml): add it there to "
                             "let irkit apply it")
    passed.append("allowed_actions")
    namespaces = cfg.allowed_namespaces or (cfg.namespace,)
    if m.action in playbook.ACTIONS and playbook.ACTIONS[m.action].system == "kubernetes":
        if p.get("namespace") not in namespaces:
            raise GuardrailError(f"namespace {p.get('namespace')} is not in allowed_namespaces ({', '.join(namespaces)})"
                                 "; add it there to let irkit change it")
        passed.append("allowed_namespaces")
        workload = p.get("deployment") or next((w for w in _workloads(cfg) if belongs_to(str(p.get("pod", "")), w)),
                                               None)
        if workload not in _workloads(cfg):
            raise GuardrailError(f"{m.target} does not belong to allowed_workloads ({', '.join(_workloads(cfg))}); "
                                 "add its workload there to let irkit change it")
        # A CronJob is suspended for the workload it writes; when allowed_workloads names CronJobs, only those.
        cronjob = str(p.get("cronjob") or "")
        if m.action == "suspend-cronjob" and cfg.allowed_workloads and cronjob not in cfg.allowed_workloads:
            raise GuardrailError(f"cronjob {cronjob} is not in allowed_workloads ({', '.join(cfg.allowed_workloads)}); "
                                 "add it there to let irkit suspend it")
        passed.append("allowed_workloads")
    if m.action == "scale":
        replicas = int(p.get("replicas", 0))
        if not cfg.min_replicas <= replicas <= cfg.max_replicas:
            raise GuardrailError(f"{replicas} replicas is outside min_replicas..max_replicas ({cfg.min_replicas}.."
                                 f"{cfg.max_replicas}); change them in [mitigation] to allow it")
        passed.append("min_replicas..max_replicas")
    return passed


# --------------------------------------------------------------------------- prepare

def _prepare_one(m: Mitigation, systems: Systems, incident: str, dry_run: bool) -> Step:
    spec = playbook.ACTIONS.get(m.action)
    base = Step("", m.action, m.target, spec.system if spec else "", m.why, m.command, dict(m.params))
    try:
        if spec is None:
            raise ActionError(f"irkit has no action {m.action}")
        passed = guardrails(systems.config, m)
        return BACKENDS[spec.system].prepare(systems, replace(base, guardrails=tuple(passed)), dry_run)
    except GuardrailError as exc:
        return replace(base, refused=f"refused by guardrail: {exc}")
    except (ActionError, SourceError) as exc:
        return replace(base, refused=f"cannot be applied: {redact(str(exc), systems.config)}")


def prepare(plan: Iterable[Mitigation], systems: Systems, incident: str, *, dry_run: bool = True) -> list[Step]:
    """The plan's mitigations as steps (see the module docstring), in the plan's order."""
    steps: list[Step] = []
    signalled = 0
    for m in plan:
        step = _prepare_one(m, systems, incident, dry_run)
        # The id covers what was read while preparing (the sessions of an application, the pod's uid, the
        # revision rolled back to): a confirmation pasted after the situation moved names another step.
        step = replace(step, id=step_id(incident, step.action, step.target, step.params))
        if step.system == "postgresql" and not step.refused:
            signalled += pg.signals(step)
            if signalled > systems.config.max_terminations:
                step = replace(step, refused=f"refused by guardrail: the plan would signal {signalled} database "
                                             f"sessions, more than max_terminations = {systems.config.max_terminations}"
                                             " ([mitigation] in irkit.toml)")
            else:
                step = replace(step, guardrails=(*step.guardrails, "max_terminations"))
        steps.append(step)
    return steps


# --------------------------------------------------------------------------- apply, verify, undo

def _wait(check: Callable[[], tuple[bool, str]], bound: float, every: float = 0.5) -> tuple[bool, str]:
    """Poll ``check`` until it passes or ``bound`` seconds pass; its last answer."""
    deadline = time.monotonic() + bound
    while True:
        ok, detail = check()
        if ok or time.monotonic() >= deadline:
            return ok, detail
        time.sleep(every)


def _state(systems: Systems, step: Step) -> dict[str, object]:
    """The target's state now, as ``before`` was read (for the record of what changed)."""
    try:
        return BACKENDS[step.system].state(systems, step)
    except (ActionError, SourceError) as exc:
        return {"unreadable": str(exc)}


def held(step: Step, incident: str, enabled: bool, confirmation: Confirmation | None) -> str:
    """Why the step is not applied ('' when it may be)."""
    if step.refused:
        return step.refused
    if not enabled:
        return "dry run: mitigations are not enabled for this run (execute_mitigations = False); nothing was changed"
    if confirmation is None or step.id not in confirmation.ids:
        return "dry run: not confirmed; nothing was changed"
    if confirmation.incident != incident:
        return f"refused: the confirmation is for incident {confirmation.incident}, not {incident}"
    return ""


def applying(step: Step, confirmation: Confirmation, *, undo: bool = False) -> Outcome:
    """The record written before a confirmed step (or its undo) is carried out: if the run dies before the step's
    outcome is written, the evidence still says it was in flight and may have been applied."""
    return Outcome(step.id, f"undo {step.action}" if undo else step.action, "applying",
                   "in flight: being applied when this was recorded; if nothing followed, the run stopped while it "
                   "ran and the change may have been made", dict(step.before), dict(step.after),
                   confirmation.as_dict(), datetime.now(UTC).isoformat())


def execute(step: Step, systems: Systems, *, incident: str, enabled: bool = False,
            confirmation: Confirmation | None = None) -> Outcome:
    """Apply one step if it may be applied (see :func:`held`), then watch for its effect within action_timeout."""
    cfg, started, t0 = systems.config, datetime.now(UTC), time.monotonic()
    held_by = held(step, incident, enabled, confirmation)
    if held_by:
        status = "refused" if held_by.startswith("refused") else "dry-run"
        return Outcome(step.id, step.action, status, held_by, dict(step.before), dict(step.after),
                       started_at=started.isoformat())
    assert confirmation is not None
    before = _state(systems, step)
    backend = BACKENDS[step.system]
    try:
        answer = backend.apply(systems, step)
        ok, detail = _wait(lambda: backend.verify(systems, step, answer), cfg.action_timeout)
    except IrkitError as exc:
        return Outcome(step.id, step.action, "failed", f"not applied: {redact(str(exc), cfg)}", before, before,
                       confirmation.as_dict(), started.isoformat(), round(time.monotonic() - t0, 2))
    status = "applied" if ok else "failed"
    detail = detail if ok else f"applied, but no effect within {cfg.action_timeout:g} s: {detail}"
    return Outcome(step.id, step.action, status, detail, before, _state(systems, step), confirmation.as_dict(),
                   started.isoformat(), round(time.monotonic() - t0, 2))


def revert(step: Step, systems: Systems, *, incident: str, enabled: bool = False,
           confirmation: Confirmation | None = None) -> Outcome:
    """Apply the step's undo (confirmed like the step: the confirmation names the step's id) and check it."""
    cfg, started, t0 = systems.config, datetime.now(UTC), time.monotonic()
    held_by = held(replace(step, refused=""), incident, enabled, confirmation)
    if held_by:
        return Outcome(step.id, f"undo {step.action}", "dry-run" if not held_by.startswith("refused") else "refused",
                       held_by, started_at=started.isoformat())
    assert confirmation is not None
    backend = BACKENDS[step.system]
    try:
        answer = backend.undo(systems, step)
        ok, detail = _wait(lambda: backend.verify_undo(systems, step, answer), cfg.action_timeout)
    except IrkitError as exc:
        return Outcome(step.id, f"undo {step.action}", "undo-failed", redact(str(exc), cfg),
                       confirmation=confirmation.as_dict(), started_at=started.isoformat(),
                       seconds=round(time.monotonic() - t0, 2))
    return Outcome(step.id, f"undo {step.action}", "undone" if ok else "undo-failed", detail, dict(step.after),
                   _state(systems, step), confirmation.as_dict(), started.isoformat(), round(time.monotonic() - t0, 2))
