"""Phase 3, mitigation (3.1): the plan the findings point to, prepared, and applied only when confirmed.

The plan says which action, on what, why, and the exact command. Each step is then
prepared (:mod:`irkit.actions`): the state now and after, the guardrails, a server-side
dry run. Nothing changes unless the run enables mitigations (``execute_mitigations``)
*and* a person confirms the step: a button under the plan in JupyterLab, or the
``confirm`` parameter (``INCIDENT:STEP-ID,...``) headless. Every outcome is recorded
with who confirmed it and when.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from html import escape
from typing import Any

import pandas as pd

from irkit import actions, playbook
from irkit.display import views
from irkit.evidence import records as R
from irkit.phases import assess
from irkit.phases.incident import Incident
from irkit.rules.kinds import Finding
from irkit.rules.plan import PlanTargets, plan

__all__ = ["apply_confirmed", "communicate", "controls", "findings", "mitigation_plan", "prepared_steps", "who"]


def _investigation(inc: Incident) -> tuple[list[Finding], str]:
    """The findings to plan from: this run's phase 2; else (phase 3 opened on its own, in JupyterLab) the newest
    investigation of the incident's runs, and which run that was ("" when none)."""
    if inc.run.raw(R.FINDINGS) is not None:
        return inc.earlier(R.FINDINGS), inc.run_dir.name
    found = inc.view().findings
    return (found.value, found.run) if found else ([], "")


def findings(inc: Incident) -> pd.DataFrame | views.Note | views.Captioned:
    """The ranked findings phase 2 recorded (this run's, else the incident's newest investigation)."""
    found, run = _investigation(inc)
    if not run:
        return views.Note("no investigation of this incident yet: there are no findings to plan from; run phase 2 "
                          "first (irkit run --phases 2-3, or 02-investigate here)")
    frame = views.shown(pd.DataFrame([{"kind": f.kind.value, "subject": f.subject, "detail": f.detail}
                                      for f in found], columns=["kind", "subject", "detail"]), "phase 2 found nothing")
    if run != inc.run_dir.name and isinstance(frame, pd.DataFrame):
        return views.Captioned(frame, f"from the investigation of run {run}")
    return frame


def mitigation_plan(inc: Incident) -> views.PlanView:
    """Playbook 3.1 mitigations for the findings, most urgent first. A false alarm plans nothing."""
    found, run = _investigation(inc)
    if not run:
        inc.record(R.MITIGATIONS, [])
        return views.PlanView([], "no plan: the incident has not been investigated (phase 2), so nothing was found "
                                  "to plan from")
    view = inc.view()
    real = inc.earlier(R.REAL) if inc.earlier(R.REAL) is not None else (view.real.value if view.real else None)
    ongoing = inc.earlier(R.ONGOING) if inc.earlier(R.ONGOING) is not None else (
        view.ongoing.value if view.ongoing else None)
    if real and ongoing is False:  # it happened and is over: nothing to mitigate, the post-mortem is next
        inc.record(R.MITIGATIONS, [])
        over = inc.earlier(R.RESOLVED_AT)
        return views.PlanView([], f"nothing to mitigate: the incident is over (resolved"
                                  f"{f' at {assess.when(over)}' if over else ''}); validate (phase 4), then write the "
                                  "post-mortem")
    # Phase 2 may have found a cause beside "not an incident": a minor incident, planned like any other.
    revised = inc.earlier(R.SEVERITY_REVISED) or (view.severity.value if view.severity and
                                                  view.severity.phase == R.SEVERITY_REVISED.phase else None)
    minor = revised is not None and bool(revised.real)
    steps = [] if real is False and not minor else plan(found, PlanTargets.from_config(inc.config))
    inc.record(R.MITIGATIONS, [step.as_dict() for step in steps])
    return views.PlanView(steps)


def who() -> str:
    """Who is confirming: the JupyterHub user, else the login name."""
    import getpass
    import os
    return os.environ.get("JUPYTERHUB_USER") or getpass.getuser()


def _systems(inc: Incident) -> actions.Systems:
    """The action clients, kept with the incident's other clients (closed with them)."""
    systems: actions.Systems = inc._client("actions", lambda cfg: actions.Systems(cfg, kube=inc.kube))
    return systems


def prepared_steps(inc: Incident) -> views.StepsView:
    """Each planned mitigation made concrete: before and after, guardrails, the API server's dry run, the undo."""
    planned = inc.current(R.MITIGATIONS)
    if not planned:
        inc.record(R.STEPS, [])
        return views.StepsView([], "nothing to prepare: the plan is empty")
    steps = actions.prepare(planned, _systems(inc), inc.id)
    inc.record(R.STEPS, steps)
    return views.StepsView(steps)


def _record(inc: Incident, outcomes: list[actions.Outcome]) -> None:
    """Add outcomes to the phase's record (on disk at once), and mark each planned mitigation with what became
    of its step (applied, failed, refused, undone; a dry run leaves it planned). An outcome takes the place of
    its step's ``applying`` record, the one written before the step was carried out."""
    every = list(inc.current(R.OUTCOMES))
    for outcome in outcomes:
        pending = next((i for i in range(len(every) - 1, -1, -1) if every[i].id == outcome.id
                        and every[i].status == "applying"), None)
        if pending is not None and outcome.status != "applying":
            every[pending] = outcome
        else:
            every.append(outcome)
    inc.record(R.OUTCOMES, every)
    latest = {o.id: o.status for o in every if o.status != "dry-run"}
    steps = inc.current(R.STEPS)
    planned = inc.current(R.MITIGATIONS)
    if len(steps) == len(planned):  # one step per mitigation, in order
        inc.record(R.MITIGATIONS, [replace(m, status=latest.get(s.id, m.status)) for m, s in zip(planned, steps,
                                                                                                strict=True)])


def apply_confirmed(inc: Incident, execute_mitigations: bool = False, confirm: str = "") -> pd.DataFrame | views.Note:
    """Headless: apply the steps ``confirm`` names (``INCIDENT:STEP-ID,...``) when ``execute_mitigations`` is on.

    Without both, every step is a dry run and nothing changes. A confirmation for another incident
    or naming a step this plan does not have is refused as a whole (ConfirmationError).
    """
    steps = inc.current(R.STEPS)
    confirmation = actions.Confirmation.parse(confirm, by=who(), via="parameter") if confirm.strip() else None
    if confirmation is not None:
        confirmation.check(inc.id, [s.id for s in steps])
    if not steps:
        return views.Note("nothing to apply: no steps were prepared")
    outcomes = [_carry_out(inc, step, confirmation, execute_mitigations) for step in steps]
    return views.outcomes_frame(outcomes)


def _carry_out(inc: Incident, step: actions.Step, confirmation: actions.Confirmation | None, enabled: bool, *,
               undo: bool = False) -> actions.Outcome:
    """One step (or its undo), recorded as it goes: ``applying`` on disk before the change is made, its outcome
    the moment it is known. A run killed in between leaves evidence that says the step was in flight."""
    if confirmation is not None and not actions.held(replace(step, refused="") if undo else step, inc.id, enabled,
                                                     confirmation):
        _record(inc, [actions.applying(step, confirmation, undo=undo)])
    run = actions.revert if undo else actions.execute
    outcome = run(step, _systems(inc), incident=inc.id, enabled=enabled, confirmation=confirmation)
    _record(inc, [outcome])
    return outcome


def controls(inc: Incident, execute_mitigations: bool = False) -> Any:
    """JupyterLab: a confirm button under each prepared step (and an undo button once it is applied).

    Shown only when the run enables mitigations; each press is a confirmation by :func:`who`, now.
    """
    steps = [s for s in inc.current(R.STEPS) if not s.refused]
    if not execute_mitigations:
        return views.Note("mitigations are not enabled for this run: set execute_mitigations = True in the "
                          "parameters cell to get a confirm button under each step")
    if not steps:
        return views.Note("no step can be applied")
    import ipywidgets as widgets

    latest = {o.id: o for o in inc.current(R.OUTCOMES) if o.status not in ("dry-run", "applying")}
    rows = []
    for step in steps:
        undoable = playbook.ACTIONS[step.action].undoable if step.action in playbook.ACTIONS else False
        out = widgets.Output()
        state = widgets.HTML(_state(latest.get(step.id)))
        done = latest.get(step.id)
        apply_button = widgets.Button(description=f"Apply {step.id}", button_style="danger",
                                      tooltip=f"{step.action} {step.target}",
                                      disabled=done is not None and done.status in ("applied", "undone"))
        undo_button = widgets.Button(description="Undo" if undoable else "No undo",
                                     disabled=not (undoable and done is not None and done.status == "applied"),
                                     tooltip=step.undo if undoable else f"{step.action}: {step.undo}")

        def press(_: Any, step: actions.Step = step, out: widgets.Output = out, state: widgets.HTML = state,
                  apply_button: widgets.Button = apply_button, undo_button: widgets.Button = undo_button,
                  undoable: bool = undoable) -> None:
            confirmation = actions.Confirmation(inc.id, (step.id,), who(), datetime.now(UTC), "widget")
            apply_button.disabled = True
            outcome = _carry_out(inc, step, confirmation, True)
            undo_button.disabled = not (undoable and outcome.status in ("applied", "failed"))
            state.value = _state(outcome)
            out.append_stdout(f"{outcome.status} by {confirmation.by} at {confirmation.at:%H:%M:%S} UTC: "
                              f"{outcome.detail}\n")

        def press_undo(_: Any, step: actions.Step = step, out: widgets.Output = out, state: widgets.HTML = state,
                       undo_button: widgets.Button = undo_button) -> None:
            confirmation = actions.Confirmation(inc.id, (step.id,), who(), datetime.now(UTC), "widget")
            undo_button.disabled = True
            outcome = _carry_out(inc, step, confirmation, True, undo=True)
            state.value = _state(outcome)
            out.append_stdout(f"{outcome.status} by {confirmation.by} at {confirmation.at:%H:%M:%S} UTC: "
                              f"{outcome.detail}\n")

        apply_button.on_click(press)
        undo_button.on_click(press_undo)
        rows.append(widgets.VBox([widgets.HTML(f"<b>{escape(step.id)}</b> {escape(step.action)} {escape(step.target)}"),
                                  state, widgets.HBox([apply_button, undo_button]), out]))
    return widgets.VBox(rows)


def _state(outcome: actions.Outcome | None) -> str:
    """A step's state now, beside its buttons (the table of outcomes above was written before any press)."""
    if outcome is None:
        return "<i>now: not applied (a dry run changes nothing)</i>"
    by = outcome.confirmation.get("by")
    return (f"<i>now: <b>{escape(outcome.status)}</b>" + (f" by {escape(str(by))}" if by else "")
            + f": {escape(outcome.detail[:200])}</i>")


def communicate(inc: Incident, send_messages: bool = False) -> Any:
    """3.2: the initial notification (or, when an earlier run of the incident wrote one, a status update saying
    what changed), the Slack message, the status page incident and the customer mail: into the outbox, and
    sent only when send_messages is on."""
    from irkit.phases import communicate as talk
    stage = "update" if talk.earlier_messages(inc) else "initial"
    return talk.write_and_send(inc, stage, send_messages)
