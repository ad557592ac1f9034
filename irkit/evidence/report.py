"""``report.html``: every phase's outputs in one self-contained page (plotly.js inlined once, no network)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

__all__ = ["write_report"]

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:auto;padding:1em;color:#222}
.phase{border-top:3px solid #2c3e50;margin-top:2em}
.jp-InputArea,.input{display:none}
pre{background:#f7f7f7;padding:.5em;overflow-x:auto}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:2px 6px}
.status-failed{color:#c0392b}.status-ok{color:#27ae60}.status-skipped{color:#7f8c8d}
"""


def write_report(run_dir: Path, summary: dict[str, Any], notebooks: list[Path]) -> Path:
    """One self-contained ``report.html``: every phase's outputs, plotly.js inlined once, no network."""
    import nbformat  # the report's libraries load only when a report is written: verify stays quick
    import plotly.offline
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="basic")
    exporter.exclude_input = True
    sections = []
    for path in notebooks:
        if not path.exists():
            continue
        try:
            body, _ = exporter.from_notebook_node(nbformat.read(path, as_version=4))
        except Exception as exc:  # a notebook cut short by an interruption; the rest of the report stands
            body = f"<p>this notebook could not be rendered: {html.escape(str(exc)[:300])}</p>"
        sections.append(f"<section class='phase'><h2>{html.escape(path.stem)}</h2>{body}</section>")
    rows = "".join(
        f"<tr><td>{p['phase']}</td><td>{html.escape(p['name'])}</td>"
        f"<td class='status-{p['status']}'>{p['status']}</td><td>{p['duration_seconds']:.1f} s</td>"
        f"<td>{html.escape(p.get('error') or '')}</td></tr>" for p in summary["phases"])
    severity = summary.get("severity") or {}
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(summary['incident'])} {html.escape(summary['run_id'])}</title>"
        f"<style>{_STYLE}</style><script>{plotly.offline.get_plotlyjs()}</script></head><body>"
        f"<h1>Incident {html.escape(summary['incident'])}</h1>"
        f"<p>Run {html.escape(summary['run_id'])}; severity <b>{html.escape(str(severity.get('name', '?')))}</b>; "
        f"recovered: <b>{html.escape(str((summary.get('recovery') or {}).get('recovered')))}</b></p>"
        f"<table><tr><th>phase</th><th>name</th><th>status</th><th>duration</th><th>error</th></tr>{rows}</table>"
        + "".join(sections) + "</body></html>"
    )
    path = run_dir / "report.html"
    path.write_text(page)
    return path
