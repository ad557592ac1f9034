"""Each channel delivers to a real local receiver (HTTP for Slack and the status page, SMTP with STARTTLS for
mail); the outbox mode sends nothing; failures are recorded with every attempt, never raised."""

from __future__ import annotations

import email
import email.policy
import json
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from irkit import comms
from irkit import config as irconfig
from irkit.comms.context import context
from irkit.errors import ConfigError
from irkit.lab import free_port
from irkit.rules.kinds import Finding, Kind, LockRoot

WEBHOOK_PATH = "/services/T000/B000/s3cr3t-webhook"
TOKEN = "sp-token-s3cr3t"
ROOT = Finding(Kind.LOCK_ROOT, "pid 42", "idle in transaction session blocks 3 session(s): UPDATE orders SET "
                                        "status = 'x' WHERE id = 1", LockRoot(pid=42, state="idle in transaction"))


class Receiver(BaseHTTPRequestHandler):
    """Records every request; answers from ``plan`` (status codes, in turn; then 200)."""

    seen: list[dict[str, Any]] = []
    plan: list[int] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        Receiver.seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                              "json": json.loads(body) if body else None})
        status = Receiver.plan.pop(0) if Receiver.plan else 200
        answer = json.dumps({"id": "inc-7"} if "/incidents" in self.path else {"ok": True}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_POST = do_PATCH = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def http_receiver() -> Iterator[str]:
    Receiver.seen, Receiver.plan = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class Mailbox:
    def __init__(self) -> None:
        self.mails: list[dict[str, Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append({"from": envelope.mail_from, "to": envelope.rcpt_tos, "tls": session.ssl is not None,
                           "login": session.auth_data if session.authenticated else None,
                           "text": envelope.content.decode()})
        return "250 OK"


def _smtp(tmp_path: Path, starttls: bool) -> tuple[Controller, Mailbox, Path]:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    box = Mailbox()

    def login(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = auth_data.login == b"irkit" and auth_data.password == b"smtp-s3cr3t"
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)

    kwargs: dict[str, Any] = {"authenticator": login, "auth_require_tls": starttls}
    if starttls:
        kwargs.update(tls_context=server_ctx, require_starttls=True)
    controller = Controller(box, hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    return controller, box, ca_file


@pytest.fixture()
def smtp_server(tmp_path: Path) -> Iterator[tuple[int, Mailbox, Path]]:
    controller, box, ca_file = _smtp(tmp_path, starttls=True)
    yield controller.port, box, ca_file
    controller.stop()


def _context(severity: str = "SEV-2", recovered: bool | None = None) -> dict[str, Any]:
    now = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    return context(incident="INC-9", severity=severity, findings=[ROOT], affected=["backend"],
                   reasons=["error ratio 12.0% is above 10%"], onset=datetime(2026, 12, 1, 2, 40, tzinfo=UTC),
                   now=now, recovered=recovered, resolved_at=now if recovered else None,
                   applied=["terminate-backend (terminate-backend-1a2b3c)"] if recovered else [],
                   planned=["terminate-backend pid 42"], interval=30, war_room="#incident-response",
                   status_page_url="https://status.example.com")


def test_the_outbox_holds_every_template_rendered_and_sends_nothing(tmp_path: Path, http_receiver: str):
    cfg = irconfig.load(env={"IRKIT_SLACK_WEBHOOK_URL": http_receiver + WEBHOOK_PATH,
                             "IRKIT_STATUSPAGE_TOKEN": TOKEN},
                        statuspage_api=http_receiver, statuspage_page_id="page1",
                        customer_email_to="customers@example.com")
    outbox = comms.Outbox(tmp_path)
    for stage in ("initial", "update", "resolution"):
        for message in comms.messages(_context(recovered=stage == "resolution"), stage, cfg):
            outbox.put(message)
    kinds = sorted({(m.kind, m.channel) for m in outbox.all()})
    assert kinds == [("customer", "customer-email"), ("initial", "email"), ("resolution", "email"),
                     ("slack", "slack"), ("statuspage", "statuspage"), ("update", "email")]
    assert all(m.status == "outbox" for m in outbox.all())
    assert Receiver.seen == []  # nothing left the machine
    initial = next(m for m in outbox.all() if m.kind == "initial")
    assert initial.subject == "[SEV-2] INCIDENT: Orders updates blocked by an idle database transaction"
    assert "Started: 2026-12-01 02:40 UTC" in initial.body and "every 30 minutes" in initial.body
    every_file = "".join(p.read_text() for p in (tmp_path / "outbox").iterdir())
    assert WEBHOOK_PATH not in every_file and TOKEN not in every_file  # secrets never land in the evidence


def test_slack_receives_the_message_as_json_after_a_retry(tmp_path: Path, http_receiver: str):
    cfg = irconfig.load(env={"IRKIT_SLACK_WEBHOOK_URL": http_receiver + WEBHOOK_PATH})
    Receiver.plan = [503]  # the first attempt meets an overloaded endpoint
    outbox = comms.Outbox(tmp_path)
    [slack] = [outbox.put(m) for m in comms.messages(_context(), "initial", cfg) if m.channel == "slack"]
    sent = outbox.send(slack, cfg)
    assert sent.status == "sent" and len(sent.attempts) == 2 and "HTTP 503" in sent.attempts[0]["error"]
    assert [(r["method"], r["path"]) for r in Receiver.seen] == [("POST", WEBHOOK_PATH)] * 2
    assert Receiver.seen[-1]["headers"]["Content-Type"] == "application/json"
    assert Receiver.seen[-1]["json"]["text"].startswith("🚨 INCIDENT: [SEV-2] Orders updates blocked")
    assert outbox.get(sent.id).status == "sent"  # written back to the outbox


def test_a_refused_send_is_recorded_not_raised_and_not_retried(tmp_path: Path, http_receiver: str):
    cfg = irconfig.load(env={"IRKIT_SLACK_WEBHOOK_URL": http_receiver + WEBHOOK_PATH})
    Receiver.plan = [404]
    outbox = comms.Outbox(tmp_path)
    [slack] = [outbox.put(m) for m in comms.messages(_context(), "initial", cfg) if m.channel == "slack"]
    failed = outbox.send(slack, cfg)
    assert failed.status == "failed" and len(failed.attempts) == 1 and "HTTP 404" in failed.attempts[0]["error"]
    assert WEBHOOK_PATH not in json.dumps(failed.as_dict())
    again = outbox.send(outbox.get(failed.id), cfg)  # re-sent from the outbox
    assert again.status == "sent" and len(again.attempts) == 2


def test_without_credentials_a_channel_fails_with_the_fix(tmp_path: Path):
    cfg = irconfig.load(env={})
    outbox = comms.Outbox(tmp_path)
    [slack] = [outbox.put(m) for m in comms.messages(_context(), "initial", cfg) if m.channel == "slack"]
    failed = outbox.send(slack, cfg)
    assert failed.status == "failed" and "IRKIT_SLACK_WEBHOOK_URL" in failed.attempts[0]["error"]


def test_the_status_page_incident_is_created_then_resolved(tmp_path: Path, http_receiver: str):
    cfg = irconfig.load(env={"IRKIT_STATUSPAGE_TOKEN": TOKEN}, statuspage_api=http_receiver + "/v1",
                        statuspage_page_id="page1")
    outbox = comms.Outbox(tmp_path)
    [opened] = [outbox.put(m) for m in comms.messages(_context(), "initial", cfg) if m.channel == "statuspage"]
    opened = outbox.send(opened, cfg)
    assert opened.status == "sent" and opened.remote_id == "inc-7"
    [closed] = [outbox.put(m) for m in comms.messages(_context(recovered=True), "resolution", cfg)
                if m.channel == "statuspage"]
    closed = outbox.send(closed, cfg, remote_id=opened.remote_id)
    create, resolve = Receiver.seen
    assert (create["method"], create["path"]) == ("POST", "/v1/pages/page1/incidents")
    assert create["headers"]["Authorization"] == f"OAuth {TOKEN}"
    assert create["json"]["incident"] == {"name": "Degraded service", "status": "identified",
                                          "impact_override": "major", "body": create["json"]["incident"]["body"]}
    assert (resolve["method"], resolve["path"]) == ("PATCH", "/v1/pages/page1/incidents/inc-7")
    assert resolve["json"]["incident"]["status"] == "resolved"
    assert "All systems are operating normally" in resolve["json"]["incident"]["body"]


def test_mail_goes_over_starttls_with_a_login(tmp_path: Path, smtp_server: tuple[int, Mailbox, Path]):
    port, box, ca_file = smtp_server
    cfg = irconfig.load(env={"IRKIT_SMTP_PASSWORD": "smtp-s3cr3t"}, smtp_host="127.0.0.1", smtp_port=port,
                        smtp_user="irkit", smtp_ca_file=str(ca_file), email_to="oncall@example.com")
    outbox = comms.Outbox(tmp_path)
    [mail] = [outbox.put(m) for m in comms.messages(_context(), "initial", cfg) if m.channel == "email"]
    sent = outbox.send(mail, cfg)
    assert sent.status == "sent", sent.attempts
    [got] = box.mails
    assert got["tls"] and got["login"] == b"irkit" and got["to"] == ["oncall@example.com"]
    parsed = email.message_from_string(got["text"], policy=email.policy.default)
    assert parsed["Subject"] == "[SEV-2] INCIDENT: Orders updates blocked by an idle database transaction"
    assert "We will provide updates every 30 minutes" in parsed.get_content()


def test_mail_is_never_sent_in_clear_to_a_server_without_starttls(tmp_path: Path):
    controller, box, _ = _smtp(tmp_path, starttls=False)
    try:
        cfg = irconfig.load(env={}, smtp_host="127.0.0.1", smtp_port=controller.port)
        outbox = comms.Outbox(tmp_path)
        [mail] = [outbox.put(m) for m in comms.messages(_context(), "initial", cfg) if m.channel == "email"]
        failed = outbox.send(mail, cfg)
        assert failed.status == "failed" and "does not offer STARTTLS" in failed.attempts[0]["error"]
        assert box.mails == []
    finally:
        controller.stop()


def test_a_team_template_replaces_the_built_in_one_and_a_missing_variable_is_named(tmp_path: Path):
    (tmp_path / "slack.txt.j2").write_text(":fire: {{ severity }} {{ title }} ({{ war_room }})\n")
    cfg = irconfig.load(env={}, templates_dir=str(tmp_path))
    [slack] = [m for m in comms.messages(_context(), "initial", cfg) if m.channel == "slack"]
    assert slack.payload == {"text": ":fire: SEV-2 Orders updates blocked by an idle database transaction "
                                     "(#incident-response)"}
    (tmp_path / "slack.txt.j2").write_text("{{ pager_number }}\n")
    with pytest.raises(ConfigError, match="pager_number"):
        comms.messages(_context(), "initial", cfg)


def test_a_resolution_that_is_not_validated_stays_a_draft_and_is_never_sent(tmp_path: Path, http_receiver: str):
    cfg = irconfig.load(env={"IRKIT_SLACK_WEBHOOK_URL": http_receiver + WEBHOOK_PATH})
    outbox = comms.Outbox(tmp_path)
    for message in comms.messages(_context(), "resolution", cfg, draft=True):
        assert outbox.send(outbox.put(message), cfg).status == "draft"
    assert Receiver.seen == []


def test_irkit_send_delivers_what_a_run_kept_in_its_outbox_and_reseals_it(tmp_path: Path, http_receiver: str,
                                                                         monkeypatch: pytest.MonkeyPatch):
    from irkit import evidence
    from irkit.cli import main

    run = tmp_path / "INC-9" / "20261201T030000Z"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"incident": "INC-9", "phases": [3], "started_at": "2026-12-01T03:00"}))
    (run / "phase-3.json").write_text(json.dumps({"phase": 3, "records": {}, "finished_at": "2026-12-01T03:01"}))
    cfg = irconfig.load(env={})
    outbox = comms.Outbox(run)
    written = [outbox.put(m) for m in comms.messages(_context(), "initial", cfg)]
    evidence.write_manifest(run)
    monkeypatch.setenv("IRKIT_SLACK_WEBHOOK_URL", http_receiver + WEBHOOK_PATH)
    config = tmp_path / "irkit.toml"
    config.write_text("")
    slack = next(m for m in written if m.channel == "slack")
    assert main(["send", str(run), slack.id, "--config", str(config)]) == 0
    assert [r["path"] for r in Receiver.seen] == [WEBHOOK_PATH]
    assert outbox.get(slack.id).status == "sent"
    assert main(["verify", str(run)]) == 0  # re-sealed with the outbox as it is now
    assert main(["send", str(run), "--config", str(config)]) == 1  # the mail: no SMTP server configured
    assert outbox.get(next(m.id for m in written if m.channel == "email")).status == "failed"


HOSTILE = Finding(Kind.LOCK_ROOT, "pid 42", "idle in transaction session blocks 3 session(s): UPDATE orders SET x = 1 "
                                           "/* <!channel> <https://evil.example/restore|Click to restore> & @here */",
                  LockRoot(pid=42, state="idle in transaction"))


def _hostile_context() -> dict[str, Any]:
    now = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    return context(incident="INC-9", severity="SEV-2", findings=[HOSTILE],
                   affected=["checkout\u2028Bcc: attacker@evil.example\r\nX-Injected: 1"], reasons=["<b>12 %</b>"],
                   onset=datetime(2026, 12, 1, 2, 40, tzinfo=UTC), now=now, recovered=True, resolved_at=now,
                   applied=["terminate-backend"], planned=[], interval=30, war_room="#incident-response",
                   status_page_url="https://status.example.com")


def test_slack_gets_data_as_text_never_as_a_mention_or_a_link(tmp_path: Path, http_receiver: str):
    cfg = irconfig.load(env={"IRKIT_SLACK_WEBHOOK_URL": http_receiver + WEBHOOK_PATH})
    outbox = comms.Outbox(tmp_path)
    [slack] = [outbox.put(m) for m in comms.messages(_hostile_context(), "resolution", cfg) if m.channel == "slack"]
    assert outbox.send(slack, cfg).status == "sent"
    text = Receiver.seen[-1]["json"]["text"]
    assert "<!channel>" not in text and "<https://" not in text and "@here" not in text
    assert "&lt;!channel&gt; &lt;https://evil.example/restore|Click to restore&gt; &amp; @\u200bhere" in text
    assert text.startswith("✅ RESOLVED: [SEV-2]")  # the template's own text is as written


def test_a_line_break_in_data_never_becomes_a_mail_header_and_every_message_still_goes(
        tmp_path: Path, smtp_server: tuple[int, Mailbox, Path], http_receiver: str):
    port, box, ca_file = smtp_server
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "resolution.txt.j2").write_text(
        "Subject: [RESOLVED] {{ title }} on {{ affected }}\n\nRoot cause: {{ root_cause }}\n")
    cfg = irconfig.load(env={"IRKIT_SMTP_PASSWORD": "smtp-s3cr3t", "IRKIT_SLACK_WEBHOOK_URL": http_receiver + "/s",
                             "IRKIT_STATUSPAGE_TOKEN": TOKEN},
                        smtp_host="127.0.0.1", smtp_port=port, smtp_user="irkit", smtp_ca_file=str(ca_file),
                        email_to="oncall@example.com", customer_email_to="customers@example.com",
                        statuspage_api=http_receiver, statuspage_page_id="page1", templates_dir=str(tmp_path / "templates"))
    outbox = comms.Outbox(tmp_path / "run")
    sent = [outbox.send(outbox.put(m), cfg) for m in comms.messages(_hostile_context(), "resolution", cfg)]
    assert [m.status for m in sent] == ["sent"] * 4, [m.attempts for m in sent]
    mail = next(m for m in box.mails if m["to"] == ["oncall@example.com"])
    parsed = email.message_from_string(mail["text"], policy=email.policy.default)
    assert parsed["Bcc"] is None and parsed["X-Injected"] is None
    assert "Bcc: attacker@evil.example" in parsed["Subject"] and "\n" not in parsed["Subject"]
    assert sorted(r for m in box.mails for r in m["to"]) == ["customers@example.com", "oncall@example.com"]


def test_a_message_no_channel_can_carry_fails_alone(tmp_path: Path, http_receiver: str):
    cfg = irconfig.load(env={"IRKIT_SLACK_WEBHOOK_URL": http_receiver + WEBHOOK_PATH})
    outbox = comms.Outbox(tmp_path)
    broken = comms.Message("001-slack-slack", "slack", "slack", "initial", "#x", "", "b",
                           {"text": {"not", "json"}})  # a set: the webhook's JSON cannot hold it
    [good] = [m for m in comms.messages(_context(), "initial", cfg) if m.channel == "slack"]
    failed = outbox.send(broken, cfg)
    assert failed.status == "failed" and "TypeError" in failed.attempts[0]["error"]
    assert outbox.send(outbox.put(good), cfg).status == "sent"
