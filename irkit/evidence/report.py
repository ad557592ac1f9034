"""``report.html``: a summary a reviewer reads in ten seconds, then every phase's outputs, in one
self-contained page (plotly.js inlined once, no network) that also prints on A4.

The page shows data from the systems that failed, which an attacker may have written. Besides escaping every
value (``irkit.escaping``), the page carries a Content-Security-Policy that lets only its own scripts run (each
carries the report's nonce: plotly.js and a script per chart, rebuilt here from the chart's plotly JSON, never
copied from the notebook's HTML) and lets nothing load or send anything: a script planted in the data neither
runs nor reaches the network.

The newest cross-layer chart (error ratio, latency, pods, locks and deploys on one time axis) follows the
summary. The summary comes from ``summary.json`` and the phase records: severity and whether it is ongoing, the
cause, the impact, what was done or planned, the recovery verdict, the timeline, and a link to each phase.
Below it the phases show their outputs only: no prompts, no heading anchors, no setup cells (tagged
``no-report`` by the notebook generator), no instructions meant for JupyterLab.
"""

from __future__ import annotations

import functools
import html
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from irkit.escaping import script_json
from irkit.evidence.incident import Fact, IncidentView, incident_view
from irkit.evidence.rundir import RunDir, read_text, write_text
from irkit.evidence.summary import Summary
from irkit.evidence.timeline import incident_events
from irkit.rules.timeline import Event, measures

__all__ = ["CSP", "NO_REPORT", "Section", "chart_html", "new_nonce", "render_section", "write_report"]

NO_REPORT = "no-report"  # the cell tag that keeps a notebook cell out of the report

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:auto;padding:1em;color:#222;line-height:1.4}
.phase{border-top:3px solid #2c3e50;margin-top:2em}
.summary{border:2px solid #2c3e50;border-radius:6px;padding:.5em 1em;background:#fbfbfb}
.summary dl{display:grid;grid-template-columns:9em 1fr;gap:.3em 1em;align-items:baseline}
.summary dt{font-weight:bold}.summary dd{margin:0}.summary ul,.summary ol{margin:0;padding-left:1.2em}
.from{color:#666;font-size:90%}
.jp-InputArea,.input,.jp-InputPrompt,.jp-OutputPrompt,.prompt{display:none}
pre{background:#f7f7f7;padding:.5em;white-space:pre-wrap;word-break:break-word}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:2px 6px;vertical-align:top}
td{max-width:60em;overflow-wrap:anywhere}
.status-failed,.bad{color:#c0392b}.status-ok,.good{color:#27ae60}.status-skipped,.unknown{color:#d35400}
@media print{@page{size:A4;margin:12mm}body{max-width:none;font-size:10pt}.phase{break-before:page}
 .js-plotly-plot,.irkit-chart{break-inside:avoid}a{color:inherit;text-decoration:none}}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _from(fact: Fact[Any] | None, run_id: str) -> str:
    """Where a fact came from, when another run of the incident established it."""
    return "" if fact is None or fact.run == run_id else f" <span class='from'>(run {_e(fact.run)})</span>"


def _summary(view: IncidentView, run_id: str, events: list[Event], phases: list[tuple[str, str]]) -> str:
    """The incident at a glance, built from every run of it (each fact names the run it came from when that is
    not this one); this run's own phases are listed below it."""
    severity = view.severity.value if view.severity else None
    name = severity.name if severity else "not assessed"
    ongoing = view.ongoing.value if view.ongoing else None
    recovery = view.recovery.value if view.recovery else None
    recovered = recovery.recovered if recovery else None
    state = ("ongoing: unknown" if ongoing is None else "ongoing" if ongoing
             else "not ongoing (resolved or not happening)")
    if recovered:
        state = "ongoing when assessed, recovered since (phase 4)" if ongoing else state
    cause = view.cause
    if recovery is None:
        verdict = "not validated (phase 4 has not run)"
    elif recovered:
        verdict = "RECOVERED: every check passed"
    elif recovered is None:
        verdict = "UNKNOWN: not measured: " + "; ".join(recovery.unmeasured)[:300]
    else:
        verdict = "NOT RECOVERED: " + "; ".join(recovery.failed)[:300]
    colour = "good" if recovered else "unknown" if recovered is None else "bad"
    impact = "; ".join(severity.reasons if severity else []) or "not assessed"
    affected = ", ".join(view.affected.value) if view.affected else "none named"
    done = "".join(f"<li>{_e(d.action)} {_e(d.target)}: <b>{_e(d.status)}</b>"
                   + (f" by {_e(d.by)}" if d.by else "") + f"{_from_run(d.run, run_id)}</li>" for d in view.done[-5:])
    planned = [m for m in (view.plan.value if view.plan else []) if m.status == "planned"]
    plan = "".join(f"<li>{_e(m.action)} {_e(m.target)} (planned): <code>{_e(m.command)}</code></li>"
                   for m in planned[:5])
    deadline = ""
    if severity:
        met = measures(events, severity.respond_by).deadline_met
        late = met is False or (met is None and recovered is not True and datetime.now(UTC) > severity.respond_by)
        deadline = (f" &mdash; respond by {severity.respond_by.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
                    + (" <b class='bad'>MISSED</b>" if late else " (met)" if met else ""))
    # The moments a reviewer reads first: onset, alert, deploys, the first finding, what was done, the verdict.
    key = ("onset", "alert", "deploy", "confirmed", "applied", "failed", "undone", "resolved", "recovered",
           "not-recovered")
    first_finding = next((e for e in events if e.kind == "finding"), None)
    moments = "".join(f"<li>{e.time.astimezone(UTC):%Y-%m-%d %H:%M:%S} {_e(e.text)}</li>"
                      for e in [e for e in events if e.kind in key or e is first_finding][-14:])
    links = " · ".join(f"<a href='#{_e(anchor)}'>{_e(title)}</a>" for anchor, title in phases)
    runs = len(view.runs)
    return (
        "<section class='summary' id='summary'><h2>Summary</h2>"
        + (f"<p>The incident across its {runs} runs ({_e(', '.join(view.runs))}); this is run {_e(run_id)}.</p>"
           if runs > 1 else "")
        + "<dl>"
        f"<dt>Severity</dt><dd><b>{_e(name)}</b>, {_e(state)}{deadline}{_from(view.severity, run_id)}</dd>"
        f"<dt>Cause</dt><dd>{_e(f'{cause.kind.value} {cause.subject}: {cause.detail}') if cause else 'none found'}"
        f"{_from(view.findings, run_id) if cause else ''}</dd>"
        f"<dt>Impact</dt><dd>{_e(impact)}; affected: {_e(affected)}</dd>"
        f"<dt>Done</dt><dd>{f'<ul>{done}</ul>' if done else 'nothing applied'}</dd>"
        + (f"<dt>Planned</dt><dd><ol>{plan}</ol>{_from(view.plan, run_id)}</dd>" if plan else "")
        + f"<dt>Recovery</dt><dd class='{colour}'>{_e(verdict)}{_from(view.recovery, run_id)}</dd>"
        + (f"<dt>Timeline</dt><dd><ul>{moments}</ul></dd>" if moments else "")
        + f"<dt>Phases</dt><dd>{links}</dd></dl></section>"
    )


def _from_run(run: str, run_id: str) -> str:
    return "" if run == run_id else f" <span class='from'>(run {_e(run)})</span>"


PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = "(buttons shown in JupyterLab: what they applied is in the outcomes above and in phase-3.json)"
MAX_NOTEBOOK = 256 << 20  # bytes of an executed notebook rendered (irkit's are under 1 MiB at any scale)
# Nothing but the page's own scripts runs, and nothing is fetched or sent: no image, frame, font or connection.
CSP = ("default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
       "base-uri 'none'; form-action 'none'")


def new_nonce() -> str:
    """A fresh nonce for one report's scripts (unguessable: the data was written before it existed)."""
    return secrets.token_urlsafe(18)


def chart_html(spec: Any, name: str, div: str, nonce: str) -> str:
    """A chart for the report: its div and a script (with the nonce) drawing the plotly JSON ``spec``."""
    data = script_json(spec if isinstance(spec, str) else json.dumps(spec))
    height = _height(spec)
    return (f'<div id="{html.escape(div)}" class="irkit-chart" data-chart="{html.escape(name)}" '
            f'style="height:{height}px"></div><script nonce="{nonce}">(function(){{var s={data};'
            f"Plotly.newPlot({json.dumps(div)},s.data,s.layout,{{responsive:true}});}})();</script>")


def _height(spec: Any) -> int:
    try:
        layout = (json.loads(spec) if isinstance(spec, str) else spec).get("layout") or {}
        return max(100, min(3000, int(layout.get("height") or 420)))
    except (AttributeError, TypeError, ValueError):
        return 420


def _charts(notebook: Any, nonce: str, anchor: str) -> str:
    """Give every chart output HTML drawn from its plotly JSON (see the module docstring) and every widget a line
    saying what it was, in place; the HTML of the notebook's last cross-layer chart, renamed for the overview
    (the phase below shows it too)."""
    found = ""
    count = 0
    notebook.metadata.pop("widgets", None)  # widget state: nothing in a static page uses it
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data") or {}
            if WIDGET_MIME in data:  # JupyterLab's buttons: in a page they would be a script that draws nothing
                output["data"] = {"text/plain": WIDGET_NOTE, "text/html": f"<p><i>{html.escape(WIDGET_NOTE)}</i></p>"}
                continue
            if PLOTLY_MIME not in data:
                continue
            count += 1
            old = data.get("text/html", "")
            old = "".join(old) if isinstance(old, list) else str(old)
            name = "cross-layer" if 'data-chart="cross-layer"' in old else _chart_name(old)
            spec = data[PLOTLY_MIME]
            data["text/html"] = chart_html(spec, name, f"irkit-chart-{anchor}-{count}", nonce)
            if name == "cross-layer":
                found = chart_html(spec, name, f"irkit-overview-chart-{anchor}-{count}", nonce)
    return found


def _chart_name(old_html: str) -> str:
    marker = 'data-chart="'
    start = old_html.find(marker)
    name = old_html[start + len(marker):old_html.find('"', start + len(marker))] if start >= 0 else "chart"
    return name if name.replace("-", "").isalnum() else "chart"


@dataclass(frozen=True)
class Section:
    """One phase notebook rendered for the report: its anchor, its HTML, its cross-layer chart if any, and the
    nonce its chart scripts carry (a section rendered for another page is rendered again)."""

    anchor: str
    title: str
    html: str
    overview: str
    nonce: str


@functools.lru_cache(maxsize=1)
def _exporter() -> Any:
    from nbconvert import HTMLExporter  # the report's libraries load only when a report is written
    from nbconvert.preprocessors import TagRemovePreprocessor
    exporter = HTMLExporter(template_name="basic", anchor_link_text="", exclude_input=True,
                            exclude_input_prompt=True, exclude_output_prompt=True)
    exporter.register_preprocessor(TagRemovePreprocessor(remove_cell_tags={NO_REPORT}), enabled=True)
    return exporter


def render_section(path: Path, nonce: str) -> Section | None:
    """A finished phase's notebook as the report shows it (``irkit run`` renders each phase as it ends, while
    the next one runs); None when the notebook is missing."""
    import nbformat
    text = read_text(path, MAX_NOTEBOOK)  # a regular file only: a planted FIFO or link is no notebook
    if text is None:
        return None
    overview = ""
    anchor = f"phase-{path.stem}"
    try:
        notebook = nbformat.reads(text, as_version=4)
        overview = _charts(notebook, nonce, path.stem[:2])
        body, _ = _exporter().from_notebook_node(notebook)
    except Exception as exc:  # a notebook cut short by an interruption; the rest of the report stands
        body = f"<p>this notebook could not be rendered: {html.escape(str(exc)[:300])}</p>"
    return Section(anchor, path.stem,
                   f"<section class='phase' id='{_e(anchor)}'><h2>{_e(path.stem)}</h2>{body}</section>", overview,
                   nonce)


def write_report(run_dir: Path, summary: Summary, notebooks: list[Path],
                 rendered: Mapping[Path, Section | None] | None = None, nonce: str = "") -> Path:
    """One self-contained ``report.html``: the summary, then every phase's outputs, plotly.js inlined once.
    ``rendered``: sections already rendered with ``nonce``, by notebook path (the rest are rendered now)."""
    import plotly.offline

    nonce = nonce or new_nonce()
    done = {path: section for path, section in (rendered or {}).items() if section is None or section.nonce == nonce}
    sections = [found for path in notebooks
                if (found := done[path] if path in done else render_section(path, nonce))]
    overview = next((s.overview for s in reversed(sections) if s.overview), "")  # the newest phase's view
    anchors = [(s.anchor, s.title) for s in sections]
    rows = "".join(
        f"<tr><td>{p.phase}</td><td><a href='#phase-{_e(p.name)}'>{_e(p.name)}</a></td>"
        f"<td class='status-{_e(p.status)}'>{_e(p.status)}</td><td>{p.duration_seconds:.1f} s</td>"
        f"<td>{_e(p.error or '')}</td></tr>" for p in summary.phases)
    view = incident_view(run_dir, summary.incident)
    events = incident_events(run_dir)
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{CSP.format(nonce=nonce)}\">"
        f"<title>{_e(summary.incident)} {_e(summary.run_id)}</title>"
        f"<style>{_STYLE}</style><script nonce='{nonce}'>{plotly.offline.get_plotlyjs()}</script></head><body>"
        f"<h1>Incident {_e(summary.incident)}</h1><p>Run {_e(summary.run_id)}</p>"
        + _summary(view, summary.run_id, events, anchors)
        + (f"<section class='overview' id='overview'><h2>One time axis</h2>{overview}</section>" if overview else "")
        + f"<table><tr><th>phase</th><th>name</th><th>status</th><th>duration</th><th>error</th></tr>{rows}</table>"
        + "".join(s.html for s in sections) + "</body></html>"
    )
    return write_text(RunDir(run_dir).report, page)
