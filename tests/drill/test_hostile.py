"""The hostile-data drill end to end: what the failing systems say was written by an attacker.

The built-in scenario ``hostile-data`` plants a script, Slack markup and secrets in every string source irkit
reads (the lock holder's SQL and application name, a Prometheus service label with a line break that would open
a mail header, a Kubernetes warning event, pod logs, a deploy's change cause); an alert posted to ``irkit serve``
adds its own. The drill runs as a responder works it headless (plan, confirm, apply, validate, post-mortem) with
every message sent to real local receivers: Slack and the status page over HTTP, mail over SMTP with STARTTLS.

What a responder relies on: the cause is still found; a real browser opening ``report.html`` runs no planted
script and loads nothing; no planted secret is in any file of any run or in any message a receiver got; and
every message was still sent.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from irkit import drill, runner, serve
from irkit.drill import DrillEnvironment
from tests.comms.test_channels import Mailbox, Receiver, http_receiver, smtp_server  # noqa: F401 -- fixtures

PLANTED = b"PLANTED"  # every planted secret carries it: none may survive anywhere
INCIDENT = "DRILL-hostile-data"
ALERT = {"version": "4", "groupKey": '{}:{alertname="x", token="PLANTED-alert-token"}', "status": "firing",
         "receiver": "irkit", "groupLabels": {"alertname": "<script id=pwned-alert>alert('alert')</script> "
                                                           "password=PLANTED-alert-pw"},
         "commonLabels": {}, "alerts": [{"status": "firing", "labels": {"alertname": "x"}, "annotations": {},
                                         "startsAt": "2026-12-07T03:00:00Z"}]}


def _browse(report: Path, shots: Path) -> dict[str, Any]:
    """Open a report in Debian's chromium as a reviewer would: what ran, what loaded, what was drawn."""
    from playwright.sync_api import sync_playwright
    seen: dict[str, Any] = {"dialogs": [], "requests": [], "violations": []}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                     args=["--no-sandbox", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1300, "height": 1800})
        page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
        page.on("request", lambda r: seen["requests"].append(r.url) if not r.url.startswith(("file:", "data:"))
                else None)
        page.on("console", lambda m: seen["violations"].append(m.text) if "Content Security Policy" in m.text
                else None)
        page.goto(report.as_uri())
        page.wait_for_function("document.querySelectorAll('.irkit-chart.js-plotly-plot').length === "
                               "document.querySelectorAll('.irkit-chart').length", timeout=30_000)
        seen["charts"] = page.evaluate("document.querySelectorAll('.irkit-chart').length")
        seen["drawn"] = page.evaluate("document.querySelectorAll('.irkit-chart.js-plotly-plot').length")
        seen["injected"] = page.evaluate(  # a planted element, or a script the page did not make (data blocks aside)
            "Array.from(document.querySelectorAll('[id^=pwned], script:not([nonce]):not([type^=\"application/\"])'))"
            ".map(e => e.outerHTML.slice(0, 80))")
        seen["text"] = page.evaluate("document.body.innerText")
        page.screenshot(path=str(shots / f"{report.parent.name}.png"))
        browser.close()
    return seen


@pytest.mark.timeout(600)
def test_hostile_data_runs_no_script_leaks_no_secret_and_every_message_goes_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http_receiver: str,  # noqa: F811
        smtp_server: tuple[int, Mailbox, Path]):  # noqa: F811
    port, box, ca_file = smtp_server
    for name, value in {"IRKIT_SLACK_WEBHOOK_URL": f"{http_receiver}/services/T0/B0/hook",
                        "IRKIT_STATUSPAGE_API": http_receiver, "IRKIT_STATUSPAGE_TOKEN": "sp-token",
                        "IRKIT_SMTP_HOST": "127.0.0.1", "IRKIT_SMTP_PORT": str(port), "IRKIT_SMTP_USER": "irkit",
                        "IRKIT_SMTP_PASSWORD": "smtp-s3cr3t", "IRKIT_SMTP_CA_FILE": str(ca_file)}.items():
        monkeypatch.setenv(name, value)
    outputs = tmp_path / "outputs"
    scenario = drill.load_scenario("hostile-data")
    scenario = dataclasses.replace(scenario, parameters={**scenario.parameters, "send_messages": True})
    alerted: list[runner.RunResult] = []

    def alert(env: DrillEnvironment, _: runner.RunResult) -> None:  # the alert irkit serve turns into a run, in the same incident
        group = serve.parse_group(json.dumps(ALERT).encode())
        job = serve.Job("j1", INCIDENT, group.key, group.status, group.phases, group.parameters,
                        {"name": group.name, "startsAt": group.starts_at, "status": group.status})
        alerted.append(runner.run(INCIDENT, [1, 5], config_path=str(env.config_path), outputs=outputs,
                                  context=serve.context(job)))

    result = drill.run_drill(scenario, outputs=outputs, execute_mitigations=True, keep_running=alert)
    assert result.differences == [], result.differences  # the cause is found through the hostile data

    runs = sorted(p for p in (outputs / INCIDENT).iterdir() if p.is_dir())
    assert len(runs) == 3  # the plan, the checked run that applied it, the alert's run
    leaked = [str(p.relative_to(outputs)) for p in (outputs / INCIDENT).rglob("*") if p.is_file()
              and PLANTED in p.read_bytes()]
    assert leaked == []

    drilled = [r for r in runs if r != alerted[0].run_dir]
    messages = [json.loads(p.read_text()) for run in drilled for p in sorted((run / "outbox").glob("*.json"))]
    assert {m["stage"] for m in messages} == {"initial", "update", "resolution"}
    assert [m["id"] for m in messages if m["status"] != "sent"] == []  # a hostile value silenced no channel
    received = json.dumps(Receiver.seen) + json.dumps(box.mails, default=str)
    assert PLANTED.decode() not in received and "smtp-s3cr3t" not in received
    slack = [r["json"]["text"] for r in Receiver.seen if r["path"] == "/services/T0/B0/hook"]
    resolved = next(t for t in slack if t.startswith("✅ RESOLVED"))
    assert "&lt;!channel&gt;" in resolved and "<!channel>" not in resolved and "<https://" not in resolved
    for mail in box.mails:
        parsed = email.message_from_string(mail["text"], policy=email.policy.default)
        assert parsed["Bcc"] is None and "\n" not in parsed["Subject"]
        assert mail["to"] in (["engineering@web3marketplace.com"], ["customers@drill.invalid"])
    update = next(m for m in messages if m["kind"] == "update")
    assert "Bcc: attacker@evil.example" in update["subject"]  # the label reached the subject, as text

    for run in (result.run_dir, alerted[0].run_dir):
        seen = _browse(run / "report.html", tmp_path)
        assert seen["dialogs"] == [] and seen["injected"] == [] and seen["requests"] == []
        assert seen["violations"] == []  # nothing of the page's own was blocked: it all carries the nonce
        assert seen["charts"] >= 5 and seen["drawn"] == seen["charts"]
    assert "<script id=pwned-alert>" in seen["text"]  # the alert's name, shown as the text it is

    import mistune  # the Markdown renderer nbconvert uses: the post-mortem as a viewer renders it
    for run in (result.run_dir, alerted[0].run_dir):
        page = mistune.html((run / "postmortem.md").read_text())
        assert "<script" not in page and "<img id=" not in page and 'href="https://evil' not in page
