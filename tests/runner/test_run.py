"""`irkit run` end to end: the five notebooks execute against the real test services."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from irkit import cli, evidence, playbook, runner
from irkit.config import Config
from irkit.lab.postgres import HeldSession, PostgresLab
from tests.support.jupyterlab import lab_env, wait_until_up
from tests.support.kube import kubeconfig_for


@pytest.fixture(scope="module")
def lock_holder(pg_lab: PostgresLab) -> Iterator[HeldSession]:
    """An idle transaction holding order 5, and an update of order 5 waiting behind it."""
    holder = pg_lab.hold(["BEGIN", "UPDATE orders SET status = 'processing' WHERE id = 5"])
    pg_lab.hold(["UPDATE orders SET status = 'paid' WHERE id = 5"])
    yield holder
    pg_lab.release()


@pytest.fixture(scope="module")
def run_result(cfg: Config, lock_holder: HeldSession, tmp_path_factory: pytest.TempPathFactory) -> runner.RunResult:
    root = tmp_path_factory.mktemp("run")
    toml = root / "irkit.toml"
    toml.write_text(f'[kubernetes]\nkubeconfig = "{cfg.kubeconfig}"\n[postgres]\npg_dsn = "{cfg.pg_dsn}"\n'
                    f'[prometheus]\nprom_url = "{cfg.prom_url}"\n[http]\nhealth_endpoints = []\n')
    return runner.run("INC-TEST", config_path=str(toml), outputs=root / "outputs",
                      params={"window_minutes": "90"})


def test_every_phase_ran_and_left_its_notebook(run_result: runner.RunResult):
    statuses = {p.phase: p.status for p in run_result.summary.phases}
    assert statuses == {1: "ok", 2: "ok", 3: "ok", 4: "ok", 5: "ok"}, run_result.summary.phases
    for name in (p.notebook for p in playbook.PHASES):
        assert (run_result.run_dir / f"{name}.ipynb").exists()
        # The phases share one kernel, reset between them: each notebook reads as run in a kernel of its own.
        cells = json.loads((run_result.run_dir / f"{name}.ipynb").read_text())["cells"]
        counts = [c["execution_count"] for c in cells if c["cell_type"] == "code"]
        assert counts == list(range(1, len(counts) + 1)), (name, counts)


def test_summary_names_what_the_seeded_situation_put_there(run_result: runner.RunResult, lock_holder: HeldSession):
    summary = json.loads((run_result.run_dir / "summary.json").read_text())
    kinds = [(f["kind"], f["subject"]) for f in summary["findings"]]
    # Causes first: the lock root, then the crashlooping revision; the error spike is a symptom.
    assert kinds[:2] == [("lock-root", f"pid {lock_holder.pid}"), ("bad-revision", "backend-deployment")]
    assert ("error-spike", "backend") in kinds[2:]
    assert summary["severity"]["name"] == "SEV-1"  # no backend pod is ready: an outage
    actions = [(m["action"], m["target"]) for m in summary["mitigations"]]
    assert actions[:2] == [("terminate-backend", f"pid {lock_holder.pid}"),
                           ("rollout-undo", "deployment/backend-deployment")]
    assert summary["recovery"]["recovered"] is False
    assert "no lock waits: 1 waiting session(s)" in summary["recovery"]["failed"]


def test_full_chart_data_is_kept_beside_the_downsampled_charts(run_result: runner.RunResult):
    summary = json.loads((run_result.run_dir / "summary.json").read_text())
    for name in ("data/phase1-error-ratio.csv", "data/phase2-error-ratio.csv", "data/phase2-latency-p95.csv"):
        assert name in summary["artifacts"]
        frame = pd.read_csv(run_result.run_dir / name, index_col=0)
        assert len(frame) > 100 and set(frame.columns) >= {"value"}
    assert "data/phase1-error-ratio.csv" in (run_result.run_dir / "01-detect-and-assess.ipynb").read_text()


def test_manifest_verifies_and_detects_tampering(run_result: runner.RunResult):
    assert evidence.verify(run_result.run_dir) == {"changed": [], "added": [], "removed": [], "unexpected": [],
                                                   "signature": []}
    postmortem = run_result.run_dir / "postmortem.md"
    # Titled by what happened, in plain words (the first cause), not by an id or a finding kind.
    assert postmortem.read_text().startswith("# Incident Post-Mortem: Orders updates blocked by an idle database "
                                             "transaction\n\nIncident INC-TEST.")
    original = postmortem.read_text()
    postmortem.write_text(original + "\nedited")
    try:
        assert cli.main(["verify", str(run_result.run_dir)]) == 1
        assert evidence.verify(run_result.run_dir)["changed"] == ["postmortem.md"]
    finally:
        postmortem.write_text(original)


def test_report_is_self_contained(run_result: runner.RunResult):
    report = (run_result.run_dir / "report.html").read_text()
    assert report.count("Plotly.newPlot") >= 3
    assert re.search(r"<script[^>]*\ssrc=", report) is None  # nothing fetched: opens offline
    assert report.count("Plotly.newPlot") >= 3
    assert report.count("plotly.js v") <= 2  # plotly.js inlined once (its banner names it)


def test_every_chart_draws_in_headless_chromium_with_no_network(run_result: runner.RunResult, tmp_path: Path):
    chromium = shutil.which("chromium")
    assert chromium, "chromium is missing: scripts/install.sh installs it (apt-get install chromium)"
    isolate = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-rn"]  # no network at all
    dom = subprocess.run(
        [*isolate, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         f"--user-data-dir={tmp_path}", "--virtual-time-budget=15000", "--dump-dom",
         (run_result.run_dir / "report.html").as_uri()],
        capture_output=True, text=True, timeout=120, check=True).stdout
    starts = list(re.finditer(r'<div [^>]*\bdata-chart="([^"]+)"', dom))
    drawn: dict[str, list[bool]] = {}
    for match, following in zip(starts, [*starts[1:], None]):
        chunk = dom[match.end():following.start() if following else len(dom)]
        drawn.setdefault(match.group(1), []).append('class="trace ' in chunk and 'class="main-svg"' in chunk)
    # Phases 1 and 2 each draw the error ratio and the latency; the cross-layer view is drawn by phases 2, 4 and 5
    # and once more at the top; the lock history by phases 4 and 5.
    expected = {"error-ratio": [True, True], "latency": [True, True], "pod-status": [True], "lock-graph": [True],
                "timeline": [True], "cross-layer": [True] * 4, "lock-history": [True, True]}
    assert drawn == expected


def test_the_plan_shows_each_command_whole_ready_to_copy(run_result: runner.RunResult, lock_holder: HeldSession):
    notebook = json.loads((run_result.run_dir / "03-mitigate.ipynb").read_text())
    shown = "".join("".join(o.get("data", {}).get("text/html", "")) for c in notebook["cells"]
                    for o in c.get("outputs", []))
    assert "<pre>kubectl rollout undo deployment/backend-deployment -n web3-marketplace-prod</pre>" in shown
    assert f"pg_terminate_backend({lock_holder.pid});" in shown


def test_postmortem_separates_causes_from_symptoms_and_never_claims_resolved_early(run_result: runner.RunResult):
    text = (run_result.run_dir / "postmortem.md").read_text()
    root_cause = text.split("## Root Cause", 1)[1].split("### Symptoms it explains", 1)[0]
    symptoms = text.split("### Symptoms it explains", 1)[1].split("### 5 whys", 1)[0]
    assert "**lock-root**" in root_cause and "**bad-revision**" in root_cause
    assert "error-spike" not in root_cause and "**error-spike** backend" in symptoms
    message = text.split("## Resolution message", 1)[1]
    assert "DRAFT, do not send: recovery is not validated" in message  # phase 4 said not recovered
    assert "Subject: [NOT RESOLVED] Orders updates blocked" in message and "[RESOLVED]" not in message
    assert "Resolution: planned, not yet applied: terminate-backend pid" in message


def test_a_run_with_every_source_hung_still_completes_and_names_each(black_hole: str, tmp_path: Path):
    """An outage is when the systems irkit asks hang: every phase must still finish and say what failed."""
    kubeconfig = kubeconfig_for(black_hole, tmp_path / "kubeconfig", "hung")
    toml = tmp_path / "irkit.toml"
    toml.write_text(f'[kubernetes]\nkubeconfig = "{kubeconfig}"\n'
                    f'[postgres]\npg_dsn = "postgresql://irkit@{black_hole}/web3marketplace"\n'
                    f'[prometheus]\nprom_url = "http://{black_hole}"\n'
                    f'[http]\nhealth_endpoints = ["http://{black_hole}/api/health"]\n'
                    "[timeouts]\nconnect_timeout = 1.0\nrequest_timeout = 1.0\nhttp_timeout = 1.0\n")
    result = runner.run("INC-HUNG", config_path=str(toml), outputs=tmp_path / "outputs")
    assert [p.status for p in result.summary.phases] == ["ok"] * 5, result.summary.phases
    unavailable = {f.subject for f in result.summary.findings if f.kind.value == "source-unavailable"}
    assert {"error ratio", "unhealthy pods", "database activity"} <= unavailable, unavailable
    # Each hung source is waited for once per phase, then not asked again.
    problems = json.loads((result.run_dir / "phase-2.json").read_text())["problems"]
    assert sum("not asked again" not in p["error"] for p in problems if p["kind"].startswith("Prometheus")) == 1
    assert any("not asked again yet, it did not answer earlier" in p["error"] for p in problems)
    assert result.summary.recovery is not None and result.summary.recovery.recovered is False  # nothing measured is not "recovered"
    assert not any(evidence.verify(result.run_dir).values())


def test_charts_mark_the_deploy_that_broke_things(run_result: runner.RunResult):
    # The backend's revision 2 went out 20 minutes ago, inside the 90-minute window of every phase's charts.
    for notebook in ("01-detect-and-assess.ipynb", "02-investigate.ipynb"):
        assert "deploy backend r2" in (run_result.run_dir / notebook).read_text(), notebook


def test_the_report_opens_with_a_summary_and_shows_no_notebook_clutter(run_result: runner.RunResult,
                                                                        lock_holder: HeldSession):
    page = (run_result.run_dir / "report.html").read_text()
    summary = page.split("<section class='summary' id='summary'>", 1)[1].split("</section>", 1)[0]
    assert "<b>SEV-1</b>, ongoing" in summary
    assert f"lock-root pid {lock_holder.pid}" in summary  # the cause, first
    assert "terminate-backend" in summary and "NOT RECOVERED" in summary
    assert "href='#phase-01-detect-and-assess'" in summary
    body = page.split("</script></head>", 1)[1]
    for clutter in ("Out[", "In&nbsp;[", "\u00b6", "&lt;Incident", "Run it cell by cell", "Close the phase"):
        assert clutter not in body, clutter
    assert "@media print" in page and "size:A4" in page
    assert page.count('href="data/phase1-error-ratio.csv"') == 1  # each chart's full-data link, once
    assert "<th>url</th>" in page and "<td>nan</td>" not in page  # tables without index column or NaN


def test_the_lock_graph_is_sampled_through_the_run_and_the_report_opens_with_one_time_axis(
        run_result: runner.RunResult, lock_holder: HeldSession):
    from irkit.evidence.lockhistory import run_samples
    from irkit.rules.locks import episodes
    samples = run_samples(run_result.run_dir)
    assert {s["source"] for s in samples} == {"sampler", "phase 2", "phase 4"}  # the film, and the two moments
    [episode] = episodes(samples).to_dict("records")
    assert episode["root"] == lock_holder.pid and episode["peak_waiting"] == 1
    assert episode["cleared_at"] is None  # the holder still holds: no clearing is invented
    page = (run_result.run_dir / "report.html").read_text()
    overview = page.split("<section class='overview' id='overview'>", 1)[1].split("</section>", 1)[0]
    assert 'data-chart="cross-layer"' in overview and 'id="irkit-overview-chart-' in overview
    assert page.index("id='summary'") < page.index("id='overview'") < page.index("class='phase'")
    postmortem = (run_result.run_dir / "postmortem.md").read_text()
    assert "![postmortem-cross-layer.png](postmortem-cross-layer.png)" in postmortem
    assert f"- pid {lock_holder.pid} (idle in transaction" in postmortem and "still blocking" in postmortem


def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _plotly_outputs(notebook: Path) -> int:
    cells = json.loads(notebook.read_text())["cells"]
    return sum("application/vnd.plotly.v1+json" in o.get("data", {}) for c in cells for o in c.get("outputs", []))


_PANEL = "document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer')"
_DRAWN_CELLS = ("() => Array.from(document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) "
                ".js-plotly-plot .main-svg')).map(e => { const c = e.closest('.jp-Cell'); "
                "return c.getAttribute('data-windowed-list-index') + ':' + "
                "(c.querySelector('.gtitle') || {textContent: ''}).textContent; })")
_SCROLL = f"() => {{ const p = {_PANEL}; p.scrollBy(0, 700); return p.scrollTop + p.clientHeight >= p.scrollHeight - 2; }}"
_TOP = f"() => {{ {_PANEL}.scrollTo(0, 0); }}"


def test_jupyterlab_in_chromium_shows_every_chart_and_the_lock_tree_and_opening_changes_no_evidence(
        run_result: runner.RunResult, lock_holder: HeldSession, tmp_path: Path):
    """A responder opens the executed run in JupyterLab (Debian's chromium, headless) and keeps it open longer
    than the autosave interval: every chart draws, the lock tree reads, and `irkit verify` still passes."""
    import sys
    import time

    from playwright.sync_api import sync_playwright

    run_dir = run_result.run_dir
    autosave = 2  # seconds: JupyterLab's setting, shortened so the test outlasts it several times
    port = _free_port()
    lab = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                            "--IdentityProvider.token=irkit-test", f"--ServerApp.root_dir={run_dir.parent}",
                            "--allow-root"], env=lab_env(tmp_path, autosave), stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
    try:
        wait_until_up(port, "irkit-test", lab)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                         args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            opened = time.monotonic()
            for name in ("02-investigate", "04-recover-and-validate", "05-post-incident"):
                page.goto(f"http://127.0.0.1:{port}/lab/tree/{run_dir.name}/{name}.ipynb?token=irkit-test&reset")  # one notebook open at a time
                panel = page.locator(".jp-NotebookPanel:visible")
                panel.locator(".jp-Cell").first.wait_for(timeout=60_000)
                wanted = _plotly_outputs(run_dir / f"{name}.ipynb")
                assert wanted >= 2, name
                # JupyterLab draws only the cells near the viewport: scroll through as a reader does and collect
                # the cells whose chart the plotly renderer drew (an SVG), none left as the text stub.
                drawn: set[str] = set()
                deadline = time.monotonic() + 60
                while len(drawn) < wanted and time.monotonic() < deadline:
                    drawn |= set(page.evaluate(_DRAWN_CELLS))
                    at_end = page.evaluate(_SCROLL)
                    page.wait_for_timeout(300)
                    if at_end:
                        drawn |= set(page.evaluate(_DRAWN_CELLS))
                        if len(drawn) < wanted:
                            page.evaluate(_TOP)
                assert len(drawn) == wanted, (name, drawn)
                if name == "02-investigate":  # the lock tree as text: root, state, who waits behind it
                    output = panel.locator(".jp-OutputArea-output pre", has_text="blocks 1").first
                    tree = output.text_content() or ""  # the output's rendered text (its cell may be off screen)
                    assert f"pid {lock_holder.pid} [idle in transaction" in tree
                    assert page.get_by_text("full data: data/phase2-error-ratio.csv").count() >= 1
            # Open longer than the autosave interval, several times over: nothing may have been written back.
            page.wait_for_timeout(max(0, int((autosave * 4 - (time.monotonic() - opened)) * 1000)))
            page.screenshot(path=str(tmp_path / "jupyterlab.png"))
            browser.close()
    finally:
        lab.terminate()
        lab.wait(20)
    assert evidence.verify(run_dir) == {"changed": [], "added": [], "removed": [], "unexpected": [],
                                        "signature": []}


def _kernel_idle(port: str, token: str, notebook: str) -> bool:
    """Whether JupyterLab's session for ``notebook`` has a kernel that is idle (its REST API's word)."""
    import urllib.request
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/sessions?token={token}", timeout=5) as r:
            sessions = json.load(r)
    except OSError:
        return False
    return any(s.get("path") == notebook and (s.get("kernel") or {}).get("execution_state") == "idle"
               for s in sessions)


@pytest.mark.timeout(600)  # its own deadlines come first, with what the page showed
def test_run_all_on_a_sealed_notebook_in_irkit_lab_writes_a_new_run_and_autosave_changes_no_evidence(
        run_result: runner.RunResult, tmp_path: Path):
    """Opened through `irkit lab` (as root, as the README installs it), a sealed run's notebook is read-only:
    "Run All" re-runs it into a new run beside it, an explicit save and autosave are refused, `irkit verify`
    passes; Ctrl-C stops JupyterLab."""
    import signal
    import sys
    import time
    import urllib.request

    from playwright.sync_api import sync_playwright

    run_dir = run_result.run_dir
    work = run_dir.parent.parent.parent  # where the responder works: outputs/ is below it
    autosave = 2
    env = lab_env(tmp_path, autosave)
    irkit = str(Path(sys.executable).parent / "irkit")
    lab = subprocess.Popen([irkit, "lab", "--incident", "INC-TEST", "--config", str(work / "irkit.toml")],
                           cwd=work, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert lab.stderr is not None
        said = ""
        while "Ctrl-C stops JupyterLab" not in said:
            line = lab.stderr.readline()
            assert line, said
            said += line
        url = re.search(r"open\s+(http://127\.0\.0\.1:(\d+)/lab/tree/(\S+)\?token=(\S+))", said)
        assert url and url.group(3) == "irkit-notebooks", said  # the phase notebooks, where the responder works
        port, token = url.group(2), url.group(4)
        wait_until_up(port, token, lab)
        notebook = f"{run_dir.relative_to(work).as_posix()}/01-detect-and-assess.ipynb"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents/{notebook}?content=0&token={token}") as r:
            assert json.load(r)["writable"] is False
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                         args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/lab/tree/{notebook}?token={token}&reset")
            page.locator(".jp-NotebookPanel:visible .jp-Cell").first.wait_for(timeout=60_000)
            # Run All only once the notebook's kernel is up and idle (on a loaded machine it starts slowly, and a
            # click before that is lost); a dialog in the way (a kernel to choose) is accepted.
            started = time.monotonic()
            while time.monotonic() - started < 180 and not _kernel_idle(port, token, notebook):
                page.wait_for_timeout(500)
            clicked = 0
            rerun: list[Path] = []
            deadline = time.monotonic() + 240  # phase 1 on a loaded 2-core machine
            while time.monotonic() < deadline:
                if not rerun and clicked < 3 and time.monotonic() > deadline - 240 + 60 * clicked:
                    for dialog in page.locator(".jp-Dialog .jp-mod-accept").all():
                        dialog.click()
                    page.get_by_role("menuitem", name="Run", exact=True).click()
                    page.get_by_text("Run All Cells", exact=True).click()
                    clicked += 1  # again after a minute with nothing written: the click was lost
                rerun = sorted(run_dir.parent.glob(f"*-interactive-from-{run_dir.name}"))
                record = rerun[0] / "phase-1.json" if rerun else None
                if record and record.exists() and json.loads(record.read_text()).get("finished_at"):
                    break
                page.wait_for_timeout(500)
            if not rerun:  # what the page and the outputs showed, for whoever reads the failure
                page.screenshot(path=str(tmp_path / "run-all-wrote-nothing.png"))
                shown = page.locator(".jp-Dialog, .jp-OutputArea-output, .jp-Notification-Toast").all_inner_texts()
                runs = sorted(p.name for p in run_dir.parent.iterdir())
                assert rerun, f"Run All wrote no new run; the page showed {shown[-8:]}; runs: {runs}"
            page.keyboard.press("Control+s")  # an explicit save: refused, the sealed notebook stays as it was
            page.wait_for_timeout(autosave * 4 * 1000)  # autosave's interval, several times over
            page.screenshot(path=str(tmp_path / "sealed-run-all.png"))
            browser.close()
        meta = json.loads((rerun[0] / "run.json").read_text())
        assert meta["incident"] == "INC-TEST" and meta["interactive"] is True
    finally:
        os.killpg(lab.pid, signal.SIGINT)  # Ctrl-C in its terminal
        lab.wait(60)
    assert evidence.verify(run_dir) == {"changed": [], "added": [], "removed": [], "unexpected": [],
                                        "signature": []}


def test_the_terminal_tells_the_incident_and_exits_with_its_verdict(run_result: runner.RunResult,
                                                                    lock_holder: HeldSession,
                                                                    capsys: pytest.CaptureFixture[str]):
    cli._tell(run_result)
    told = capsys.readouterr().err
    assert "  severity  SEV-1, real, ongoing" in told and f"  cause     lock-root pid {lock_holder.pid}" in told
    assert "  planned   terminate-backend" in told
    assert "  recovery  NOT RECOVERED: " in told and "check(s) failed: " in told and "no lock waits" in told
    assert f"  evidence  {run_result.run_dir / 'report.html'}" in told
    assert cli._run_exit(run_result) == cli.NOT_RECOVERED == 4  # phase 4 measured it: not recovered
