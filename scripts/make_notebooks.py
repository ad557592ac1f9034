"""Write notebooks/*.ipynb from the cell lists below (run after changing them; commit the result).

The notebooks are thin: markdown that follows the playbook, a ``parameters`` cell for
papermill, and code cells that each call one irkit function and show its result.
"""

from __future__ import annotations

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from irkit.evidence.report import NO_REPORT
from irkit.phases import PHASES, phase

COMMON = '''incident_id = ""             # the incident's id; empty: IRKIT_INCIDENT (irkit lab sets it), else INC-LOCAL
run_dir = ""                 # set by `irkit run`; empty: irkit lab's run, else outputs/<incident>/<day>-interactive
config_path = ""             # irkit.toml to use; empty: IRKIT_CONFIG or ./irkit.toml
window_minutes = 120         # how far back the charts and queries look'''

NOTEBOOKS = {
    1: ("", [
        ("## 1.2 Initial assessment\nIs it real? Error ratio and latency per service right now.",
         "assess.error_ratio_now(inc)"),
        (None, "assess.latency_now(inc)"),
        ("Error ratio over the window, with the SEV-3/SEV-2 bands, deploys and the detected onset.",
         "assess.error_ratio_history(inc, window_minutes)"),
        ("p95 latency over the window: a slow spike that has passed is still an incident.",
         "assess.latency_history(inc, window_minutes)"),
        ("Which workloads are down or degraded?", "assess.pod_health(inc)"),
        ("Health endpoints (the critical user journeys).", "assess.endpoint_health(inc)"),
        ("Sessions waiting on database locks now: while they queue, it is not over.", "assess.lock_waits(inc)"),
        ("## Severity\nThe playbook's classification: the highest rule wins, every rule that fired is listed.",
         "assess.assessment(inc)"),
        ("## Related incidents\nEarlier runs in `outputs/` touching the same services.",
         "assess.related_incidents(inc)"),
        ("## Quick assessment checklist", "assess.checklist(inc)"),
    ]),
    2: ('log_tail = 50               # lines per container for kubectl logs\n'
                       'older_than_seconds = 60     # active queries older than this are long-running findings', [
        ("## 2.1 System health check\n`./scripts/monitoring/health-check.sh`", "investigate.endpoints(inc)"),
        ("`kubectl get pods | grep -v Running`", "investigate.unhealthy_pods(inc)"),
        (None, "investigate.pod_chart(inc)"),
        ("`kubectl get events --sort-by=.lastTimestamp` (warnings, newest first)", "investigate.events(inc)"),
        ("`kubectl top pods`", "investigate.top(inc)"),
        ("`kubectl get deployments,statefulsets`: replicas desired and ready.", "investigate.workloads(inc)"),
        ("Rollout history: what was deployed, and when.", "investigate.rollout_history(inc)"),
        ("Configuration changes: ConfigMaps and Secrets by when they were last written (metadata only).",
         "investigate.config_changes(inc)"),
        ("## 2.2 Log analysis\n`kubectl logs deployment/... --tail=N`", "investigate.logs(inc, log_tail)"),
        ("Previous containers of restarted pods: the crash itself.", "investigate.previous_logs(inc, log_tail)"),
        ("## 2.3 Metrics\nError ratio per service over the incident window.",
         "investigate.error_ratio(inc, window_minutes)"),
        ("p95 and p99 latency against the SEV-2 line (latency_p95_slow_seconds).", "investigate.latency(inc, window_minutes)"),
        ("Traffic: requests per second now against the baseline (load beyond capacity?).",
         "investigate.traffic(inc, window_minutes)"),
        ("## 2.4 Database investigation\nSessions by state.", "investigate.activity(inc)"),
        ("Who holds the connections: by application and state.", "investigate.connections(inc)"),
        ("The database's own logs and its deadlock counter.", "investigate.database_logs(inc, log_tail)"),
        ("Locks: who blocks whom.", "investigate.lock_graph(inc)"),
        ("Long-running queries and idle-in-transaction sessions.",
         "investigate.long_running(inc, older_than_seconds)"),
        ("Connection saturation.", "investigate.saturation(inc)"),
        ("## Findings\nRanked: causes before symptoms.", "investigate.findings(inc)"),
        ("## One time axis\nError ratio, p95 latency, the pods' warnings and terminations, sessions waiting on "
         "locks, deploys and the onset, lined up: what changed first.", "history.cross_layer(inc, window_minutes)"),
    ]),
    3: ('execute_mitigations = False  # True: confirmed steps are applied; False: every step is a dry run\n'
        'confirm = ""                 # headless confirmation: "INCIDENT:STEP-ID,STEP-ID" (ids from the steps below)\n'
        'send_messages = False        # True: the messages leave the outbox (Slack, status page, email)', [
        ("## What phase 2 found", "mitigate.findings(inc)"),
        ("## 3.1 Immediate mitigation\nThe playbook's mitigations for these findings, with the command for a "
         "person.", "mitigate.mitigation_plan(inc)"),
        ("## The steps, prepared\nEach step's id (what a confirmation names), what changes (a diff of the state "
         "now and after), the guardrails it passed, the API server's answer to a dry run, and its undo. "
         "**Nothing has changed yet.**", "mitigate.prepared_steps(inc)"),
        ("## Apply\nOnly with `execute_mitigations = True` and a confirmation: `confirm` names the incident and "
         "the step ids; anything else is a dry run that changes nothing. Each applied step is checked for its "
         "effect and recorded with who confirmed it and when.",
         "mitigate.apply_confirmed(inc, execute_mitigations, confirm)"),
        ("In JupyterLab: a button under each step confirms and applies it (and then offers its undo).",
         "mitigate.controls(inc, execute_mitigations)"),
        ("## 3.2 Communication\nThe initial notification (a status update, with what changed, if one went out "
         "before), the Slack message, the status page incident and the customer mail, from the playbook's "
         "templates. They go to the run's `outbox/`; nothing is sent unless `send_messages = True`.",
         "mitigate.communicate(inc, send_messages)"),
    ]),
    4: ("settle_seconds = 0           # after a mitigation: re-check every 5 s for up to this long until no check fails", [
        ("## Pre-incident baseline", "validate.baseline(inc)"),
        ("## 4.1-4.3 Checks\nHealth endpoints, error ratio and latency against threshold, pods ready, orders "
         "flowing, no lock waits.", "validate.checks(inc, settle_seconds)"),
        ("## Verdict", "validate.verdict(inc)"),
        ("## Lock history\nThe lock graph sampled through the incident (phases 2 and 4, and every "
         "`lock_sample_seconds` while `irkit run` runs): which root appeared when, how many waited behind it, "
         "when it cleared.", "history.lock_history(inc)"),
        ("## One time axis\nThe layers from the onset through the fix to now.",
         "history.cross_layer(inc, window_minutes)"),
    ]),
    5: ("send_messages = False        # True: the resolution messages leave the outbox (never a draft)", [
        ("## Timeline\nEvery event of the incident, from all its runs under `outputs/<incident>/`: onset, alerts, "
         "deploys, Kubernetes warnings, findings, steps planned, confirmed and applied, messages, the verdict. "
         "Also in `timeline.json`.", "postmortem.timeline(inc)"),
        (None, "postmortem.timeline_chart(inc)"),
        ("## One time axis\nError ratio, latency, pods, locks and deploys over the incident.",
         "history.cross_layer(inc, window_minutes)"),
        ("## Lock history", "history.lock_history(inc)"),
        ("## Response times\nMTTD, MTTA, MTTM, MTTR, and the severity's response deadline.",
         "postmortem.response(inc)"),
        ("## Root cause analysis (5 whys)\nA draft from the findings: the bracketed answers are for people.",
         "postmortem.five_whys(inc)"),
        ("## Action items\nSuggested per cause (the built-in catalogue and `action_items_file`).",
         "postmortem.action_items(inc)"),
        ("## Post-mortem draft\nWritten to `postmortem.md` beside the notebooks.",
         "postmortem.write_postmortem(inc, window_minutes)"),
        ("## Resolution notification\nA marked draft, never sent, until phase 4 has validated recovery.",
         "postmortem.communicate(inc, send_messages)"),
    ]),
}


def build(number: int) -> nbformat.NotebookNode:
    extra, steps = NOTEBOOKS[number]
    spec = phase(number)
    module, title = spec.module, f"Phase {number}: {spec.title}"
    cells = [new_markdown_cell(f"# {title}\n\nPlaybook: `incident-response-playbook.md`. Run it cell by cell in "
                               "JupyterLab, or headless with `irkit run`.")]
    cells[0].metadata["tags"] = [NO_REPORT]  # instructions for JupyterLab: not in the report
    params = new_code_cell(COMMON + ("\n" + extra if extra else ""))
    params.metadata["tags"] = ["parameters", NO_REPORT]
    cells.append(params)
    modules = module + (", history" if any(code.startswith("history.") for _, code in steps) else "")
    setup = new_code_cell(f"from irkit.phases import {modules}\nfrom irkit.phases.incident import open_incident\n\n"
                          f"inc = open_incident(incident_id, {number}, run_dir=run_dir, config_path=config_path)\n"
                          "inc")
    setup.metadata["tags"] = [NO_REPORT]  # shows where the phase writes: for the notebook, not the report
    cells.append(setup)
    for markdown, code in steps:
        if markdown:
            cells.append(new_markdown_cell(markdown))
        cells.append(new_code_cell(code))
    cells.append(new_markdown_cell("Close the phase: its record is complete."))
    cells.append(new_code_cell("inc.finish()[\"problems\"]"))
    for cell in cells[-2:]:
        cell.metadata["tags"] = [NO_REPORT]
    for index, cell in enumerate(cells):
        cell.id = f"{number}-{index:02d}"  # stable ids: regenerating changes only what changed
    nb = new_notebook(cells=cells)
    # Exactly the kernelspec ipykernel installs: JupyterLab marks a notebook whose kernelspec differs as
    # modified when it opens it, and autosave then rewrites the evidence.
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    return nb


if __name__ == "__main__":
    for spec in PHASES:
        nbformat.write(build(spec.number), spec.path)
