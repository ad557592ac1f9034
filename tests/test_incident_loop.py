"""One incident worked as a person works it: phases 1-3 from an alert through irkit serve, the fix applied with
JupyterLab's button (a real browser, through irkit lab), phase 4 from the line irkit lab printed, pasted into a
shell without IRKIT_CONFIG, and phase 5 alone. What the reader is shown (the post-mortem, the report's summary,
the outbox, summary.json) agrees with itself and with the timeline."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from irkit import drill, evidence, serve
from tests.serve.conftest import TOKEN, _group, _post, _wait
from tests.support.jupyterlab import lab_env, wait_until_up

IRKIT = str(Path(sys.executable).parent / "irkit")


def _apply_with_the_button(port: str, token: str, tmp_path: Path, parameters: str) -> None:
    """03-mitigate opened in JupyterLab, execute_mitigations set in its parameters cell, run, Apply pressed."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                     args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"http://127.0.0.1:{port}/lab/tree/irkit-notebooks/03-mitigate.ipynb?token={token}&reset")
        editor = page.locator(".jp-NotebookPanel:visible .jp-CodeCell .cm-content").first
        editor.wait_for(timeout=60_000)
        editor.click()
        page.keyboard.press("Control+a")
        page.keyboard.insert_text(parameters.replace("execute_mitigations = False", "execute_mitigations = True"))
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_text("Run All Cells", exact=True).click()
        button = page.get_by_role("button", name=re.compile(r"^Apply terminate-backend-"))
        try:
            button.wait_for(timeout=240_000)  # the kernel starts, then every cell of phase 3 runs
        except Exception:
            page.screenshot(path=str(tmp_path / "no-apply-button.png"), full_page=True)
            raise
        button.click()
        page.get_by_text(re.compile(r"now: applied by alice")).wait_for(timeout=60_000)
        page.screenshot(path=str(tmp_path / "applied-in-jupyterlab.png"))
        browser.close()


@pytest.mark.timeout(900)
def test_one_incident_worked_by_hand_across_runs_tells_one_story(tmp_path: Path):
    work = tmp_path / "work"  # where the responder works; outputs/ is below it
    work.mkdir()
    outputs = work / "outputs"
    shell_env = {k: v for k, v in os.environ.items() if not k.startswith("IRKIT_")}
    with drill.DrillEnvironment(drill.load_scenario("lock-contention")) as env:
        holder = env.pids["holder"]
        # 1. The alert fires: irkit serve runs phases 1-3 of the incident.
        server = serve.Serve(token=TOKEN, config_path=str(env.config_path), outputs=outputs,
                             state_dir=tmp_path / "state", listen=("127.0.0.1", 0), max_runs=1).start()
        try:
            assert _post(server.url, _group(irkit_phases="1-3"))[0] == 202
            [job] = _wait(lambda: [j for j in server.queue.jobs if j.state in ("done", "failed")], 180,
                          "the alert's run")
        finally:
            server.stop()
        assert job.state == "done", job.error
        incident, alerted = job.incident, Path(job.run_dir)

        # 2. The responder opens JupyterLab on the incident and applies the plan with the button.
        lab = subprocess.Popen([IRKIT, "lab", "--incident", incident, "--config", str(env.config_path)], cwd=work,
                               env=lab_env(tmp_path, JUPYTERHUB_USER="alice"), stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
        assert lab.stderr is not None
        said = ""
        try:
            while "Ctrl-C stops JupyterLab" not in said:
                line = lab.stderr.readline()
                assert line, said
                said += line
            url = re.search(r"open\s+http://127\.0\.0\.1:(\d+)/lab/tree/\S+\?token=(\S+)", said)
            assert url, said
            wait_until_up(url.group(1), url.group(2), lab)
            parameters = json.loads((work / "irkit-notebooks" / "03-mitigate.ipynb").read_text())["cells"]
            source = next("".join(c["source"]) for c in parameters if "parameters" in c["metadata"].get("tags", []))
            _apply_with_the_button(url.group(1), url.group(2), tmp_path, source)
        finally:
            os.killpg(lab.pid, signal.SIGINT)  # Ctrl-C in its terminal
            said += lab.communicate(timeout=60)[1]
        assert lab.returncode == 0, said[-2000:]
        assert all(h.finished for h in env.postgres.held)  # the lock is gone: the queue behind it drained

        # 3. Validation from the printed line, in a fresh shell: no IRKIT_CONFIG, another directory.
        lines = dict(re.findall(r"^\s+(validate|post-mortem)\s+(.+)$", said, re.MULTILINE))
        elsewhere = tmp_path / "another-shell"
        elsewhere.mkdir()
        validated = subprocess.run(shlex.split(lines["validate"]), cwd=elsewhere, env=shell_env, capture_output=True,
                                   text=True, timeout=400)
        assert validated.returncode == 0, validated.stderr[-3000:]  # 0: recovered
        assert "recovery  RECOVERED" in validated.stderr

        # 4. Phase 5 alone, the next morning.
        morning = subprocess.run(shlex.split(lines["post-mortem"]), cwd=elsewhere, env=shell_env,
                                 capture_output=True, text=True, timeout=300)
        assert morning.returncode == 0, morning.stderr[-3000:]
        last = Path(morning.stdout.strip().splitlines()[-1])

    assert last.parent == alerted.parent  # one incident, one directory
    summary = json.loads((last / "summary.json").read_text())
    view = summary["incident_view"]
    timeline = json.loads((last / "timeline.json").read_text())
    postmortem = (last / "postmortem.md").read_text()
    report = (last / "report.html").read_text()
    box = report.split("<section class='summary' id='summary'>", 1)[1].split("</section>", 1)[0]
    [resolution] = [json.loads(p.read_text()) for p in (last / "outbox").glob("*-resolution-email.json")]

    # Severity and cause: the alert's run established them (its phase 2 revisiting phase 1's severity with the
    # findings); every reader says the same.
    severity = view["severity"]["value"]["name"]
    assert severity == "SEV-2" and view["severity"]["from"] == f"{alerted.name}/phase-2.json"
    assert view["cause"]["value"]["kind"] == "lock-root" and view["cause"]["value"]["subject"] == f"pid {holder}"
    assert f"**Severity**: {severity}" in postmortem and f"<b>{severity}</b>" in box
    assert f"**lock-root** pid {holder}" in postmortem and f"lock-root pid {holder}" in box
    assert f"lock-root pid {holder}" in resolution["body"]
    # What was applied, and by whom: the button, pressed by alice, in the lab session's run.
    [done] = [d for d in view["done"] if d["status"] == "applied"]
    assert done["action"] == "terminate-backend" and done["by"] == "alice" and done["run"].endswith("-lab")
    assert "terminate-backend: applied" in postmortem and "confirmed by alice" in postmortem
    assert "terminate-backend pid" in box and "<b>applied</b> by alice" in box
    assert any(e["kind"] == "confirmed" and "confirmed by alice" in e["text"] for e in timeline["events"])
    # Recovered: validated by phase 4 of the pasted line's run, and the resolution is no draft.
    assert view["recovery"]["value"]["recovered"] is True
    assert "Recovery validated: yes" in postmortem and "RECOVERED: every check passed" in box
    assert resolution["subject"].startswith("[RESOLVED]") and resolution["status"] == "outbox"
    # Durations: the post-mortem's are the timeline's.
    mttr = timeline["measures"]["mttr_seconds"]
    assert mttr is not None and f"MTTR {_span(mttr)}" in postmortem
    assert {e["kind"] for e in timeline["events"]} >= {"alert", "finding", "applied", "recovered"}
    assert "error ratio crossed 5.0% \\(the SEV-3 threshold\\)" in postmortem  # a number, not a key's name
    missed = timeline["measures"]["deadline_met"] is False
    assert ("<b class='bad'>MISSED</b>" in box) is missed and (("response deadline missed" in postmortem) is missed)
    # Every evidence link of the post-mortem resolves from where the file sits.
    for link in re.findall(r"\[evidence\]\(<([^>]+)>\)", postmortem):
        assert (last / link).resolve().is_file(), link
    assert not any(evidence.verify(alerted).values())  # what the alert's run sealed is as it was sealed
    # The report as a reader sees it: each label of the summary beside its value, no Python repr anywhere.
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                     args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto((last / "report.html").as_uri())
        rows = page.evaluate("Array.from(document.querySelectorAll('.summary dt')).map(dt => "
                             "[dt.textContent, dt.getBoundingClientRect().top, "
                             "dt.nextElementSibling.getBoundingClientRect().top])")
        text = page.evaluate("document.body.innerText")
        browser.close()
    assert len(rows) >= 5 and all(abs(dt - dd) < 4 for _, dt, dd in rows), rows
    assert "PosixPath(" not in text


def _span(seconds: float) -> str:
    from datetime import timedelta
    return str(timedelta(seconds=round(seconds)))
