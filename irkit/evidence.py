"""Evidence a run leaves behind: ``summary.json``, ``report.html``, and ``manifest.json`` with
SHA-256 of every file, which ``irkit verify`` checks (Post-Incident 2: preserve evidence)."""

from __future__ import annotations

import hashlib
import html
import json
from pathlib import Path
from typing import Any

import nbformat
import plotly.offline

__all__ = ["verify", "write_manifest", "write_report"]

MANIFEST = "manifest.json"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(run_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(run_dir)): _sha256(p) for p in sorted(run_dir.rglob("*"))
            if p.is_file() and p.name != MANIFEST}


def write_manifest(run_dir: Path) -> Path:
    path = run_dir / MANIFEST
    path.write_text(json.dumps({"algorithm": "sha256", "files": _files(run_dir)}, indent=2))
    return path


def verify(run_dir: str | Path) -> dict[str, list[str]]:
    """Files ``changed``, ``added`` and ``removed`` since the manifest was written."""
    run_dir = Path(run_dir)
    recorded: dict[str, str] = json.loads((run_dir / MANIFEST).read_text())["files"]
    now = _files(run_dir)
    return {
        "changed": sorted(name for name in recorded if name in now and now[name] != recorded[name]),
        "added": sorted(set(now) - set(recorded)),
        "removed": sorted(set(recorded) - set(now)),
    }


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
